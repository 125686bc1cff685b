// Resampling of one export's raw samples into exported series.
//
// An Aggregator owns the state of one export: which metrics exist, which exported series each
// raw (metric, tags) combination feeds, and the open windows of every series. Series are
// sharded over a WorkerPool: shard i is only touched by worker i, so the hot path takes no
// lock. Windows are aligned to each target's resampleRate on the samples' own timestamps.
//
// Time: the export's clock (its watermark) is the highest sample timestamp seen, advanced by
// wall time since that sample arrived (so a live test whose agents pause still closes its
// windows, and a fast replay closes them as fast as its data moves). A window is closed when
// its end plus the lateness allowance is at or before the watermark; a sample for a window a
// series already closed is counted in that series' next open window, so totals stay exact.
//
// Per series, in each window:
//   counter -> `<name>_total`, cumulative since the export started;
//   gauge   -> `<name>`, the value of the sample with the latest timestamp;
//   rate    -> `<name>_rate`, the fraction of non-zero samples;
//   trend   -> `<name>_<stat>` per configured statistic (k6 percentile rule), or, when the
//              target sets nativeHistograms, one native-histogram series `<name>_seconds`
//              (time trends; `_seconds` not doubled) or `<name>` (see native_histogram.h).
// Time values (milliseconds) are exported in seconds. Counters, gauges and rates are sent
// again, with their last value, for windows without samples, so dashboards show no gaps: from
// their first sample's window through the export's last window (the window of its newest
// sample, or a later one its clock passed while the export idled), for at most 60 windows
// after the series' last window with samples; a longer silence leaves a gap from the 61st
// window until the series' next sample. Which windows get a point does not depend on when
// flushes ran (see window_state.h). Trends are sent only for windows with samples. Each point
// carries its window's end time; per series, timestamps strictly increase.
//
// Native histograms are cumulative, like counters: the point of a window holds every sample
// of that window and all earlier ones (reset hint UNKNOWN, as a Prometheus client's histogram),
// and is sent again for windows without samples. Per-window gauge histograms were the
// alternative; cumulative ones were chosen because that is what Prometheus users and k6 itself
// use: k6's own remote-write output (K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM) exports
// exactly such `k6_<name>_seconds` counter histograms, and its dashboards query
// histogram_quantile(q, rate(h[r])), sum(rate(...)) by (...), histogram_count(increase(...)),
// which are meant for counter histograms and let the reader pick any time range. The newest
// point alone gives the whole run so far (histogram_count(h) = every sample). A request that is
// lost only coarsens the time resolution: the next point still counts its samples. The cost is
// one histogram per series for the export's lifetime (bounded, see native_histogram.h). Stale
// markers for these series are histograms with a StaleNaN sum, what Prometheus's TSDB stores
// for a float StaleNaN on a histogram series; a float marker would be appended before the
// series' histograms of the same request and be refused as out of order.
//
// The parts: the series store (series_store.h: creation, cardinality limits), the window
// state (window_state.h: accumulate, emit), and the export's clock and flushes (here). Streams
// reach an aggregator through lib/ingest's StreamIngester, which validates and routes samples
// and hands them over with Dispatch.
//
// Thread-safety: Aggregator is thread-safe.
#ifndef RWEXPORT_LIB_AGGREGATE_AGGREGATOR_H_
#define RWEXPORT_LIB_AGGREGATE_AGGREGATOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lib/aggregate/rejections.h"
#include "lib/aggregate/series_store.h"
#include "lib/aggregate/window_state.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/duration_histogram.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/model/metric.h"
#include "lib/model/series.h"

