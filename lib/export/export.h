// Exports: one per test run. An Export ties the run's validated configuration, its
// Aggregator and its remote-write targets together; the ExportRegistry owns every export,
// hands out ids, and closes windows on a timer.
//
// Thread-safety: both classes are thread-safe.
#ifndef RWEXPORT_LIB_EXPORT_EXPORT_H_
#define RWEXPORT_LIB_EXPORT_EXPORT_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/export/stop_executor.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

struct ExportOptions {
  AggregatorOptions aggregator;
  // How long StopExport waits for delivery when the caller does not say.
  absl::Duration default_delivery_timeout = absl::Seconds(30);
  // How often windows are checked for closing.
  absl::Duration tick_interval = absl::Milliseconds(100);
  // At most this many exports at once (RESOURCE_EXHAUSTED beyond).
  size_t max_exports = 1000;
  // At most this many StreamSamples calls feeding one export at once.
  int max_streams_per_export = 256;
  // An export with no stream open and no batch for this long is stopped (flushed and
  // delivered as by StopExport). Zero disables.
  absl::Duration idle_timeout = absl::Hours(1);
  // Threads stopping exports (StopAsync and idle exports); more stops wait in a queue.
  size_t stop_threads = 4;
  // Delivery limits for every target (in flight, request and queue caps, backoff); URL,
  // credentials, headers, TLS and timeout come from each target's configuration.
  TargetOptions sender_defaults;
};

class Export {
 public:
  // Registers the targets with `sender` and creates the aggregator. `pool` and `sender` must
  // outlive the export.
  // `request` is kept, redacted, for status reports.
  static absl::StatusOr<std::unique_ptr<Export>> Create(std::string id, uint64_t sequence,
                                                        const v1::StartExportRequest& request,
                                                        ExportConfig config, WorkerPool* pool,
                                                        Sender* sender,
                                                        const ExportOptions& options);
  ~Export();

  const std::string& id() const { return id_; }
  // Start order within the registry: 1, 2, ...
  uint64_t sequence() const { return sequence_; }
  const ExportConfig& config() const { return aggregator_->config(); }
  const std::shared_ptr<Aggregator>& aggregator() const { return aggregator_; }

  // Flushes every window, waits for delivery until `delivery_timeout` has passed, and returns
  // the export's figures. Idempotent: later calls return the same figures.
  v1::StopExportResponse Stop(absl::Duration delivery_timeout);

  // Configuration (redacted), state and live figures.
  v1::ExportStatus Status() const;

  // StreamSamples calls feeding the export; the gRPC layer counts them. False (and nothing
  // counted) when `max` streams are open already.
  bool StreamOpened(int max);
  void StreamClosed();
  // IngestSamples streams, by their client-chosen id: through which sequence the stream's
  // batches are applied, and through which they are durable (acknowledgeable). They differ
  // only after a journal failure: batches applied but not durable are journaled again, not
  // applied, when resent.
  struct IngestStreamState {
    uint64_t applied_through = 0;
    uint64_t durable_through = 0;
  };
  // Most stream ids one export remembers (RESOURCE_EXHAUSTED beyond).
  static constexpr size_t kMaxIngestStreams = 100000;
  // Attaches `stream_id` to one call and returns its state: UNAVAILABLE while another call
  // holds it, RESOURCE_EXHAUSTED for a new id beyond kMaxIngestStreams.
  absl::StatusOr<IngestStreamState> AttachIngestStream(const std::string& stream_id);
  // Releases the stream at the end of its call, with its state then.
  void DetachIngestStream(const std::string& stream_id, IngestStreamState state);
  // For recovery: the stream's batches through `sequence` are applied and durable (a stream
  // attached to a call now is left alone).
  void RestoreStreamSequence(const std::string& stream_id, uint64_t sequence);
  // Counts resent batches that were acknowledged again instead of applied.
  void CountDuplicateBatches(uint64_t n) { duplicate_batches_.fetch_add(n); }

  // Records activity (a batch arrived) for the idle timeout.
  void Touch() { last_activity_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed); }
  // No stream open and no activity since `since`.
  bool IdleSince(absl::Time since) const;

 private:
  Export(std::string id, Sender* sender);
  void FillTargetFigures(size_t target, const TargetFigures& f, const AggregatorFigures& agg,
                         v1::TargetFigures* out) const;
  // Called by the aggregator when a series limit refuses a new series: a WARN line the first
  // time for each limit (and target, for the per-target limit), then at most one a minute.
  void OnSeriesRefused(size_t target, absl::string_view limit, size_t max);

  // Rate limit of OnSeriesRefused's lines, per limit (and target).
  struct RefusalLog {
    absl::Time last_warned = absl::InfinitePast();
    uint64_t since_warned = 0;  // refusals since the last line
  };

  const std::string id_;
  Sender* const sender_;
  std::shared_ptr<Aggregator> aggregator_;
  std::vector<Sender::TargetId> targets_;
  std::vector<v1::Target> redacted_targets_;
  std::string test_run_id_;
  absl::Time started_;
  uint64_t sequence_ = 0;
  std::atomic<int> active_streams_{0};
  std::atomic<int64_t> last_activity_ns_{0};
  std::atomic<bool> stopping_{false};
  mutable Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  v1::StopExportResponse result_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> duplicate_batches_{0};
  struct IngestStream {
    IngestStreamState state;
    bool attached = false;
  };
  mutable Mutex ingest_mu_;
  absl::flat_hash_map<std::string, IngestStream> ingest_streams_ ABSL_GUARDED_BY(ingest_mu_);
  Mutex refusal_mu_;
  std::map<std::string, RefusalLog> refusal_logs_ ABSL_GUARDED_BY(refusal_mu_);
};

