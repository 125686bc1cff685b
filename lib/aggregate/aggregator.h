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
// again for windows without samples, so dashboards show no gaps: from their first sample's
// window through the export's last window (the window of its newest sample, or a later one
// that closed while the export idled); a silence of more than 60 windows is left as a gap.
// Trends are sent only for windows with samples. Each point carries its window's end time; per
// series, timestamps strictly increase.
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
// Thread-safety: Aggregator is thread-safe. A StreamIngester belongs to one stream and must
// not be used from two threads at once.
#ifndef RWEXPORT_LIB_AGGREGATE_AGGREGATOR_H_
#define RWEXPORT_LIB_AGGREGATE_AGGREGATOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lib/aggregate/batch_decoder.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/duration_histogram.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/model/metric.h"
#include "lib/model/series.h"
#include "rwexport/v1/export.pb.h"

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
  // The wall clock; tests replace it.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// Counts of rejected samples by reason, with one example each.
struct RejectionCount {
  uint64_t count = 0;
  std::string example;
};
using Rejections = std::map<std::string, RejectionCount>;

void AddRejection(Rejections* rejections, const std::string& reason, const std::string& example,
                  uint64_t count = 1);
void MergeRejections(Rejections* into, const Rejections& from);

struct AggregatorFigures {
  uint64_t samples_accepted = 0;
  uint64_t samples_rejected = 0;
  // Accepted samples whose window was already closed, counted in the next open window.
  uint64_t samples_late = 0;
  Rejections rejections;
  // Aggregation series (one per target output and kept-label combination) per target.
  std::vector<uint64_t> series_per_target;
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

class StreamIngester;

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

  // Stops accepting samples, waits for samples being ingested, closes every open window,
  // appends stale markers where the target asks for them, and returns once the sink has
  // received the last batches. Idempotent.
  void Stop();

  // Waits until no flush is running. For tests and benchmarks that move options.clock: a flush
  // that ends after the clock moved may start the next one itself (see Tick()).
  void AwaitFlushes() const;

  bool stopped() const;
  AggregatorFigures Figures() const;
  const ExportConfig& config() const { return config_; }

 private:
  friend class StreamIngester;
  struct SeriesInfo;
  struct SeriesStore;
  struct Shard;
  struct FlushJob;
  struct Output {
    size_t target;
    const OutputSpec* spec;
    // The names of its exported series (one, or one per trend statistic) and the labels all
    // its series share; in series_, made on first use.
    const SeriesFamily* family = nullptr;
  };

  Aggregator(ExportConfig config, WorkerPool* pool, BatchSink sink, AggregatorOptions options);