namespace rwexport {

struct AggregatorOptions {
  // How long after a window's end samples for it are still awaited.
  absl::Duration lateness = absl::Seconds(2);
  // Samples further than this ahead of the wall clock are rejected ("too_new").
  absl::Duration max_future = absl::Minutes(10);
  // Samples older than this behind the export's watermark are rejected ("too_old"): remote-write
  // receivers refuse samples far behind their head.
  absl::Duration max_age = absl::Hours(1);
  // Cardinality guard: a sample that would create an aggregation series beyond these limits is
  // refused (its other series still get it); existing series keep flowing. 0: no limit.
  size_t max_series_per_target = 100000;
  size_t max_series_per_export = 250000;
  // If set, called each time a limit refuses a new series (`limit`: "max_series_per_target" or
  // "max_series_per_export"), with a lock held: it must be quick and not call the aggregator.
  std::function<void(size_t target, absl::string_view limit)> on_series_refused;
  // The wall clock; tests replace it.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

struct AggregatorFigures {
  uint64_t samples_accepted = 0;
  uint64_t samples_rejected = 0;
  // Accepted samples whose window was already closed, counted in the next open window.
  uint64_t samples_late = 0;
  Rejections rejections;
  // Aggregation series (one per target output and kept-label combination) per target.
  std::vector<uint64_t> series_per_target;
  // Exported series per target: what the target receives (a trend's aggregation series is
  // one exported series per statistic, or one native histogram).
  std::vector<uint64_t> exported_series_per_target;
  // New series refused by the cardinality guard, per target.
  std::vector<uint64_t> series_refused_per_target;
  uint64_t windows_flushed = 0;
  // From a flush's start to its points handed to remote write (every shard done).
  DurationHistogram flush_duration;
  // Per flush that closed windows with samples as time passed: from the moment the first of
  // them could close (its end plus the lateness, reached by the export's clock) to its points
  // handed to remote write. What a reader waits beyond the lateness; the final flush of Stop()
  // is not counted.
  DurationHistogram window_delay;
};

// The aggregation series one raw (metric, tags) combination feeds.
struct SeriesRoute {
  MetricInfo info;
  // Inline: a raw series feeds few series, and the hot path should not chase a pointer.
  absl::InlinedVector<const AggregationSeries*, 2> series;
  // Set when a series limit refused every series the sample would feed: why.
  std::shared_ptr<const std::string> over_limit;
};

// The timestamps usable in a batch: positive, at most max_future ahead of the wall clock, at
// most max_age behind the export's newest sample.
struct SampleBounds {
  int64_t lowest;
  int64_t highest;
  bool Contains(int64_t ts) const { return ts >= lowest && ts <= highest; }
};

// One batch's samples, validated and routed to the shards, ready for Dispatch.
struct RoutedBatch {
  std::vector<Items> work;  // per shard
  uint64_t accepted = 0;
  int64_t max_ts = kNoWindow;
  Rejections rejections;
};

// Which ingest stream a batch comes from (checkpoints, lib/durable/checkpoints.md): the
// aggregator keeps, per stream, the highest sequence dispatched and the samples accepted and
// rejected in its batches, cut at the same point as the state (Snapshot).
struct DispatchTag {
  absl::string_view stream_id;  // as in the write-ahead log
  uint64_t sequence = 0;
  // Set: the sequence is assigned at dispatch, one above the stream's highest, and written
  // here (a stream whose batches come from concurrent calls: influx writes).
  uint64_t* assigned = nullptr;
};

// One ingest stream's progress at a snapshot: its batches through `sequence` are in the state.
struct IngestStreamProgress {
  uint64_t sequence = 0;
  uint64_t accepted = 0;
  uint64_t rejected = 0;
};

// What Snapshot() cut.
struct AggregatorSnapshot {
  std::string state;                                    // a serialized durable.v1.AggregatorState
  std::map<std::string, IngestStreamProgress> streams;  // by stream id as in the log
};

class Aggregator : public std::enable_shared_from_this<Aggregator> {
 public:
  // Receives, per target, the points of one flush. Calls for one target come in flush order
  // and never overlap.
  using BatchSink = std::function<void(size_t target, PointBatch batch)>;

  // `pool` must outlive the aggregator and every task it posts.
  static std::shared_ptr<Aggregator> Create(ExportConfig config, WorkerPool* pool, BatchSink sink,
                                            AggregatorOptions options = {});
  ~Aggregator();

  // Declares a metric for the whole export. Built-in k6 metrics are known already; declaring
  // one with its own type is fine, with another type it is an error (the known type stays).
  absl::Status Declare(const std::string& name, MetricInfo info);

  // Counts samples refused before they reached an ingester (InfluxDB lines that are not
  // samples), in the figures like every rejection.
  void CountRejections(const Rejections& rejections);

  // Closes every window whose time has passed and hands the points to the sink. Does nothing
  // when no window closed since the last flush or a flush is still running. Samples that move
  // the clock past a window's end call it themselves, and so does a flush that ends after
  // the next window became closable; for windows that close as wall time passes, call it at
  // NextCloseTime() (and every ~100 ms anyway: it is cheap when there is nothing to do).
  void Tick();

  // When the next window closes as wall time passes (by options.clock), if no sample moves
  // the clock before; InfiniteFuture when there is none to wait for (no samples yet, a flush
  // running, stopping).
  absl::Time NextCloseTime() const;
  // A flush is under way (its points are being handed to the sink, target by target).
  bool Flushing() const;

  // Stops accepting samples, waits for samples being ingested, closes every open window (and
  // the empty ones through the export's last window, which repeating series fill), appends
  // stale markers where the target asks for them, and returns once the sink has received the
  // last batches. Idempotent.
  void Stop();