// One page of ExportRegistry::ListPage.
struct ExportPage {
  std::vector<v1::ExportStatus> exports;  // Oldest first.
  // The sequence of the page's last export when more follow (the next page starts after it);
  // 0 when this is the last page.
  uint64_t next_after = 0;
};

// Figures summed over the exports that have stopped, for counters over the process's life.
struct RetiredTotals {
  uint64_t exports_stopped = 0;
  uint64_t samples_accepted = 0;
  uint64_t samples_late = 0;
  uint64_t windows_flushed = 0;
  Rejections rejections;
  uint64_t points_sent = 0;
  uint64_t duplicate_on_retry = 0;
  uint64_t requests = 0;
  uint64_t retries = 0;
  uint64_t failures = 0;
  uint64_t bytes_sent = 0;
  std::map<std::string, uint64_t> points_dropped;  // by reason
};

// Rejections by reason in the API's form, appended to `to`.
void FillRejections(const Rejections& from, google::protobuf::RepeatedPtrField<v1::Rejection>* to);

// The histogram in the API's form (cumulative counts).
void FillHistogram(const DurationHistogram& from, v1::DurationHistogram* to);

class ExportRegistry {
 public:
  // Starts the timer thread that closes windows and the stop executor's threads. `pool` and
  // `sender` must outlive the registry.
  ExportRegistry(WorkerPool* pool, Sender* sender, ExportOptions options = {});
  // Stops the timer; runs the stops still queued; exports still running are stopped (flushed
  // and delivered, bounded by the default delivery timeout).
  ~ExportRegistry();

  // Validates the request and creates an export: INVALID_ARGUMENT naming the field for a bad
  // configuration, RESOURCE_EXHAUSTED when max_exports are running.
  absl::StatusOr<v1::StartExportResponse> Start(const v1::StartExportRequest& request);

  // The export with this id, or nullptr.
  std::shared_ptr<Export> Find(const std::string& id) const;

  // Stops and removes an export: NOT_FOUND if there is none with this id. A zero timeout means
  // the default.
  absl::StatusOr<v1::StopExportResponse> Stop(const std::string& id,
                                              absl::Duration delivery_timeout);

  // Stop() on the stop executor (never on the caller's thread, unless the registry is being
  // destroyed); `done` gets its result there. For callers that must not block (gRPC callbacks).
  void StopAsync(const std::string& id, absl::Duration delivery_timeout,
                 std::function<void(absl::StatusOr<v1::StopExportResponse>)> done);

  // Stops every export (for server shutdown) and returns how many there were.
  size_t StopAll();

  // The status of every export, oldest first. An export stays listed (state STOPPING) until
  // its StopExport has finished.
  std::vector<v1::ExportStatus> List() const;

  // The exports started after `after_sequence` (0: from the first), oldest first: at most
  // `max_exports`, and no more once their statuses reach `max_bytes` encoded (at least one).
  ExportPage ListPage(uint64_t after_sequence, size_t max_exports, size_t max_bytes) const;

  // List() and the totals of the exports that stopped before it, taken at one instant: every
  // export is counted exactly once, so sums over both never go backwards.
  void Snapshot(std::vector<v1::ExportStatus>* live, RetiredTotals* retired,
                uint64_t* exports_started) const;

  size_t size() const;
  const ExportOptions& options() const { return options_; }

 private:
  void TickLoop();

  WorkerPool* const pool_;
  Sender* const sender_;
  const ExportOptions options_;

  // Stops idle exports, off the ticker thread.
  void StopIdle(const std::string& id);

  mutable Mutex mu_;
  CondVar cv_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::shared_ptr<Export>> exports_ ABSL_GUARDED_BY(mu_);
  RetiredTotals retired_ ABSL_GUARDED_BY(mu_);
  uint64_t exports_started_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> next_sequence_{1};
  // Idle exports whose stop is queued or running on stop_executor_.
  absl::flat_hash_set<std::string> idle_stopping_ ABSL_GUARDED_BY(mu_);
  // Runs StopAsync and idle stops; shut down (queued stops run) before StopAll at destruction.
  StopExecutor stop_executor_;
  std::thread ticker_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_EXPORT_EXPORT_H_