  std::optional<MetricInfo> LookupMetric(const std::string& name) const;
  // The aggregation series for (output, kept values), created on first use. Stable pointer.
  // Nullptr when creating it would pass a series limit (`why` says which).
  const SeriesInfo* GetOrCreateSeries(size_t output, MetricInfo info,
                                      const std::vector<std::string>& kept_values,
                                      std::string* why);
  // The family of `output`'s series (made on first use; a metric's type does not change once
  // known).
  const SeriesFamily* OutputFamily(size_t output, MetricInfo info, bool native_histogram)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(series_mu_);
  // Registers an ingest in progress; false once stopping.
  bool BeginIngest();
  void EndIngest(uint64_t accepted, uint64_t late, const Rejections& rejections);
  void ObserveTimestamp(int64_t max_ts_ns);
  // The closable point (watermark minus lateness) at wall time `now`.
  int64_t ClosableAt(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The wall time at which the closable point reaches `closable` (kNoWindow: any), and never
  // before the newest samples arrived.
  absl::Time DueTime(int64_t closable) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a flush closing windows below `cutoffs` (one window index per target; INT64_MAX
  // closes all). `final` adds stale markers. Requires !flushing_.
  void StartFlush(std::vector<int64_t> cutoffs, bool final, std::vector<int64_t> end_windows = {});
  void FinishFlush(FlushJob* job);

  const ExportConfig config_;
  WorkerPool* const pool_;
  const BatchSink sink_;
  const AggregatorOptions options_;
  std::vector<Output> outputs_;
  // Outputs by source metric name.
  absl::flat_hash_map<std::string, std::vector<size_t>> outputs_by_metric_;
  std::vector<int64_t> window_ns_;  // per target
  std::vector<std::unique_ptr<Shard>> shards_;

  mutable Mutex metrics_mu_;
  absl::flat_hash_map<std::string, MetricInfo> declared_ ABSL_GUARDED_BY(metrics_mu_);

  mutable Mutex series_mu_;
  // Every aggregation series, by (output, labels), with their labels; shared with the batches
  // of points that name them (PointBatch::owner), so it outlives the aggregator while they do.
  const std::shared_ptr<SeriesStore> series_ ABSL_PT_GUARDED_BY(series_mu_);
  std::vector<uint64_t> series_per_target_ ABSL_GUARDED_BY(series_mu_);
  std::vector<uint64_t> series_refused_per_target_ ABSL_GUARDED_BY(series_mu_);

  mutable Mutex mu_;
  mutable CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int active_ingests_ ABSL_GUARDED_BY(mu_) = 0;
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  int64_t max_ts_ns_ ABSL_GUARDED_BY(mu_);
  absl::Time max_ts_seen_at_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> flushed_cutoffs_ ABSL_GUARDED_BY(mu_);
  // The closable point at which the next window closes: min over targets of the end of the
  // first window not flushed yet (kNoWindow before the first flush: at once).
  int64_t next_closable_ns_ ABSL_GUARDED_BY(mu_);
  // When the running flush's first window could close.
  absl::Time flush_due_ ABSL_GUARDED_BY(mu_);
  DurationHistogram window_delay_ ABSL_GUARDED_BY(mu_);
  uint64_t samples_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t samples_late_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t windows_flushed_ ABSL_GUARDED_BY(mu_) = 0;
  DurationHistogram flush_duration_ ABSL_GUARDED_BY(mu_);
  Rejections rejections_ ABSL_GUARDED_BY(mu_);
};

// Turns one stream's batches into work for the aggregator's shards. Caches, per raw
// (metric, tags) combination, the series it feeds, so a repeated combination costs one hash
// lookup.
class StreamIngester {
 public:
  explicit StreamIngester(std::shared_ptr<Aggregator> aggregator);

  // Series references of compact mode (v1::SeriesDeclaration) must be below this.
  static constexpr uint32_t kMaxSeriesRefs = uint32_t{1} << 20;

  // Applies the batch's metric and series declarations, validates each sample (the
  // self-describing ones, then the compact ones), and routes the valid ones to the shards.
  // `done` runs exactly once, on some thread, when every sample has been applied (at once if
  // there is nothing to apply). Returns FailedPrecondition if the export is stopping (then
  // `done` is not called and nothing is counted).
  absl::Status Ingest(const v1::SampleBatch& batch, std::function<void()> done);

  // The same for a batch decoded from its bytes (DecodeSampleBatch, which the bytes must
  // outlive until this returns), with the same results as Ingest of the equal v1::SampleBatch.
  // Tags this stream has not seen before are checked first (ParseTags); a bad one refuses the
  // whole batch with InvalidArgument naming the sample ("sample 17: tags: tag 2: value:
  // invalid UTF-8") before anything is applied or counted, and `done` is not called.
  absl::Status Ingest(const DecodedBatch& batch, std::function<void()> done);

  uint64_t accepted() const { return accepted_; }
  uint64_t rejected() const;
  const Rejections& rejections() const { return rejections_; }
  // Declarations that were refused, by reason ("type_conflict", "invalid_name",
  // "missing_type"); the example is the full message. Samples of a metric keep the type the
  // export already knows.
  const Rejections& declaration_errors() const { return declaration_errors_; }
  Aggregator& aggregator() { return *aggregator_; }

 private:
  struct Resolved {
    MetricInfo info;
    // Inline: a raw series feeds few series, and the hot path should not chase a pointer.
    absl::InlinedVector<const Aggregator::SeriesInfo*, 2> series;
    // Set when a series limit refused every series the sample would feed: why.
    std::shared_ptr<const std::string> over_limit;
  };
  // A series declared on the stream (compact mode), by reference.
  struct SeriesRef {
    std::string metric;  // for rejection examples
    bool resolved = false;
    Resolved series;  // once resolved
    // Until resolved (on the first sample, when the metric is known): the declaration.
    std::unique_ptr<v1::SeriesDeclaration> pending;
  };
  // A sample's tags still encoded (RawSample::tags, tags_run), checked by ParseTags already.
  struct EncodedTags {
    absl::string_view bytes;
    uint32_t run;
  };
  // The body of both Ingest overloads. `for_each_sample(f)` calls f(metric, tags, time,
  // value) for each of the `sample_count` self-describing samples in order, tags being what
  // Resolve takes.
  template <typename ForEachSample>
  absl::Status IngestBatch(const google::protobuf::RepeatedPtrField<v1::MetricDeclaration>& metrics,
                           const google::protobuf::RepeatedPtrField<v1::SeriesDeclaration>& series,
                           size_t sample_count, const ForEachSample& for_each_sample,
                           absl::Span<const uint32_t> refs, absl::Span<const int64_t> deltas,
                           absl::Span<const double> values, std::function<void()> done);
  // Nullptr if the metric is unknown (the reason is recorded in `rejections`).
  const Resolved* Resolve(absl::string_view metric,
                          const google::protobuf::RepeatedPtrField<v1::Tag>& tags,
                          Rejections* rejections);
  const Resolved* Resolve(absl::string_view metric, EncodedTags tags, Rejections* rejections);
  // The metric's entry in the current tag set (tagset_, whose key in tagsets_ is `tags_key`),
  // made from tag_pairs_ (filled by the caller) if the tag set has none yet.
  const Resolved* ResolveInTagset(absl::string_view metric, absl::string_view tags_key,
                                  Rejections* rejections);
  // The series a (metric, tags) combination feeds, created as needed; nullopt if the metric is
  // unknown (the reason is recorded in `rejections`).
  std::optional<Resolved> MakeResolved(absl::string_view metric, absl::Span<const RawTag> tags,
                                       Rejections* rejections);
  // Binds decl.ref for this stream's later compact samples; refused ones are counted in
  // declaration_errors_.
  void DeclareSeries(const v1::SeriesDeclaration& decl);
  // Resolves declared series `ref` on its first sample; nullptr while its metric is unknown.
  const Resolved* ResolvePending(uint32_t ref, Rejections* rejections);

  std::shared_ptr<Aggregator> aggregator_;
  // The metrics seen with one tag set, and the series each feeds. k6 sends about ten metrics
  // with each tag set (http_reqs, http_req_duration, ...), so the tag set is stored once and
  // its metrics are scanned; a tag set with many metrics gets an index.
  struct Tagset {
    struct Entry {
      absl::string_view metric;  // in metric_names_
      Resolved resolved;
    };
    std::vector<Entry> entries;
    std::unique_ptr<absl::flat_hash_map<absl::string_view, size_t>> index;  // into entries
  };
  // By the tags part of the raw key ("\0key\1value..."), or for encoded tags by their bytes
  // (which never start with '\0'; an empty key means no tags either way). An entry with
  // encoded tags means those bytes passed ParseTags. Cleared when it holds kMaxCachedKeys
  // (metric, tag set) combinations, so a tag with unbounded values cannot grow it without end.
  absl::flat_hash_map<std::string, Tagset> tagsets_;
  size_t cached_combinations_ = 0;
  // The names of the metrics in tagsets_, stored once.
  absl::node_hash_set<std::string> metric_names_;
  Tagset* tagset_ = nullptr;       // of the previous sample's tags
  std::string tags_key_;           // reused buffer
  std::vector<RawTag> tag_pairs_;  // reused buffer: the tags of a sample being resolved
  // Compact mode: declared series by reference (null: not declared).
  std::vector<std::unique_ptr<SeriesRef>> refs_;
  // By reference, beside refs_ and denser: for a declared series resolved within the limits
  // to at most kMaxRouted aggregation series (most feed none, one or two), those series; the
  // compact loop's fast path. `usable` is false otherwise.
  static constexpr size_t kMaxRouted = 2;
  struct Route {
    const Aggregator::SeriesInfo* series[kMaxRouted] = {};
    uint32_t count = 0;
    bool usable = false;
  };
  std::vector<Route> routes_;
  // The previous sample's tags, in the batch being ingested (null between batches).
  const google::protobuf::RepeatedPtrField<v1::Tag>* last_tags_ = nullptr;
  // The same for encoded tags: their RawSample::tags_run.
  bool has_last_encoded_tags_ = false;
  uint32_t last_encoded_tags_run_ = 0;
  uint64_t accepted_ = 0;
  Rejections rejections_;
  Rejections declaration_errors_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_AGGREGATOR_H_