  // Stops accepting samples, waits for samples being ingested and for a flush under way, and
  // ends without closing the open windows (for an export kept for the next start, whose
  // windows are rebuilt from the write-ahead log): no flush reaches the sink after it returns.
  // A later Stop() returns at once. Idempotent.
  void Abandon();

  // Waits until no flush is running. For tests and benchmarks that move options.clock: a flush
  // that ends after the clock moved may start the next one itself (see Tick()).
  void AwaitFlushes() const;

  // Checkpoints (lib/durable/checkpoints.md; aggregator_state.cc). SaveState serializes what a
  // fresh aggregator of the same configuration needs to continue exactly (a
  // durable.v1.AggregatorState): the clock, the figures, the declared metrics, every series
  // with samples and its open windows (native histograms: also the cumulative one), and the
  // outputs made for "*" entries in the order they were made (series name them by number).
  // Ingest need not pause: SaveState is Snapshot(nullptr).state.
  absl::StatusOr<std::string> SaveState();
  // The state at one cut of the batches dispatched: one mutex orders Dispatch's posting of a
  // batch to the shards and the snapshot's posting of one task per shard, so every batch is
  // wholly before or wholly after the cut in every shard's queue; the figures (accepted,
  // rejected, late, the newest timestamp) and the streams' progress follow the same cut. No
  // flush runs during it (it waits for one running; new ones wait for it). `at_cut`, if set,
  // runs at the cut with Dispatch held off (keep it short, it must not call the aggregator): a
  // checkpoint appends its log record there, so every batch logged before that record is in
  // the state; an error from it ends the snapshot with that error. Blocks until every shard
  // has saved its part (not for a gRPC callback's thread). FAILED_PRECONDITION once stopping
  // or while another snapshot runs.
  absl::StatusOr<AggregatorSnapshot> Snapshot(const std::function<absl::Status()>& at_cut);
  // Restores the streams' progress of a snapshot (after RestoreState, before ingest).
  void RestoreStreams(const std::map<std::string, IngestStreamProgress>& streams);
  // Restores SaveState's bytes into this aggregator, which has had no sample yet
  // (FAILED_PRECONDITION otherwise). DATA_LOSS for bytes that do not parse or name an output
  // or a metric type this configuration does not have; RESOURCE_EXHAUSTED when a series limit
  // refuses a restored series. The wall-clock part of the export's clock restarts at now.
  absl::Status RestoreState(absl::string_view state);

  bool stopped() const;
  // The newest accepted sample's timestamp, in milliseconds since the epoch rounded up; 0
  // before any sample.
  int64_t NewestSampleMs() const;
  AggregatorFigures Figures() const;
  const ExportConfig& config() const { return config_; }
  const AggregatorOptions& options() const { return options_; }
  size_t shard_count() const { return shards_.size(); }

  // The ingest side, for a stream's ingester (lib/ingest), per batch: BeginIngest, then
  // Bounds and ResolveSeries while routing samples, then Dispatch exactly once.

  // Registers an ingest in progress; false once stopping (then nothing else may follow).
  bool BeginIngest();
  // The usable timestamps, at the wall clock's current time.
  SampleBounds Bounds() const;
  // The type of a built-in or declared metric; nullopt for an unknown one.
  std::optional<MetricInfo> LookupMetric(const std::string& name) const;
  // The series that samples of `metric` (known, of type `info`) with `tags` feed, created as
  // needed within the series limits.
  SeriesRoute ResolveSeries(absl::string_view metric, MetricInfo info,
                            absl::Span<const RawTag> tags);
  // Hands the routed batch to the shards and ends the ingest. `done` runs exactly once, on
  // some thread, when every sample has been applied (at once if there is nothing to apply),
  // after the export's clock has moved to the batch's newest sample.
  // `tag`: the batch's stream and sequence, for checkpoints (null: not counted per stream).
  void Dispatch(RoutedBatch batch, std::function<void()> done, DispatchTag* tag = nullptr);

 private:
  struct FlushJob;
  struct Output {
    uint32_t target;
    const OutputSpec* spec;
  };

  Aggregator(ExportConfig config, WorkerPool* pool, BatchSink sink, AggregatorOptions options);

  // A "*" entry of a target, and the names the target's other entries export (which "*"
  // leaves to them).
  struct AllMetrics {
    uint32_t target;
    const OutputSpec* spec;
    absl::flat_hash_set<std::string> taken_names;
  };

  // Output `output`: one of outputs_, or one made for a metric of a "*" entry. The reference
  // stays valid; an output never changes.
  const Output& OutputAt(size_t output) const;
  // The output of "*" entry `all` (index in all_metrics_) for `metric`, made on first use.
  size_t AllMetricsOutput(size_t all, absl::string_view metric);
  // Fills the family of `output`'s series.
  void FillFamily(size_t output, MetricInfo info, bool native_histogram,
                  SeriesFamily* family) const;
  // Counts a batch being dispatched in the snapshot's figures and its stream's progress.
  void CountAtCut(const RoutedBatch& batch, DispatchTag* tag)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(cut_mu_);
  void EndIngest(uint64_t accepted, uint64_t late, const Rejections& rejections);
  void ObserveTimestamp(int64_t max_ts_ns);
  // The closable point (watermark minus lateness) at wall time `now`.
  int64_t ClosableAt(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The wall time at which the closable point reaches `closable` (kNoWindow: any), and never
  // before the newest samples arrived.
  absl::Time DueTime(int64_t closable) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a flush closing the windows `windows` names. Requires flushing_ set by the caller.
  void StartFlush(FlushWindows windows);
  // Runs `fn(shard)` on every shard's worker and returns once all have run.
  void RunOnEveryShard(const std::function<void(size_t shard)>& fn);
  void FinishFlush(FlushJob* job);

  const ExportConfig config_;
  WorkerPool* const pool_;
  const BatchSink sink_;
  const AggregatorOptions options_;
  std::vector<Output> outputs_;
  // Outputs by source metric name.
  absl::flat_hash_map<std::string, std::vector<size_t>> outputs_by_metric_;
  std::vector<AllMetrics> all_metrics_;
  // The outputs of "*" entries, numbered from outputs_.size() on, with their specs and an
  // index by (all_metrics_ index, metric). Deques: references stay valid as they grow.
  mutable Mutex all_metrics_mu_;
  std::deque<Output> all_metrics_outputs_ ABSL_GUARDED_BY(all_metrics_mu_);
  std::deque<OutputSpec> all_metrics_specs_ ABSL_GUARDED_BY(all_metrics_mu_);
  absl::flat_hash_map<std::pair<size_t, std::string>, size_t> all_metrics_index_
      ABSL_GUARDED_BY(all_metrics_mu_);
  std::vector<int64_t> window_ns_;  // per target
  // Shard i is only touched by worker i.
  std::vector<std::unique_ptr<Shard>> shards_;
  // Every aggregation series (thread-safe itself); shared with the batches of points that
  // name them (PointBatch::owner), so it outlives the aggregator while they do.
  std::shared_ptr<SeriesStore> series_;

  mutable Mutex metrics_mu_;
  absl::flat_hash_map<std::string, MetricInfo> declared_ ABSL_GUARDED_BY(metrics_mu_);

  mutable Mutex mu_;
  mutable CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int active_ingests_ ABSL_GUARDED_BY(mu_) = 0;
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  // A Snapshot is under way: no flush starts.
  bool snapshotting_ ABSL_GUARDED_BY(mu_) = false;
  int64_t max_ts_ns_ ABSL_GUARDED_BY(mu_) = kNoWindow;
  absl::Time max_ts_seen_at_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> flushed_cutoffs_ ABSL_GUARDED_BY(mu_);
  // The closable point at which the next window closes: min over targets of the end of the
  // first window not flushed yet (kNoWindow before the first flush: at once).
  int64_t next_closable_ns_ ABSL_GUARDED_BY(mu_) = kNoWindow;
  // When the running flush's first window could close.
  absl::Time flush_due_ ABSL_GUARDED_BY(mu_);
  DurationHistogram window_delay_ ABSL_GUARDED_BY(mu_);
  uint64_t samples_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t samples_late_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t windows_flushed_ ABSL_GUARDED_BY(mu_) = 0;
  DurationHistogram flush_duration_ ABSL_GUARDED_BY(mu_);
  Rejections rejections_ ABSL_GUARDED_BY(mu_);

  // The snapshot's cut (Snapshot): held by Dispatch while it posts a batch and counts it
  // below, and by Snapshot while it posts its tasks. Taken before mu_, never after.
  mutable Mutex cut_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  uint64_t dispatched_accepted_ ABSL_GUARDED_BY(cut_mu_) = 0;
  Rejections dispatched_rejections_ ABSL_GUARDED_BY(cut_mu_);
  int64_t dispatched_max_ts_ns_ ABSL_GUARDED_BY(cut_mu_) = kNoWindow;
  // Late samples of a restored state (the shards count those applied since).
  uint64_t restored_late_ ABSL_GUARDED_BY(cut_mu_) = 0;
  std::map<std::string, IngestStreamProgress, std::less<>> streams_ ABSL_GUARDED_BY(cut_mu_);
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_AGGREGATOR_H_
