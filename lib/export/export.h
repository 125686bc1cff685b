// Exports: one per test run. An Export ties the run's validated configuration, its
// Aggregator and its remote-write targets together; the ExportRegistry owns every export,
// hands out ids, and closes windows on a timer.
//
// With an ExportStore (ExportOptions::store; rwexport_server --data_dir), the registry is
// durable: an export's record is on disk before Start answers, a stopped export's figures are
// recorded before its record is removed, and Recover() brings the recorded exports back after
// a restart (same id, sequence, configuration and test run id, marked recovered). The batches
// they had accepted are in the write-ahead log (ExportJournal, AttachJournal) and are replayed
// into them by lib/export/journal_replay.h, so that their figures continue.
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
#include "lib/durable/checkpoint_store.h"
#include "lib/durable/export_journal.h"
#include "lib/durable/export_store.h"
#include "lib/export/delivery_mark.h"
#include "lib/export/stop_executor.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

struct ExportOptions {
  // This process's name in a fleet (lib/export/ownership.h): export ids become
  // "<replica_id>-<random>", and calls for an export id that names another replica are
  // UNAVAILABLE naming the owner. Empty: a single process, ids name no owner.
  std::string replica_id;
  AggregatorOptions aggregator;
  // How long StopExport waits for delivery when the caller does not say.
  absl::Duration default_delivery_timeout = absl::Seconds(30);
  // How often windows are checked for closing.
  absl::Duration tick_interval = absl::Milliseconds(100);
  // With a store: how often each export's delivery mark is written to its record when it
  // advanced (delivery_mark.h); windows delivered since the last write are re-sent after a
  // crash.
  absl::Duration delivery_mark_interval = absl::Milliseconds(100);
  // At most this many exports at once (RESOURCE_EXHAUSTED beyond).
  size_t max_exports = 1000;
  // At most this many StreamSamples calls feeding one export at once.
  int max_streams_per_export = 256;
  // An export with no stream open and no batch for this long is stopped (flushed and
  // delivered as by StopExport). Zero disables.
  absl::Duration idle_timeout = absl::Hours(1);
  // Threads stopping exports (StopAsync and idle exports); more stops wait in a queue.
  size_t stop_threads = 4;
  // Checkpoints of running exports' aggregation state (lib/durable/checkpoints.md): with a
  // store, an attached journal and a non-zero interval, each running export is checkpointed
  // every `checkpoint_interval` (and once `checkpoint_log_bytes` of log were written since its
  // last one, if not 0), and the log is truncated behind the checkpoint. Borrowed.
  CheckpointStore* checkpoints = nullptr;
  absl::Duration checkpoint_interval = absl::ZeroDuration();
  int64_t checkpoint_log_bytes = 0;
  // Delivery limits for every target (in flight, request and queue caps, backoff); URL,
  // credentials, headers, TLS and timeout come from each target's configuration.
  TargetOptions sender_defaults;
  // Set: the registry's records live there (see the top of this file). Borrowed: it must
  // outlive the registry. Null: exports live in memory only and are lost with the process.
  ExportStore* store = nullptr;
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
  const std::string& test_run_id() const { return test_run_id_; }
  absl::Time started() const { return started_; }

  // Marks an export brought back from the data directory: it started at `started` (by an
  // earlier process) and was recovered at `recovered`. Call before the export is shared.
  void MarkRecovered(absl::Time started, absl::Time recovered);
  // A recovered export: what was replayed into it from the write-ahead log (Status()).
  // With a store: the export's record in the data dir (set before the export is shared).
  void SetRecord(durable::v1::ExportRecord record) { record_ = std::move(record); }
  const durable::v1::ExportRecord& record() const { return record_; }
  DeliveryMark& delivery_mark() { return mark_; }
  // A recovered export whose write-ahead log was replayed (`now`: when the replay ended):
  // bounds the re-sent windows at what the crashed process's clock could have reached
  // (DeliveryMark::ResendThrough); later windows are sent as usual. Does nothing for an export
  // that was not recovered.
  void EndRecoveryReplay(absl::Time now);
  bool stopping() const { return stopping_.load(); }
  // No flush is handing points over and no target has points queued (delivery_mark.h).
  bool NothingQueued() const;
  uint64_t replayed_batches() const { return replayed_batches_.load(); }
  uint64_t replayed_samples() const { return replayed_samples_.load(); }
  // No flush is handing points over and every point queued for a target is in its durable
  // queue (or none is queued): every point handed over so far is delivered or durably queued,
  // so the delivery mark may advance (delivery_mark.h). Waits (a little) for the queue files'
  // group commits under way.
  bool DeliveredOrDurablyQueued() const;
  // DeliveredOrDurablyQueued without the wait: every point queued for a target is in a queue
  // file written, its sync maybe under way; `queued`: some point is queued.
  bool DeliveredOrQueueWritten(bool* queued) const;
  // How long DeliveredOrDurablyQueued and a checkpoint wait for the queue files' group commits.
  static constexpr absl::Duration kQueueCommitWait = absl::Milliseconds(500);
  // Points of the crashed process's queue files that this (recovered) export's targets took
  // over when it was created; they are delivered first.
  uint64_t PointsFromQueue() const;
  void AddReplayed(uint64_t batches, uint64_t samples) {
    replayed_batches_ += batches;
    replayed_samples_ += samples;
  }

  // Checkpoints (lib/durable/checkpoints.md). Whether a checkpoint may be taken now: every
  // window flushed so far is delivered or in a target's queue files (DeliveredOrQueueWritten;
  // WriteCheckpoint waits for their sync after the cut), so a restored export need not rebuild
  // any of them: the queue files deliver those still queued. Called at the snapshot's cut,
  // never waits; `queued`: some point is queued.
  bool CheckpointAllowed(bool* queued) const;
  // Takes a checkpoint: snapshots the aggregation state at a cut where a checkpoint record is
  // appended to `journal`, writes it to `store` once that record is durable, and lets the log
  // be truncated behind it (ExportJournal::CheckpointCovered). Blocks (fsyncs): not for a gRPC
  // callback's thread. ABORTED when not allowed now (try again soon), UNIMPLEMENTED for an
  // export the aggregation state would not cover (none since native histograms and "*" entries
  // are covered; kept for a later kind of state), else the journal's or the store's error.
  absl::Status WriteCheckpoint(ExportJournal* journal, CheckpointStore* store);
  // Removes the export's checkpoint once it stopped (waits for one being written).
  void RemoveCheckpoint(CheckpointStore* store);
  // A recovered export whose state came from `checkpoint` (call before the replay, before the
  // export is shared): its replay figures continue from the checkpoint's.
  void MarkRestoredFromCheckpoint(const durable::v1::AggregationCheckpoint& checkpoint);
  absl::Time last_checkpoint() const;
  // Checkpoints are not tried again for this export (UNIMPLEMENTED once).
  bool checkpoint_unsupported() const { return checkpoint_unsupported_.load(); }

  // Flushes every window, waits for delivery until `delivery_timeout` has passed, and returns
  // the export's figures. Idempotent: later calls return the same figures. Durable queues: the
  // files of what is undelivered at the deadline (counted as dropped) stay until
  // DiscardQueues, so that a crash before the figures are recorded finds them.
  v1::StopExportResponse Stop(absl::Duration delivery_timeout);
  // After Stop, once its figures are recorded durably: deletes its targets' queue files that
  // Stop left (their points counted as dropped). Idempotent.
  void DiscardQueues();
  // For a graceful stop that keeps the export for the next start (ExportRegistry::KeepAll):
  // ends it in this process without closing its open windows (they are rebuilt from the
  // write-ahead log then); points still queued for its targets are abandoned. A later Stop()
  // does nothing; samples ingested after it are refused (the export is stopping).
  void Keep();

  // Configuration (redacted), state and live figures.
  v1::ExportStatus Status() const;

  // StreamSamples calls feeding the export; the gRPC layer counts them. False (and nothing
  // counted) when `max` streams are open already.
  bool StreamOpened(int max);
  void StreamClosed();
  // The bytes the export's open streams keep for their declarations (ExportStatus.
  // stream_retained_bytes): a stream reports what it keeps (its StreamIngester::RetainedBytes()
  // plus its call's buffers: server/stream_calls.h CallRetainedBytes) as `now`
  // after each batch, and 0 before it closes; `reported` holds its previous report.
  void ReportStreamRetainedBytes(size_t now, size_t* reported);
  // IngestSamples streams, by their client-chosen id: through which sequence the stream's
  // batches are applied, and through which they are durable (acknowledgeable). They differ
  // only after a journal failure: batches applied but not durable are journaled again, not
  // applied, when resent.
  struct IngestStreamState {
    uint64_t applied_through = 0;
    uint64_t durable_through = 0;
    // Samples of the stream's batches through applied_through.
    uint64_t accepted = 0;
    uint64_t rejected = 0;
  };
  // Most stream ids one export remembers (RESOURCE_EXHAUSTED beyond).
  static constexpr size_t kMaxIngestStreams = 100000;
  // Attaches `stream_id` to one call and returns its state: UNAVAILABLE while another call
  // holds it, RESOURCE_EXHAUSTED for a new id beyond kMaxIngestStreams.
  absl::StatusOr<IngestStreamState> AttachIngestStream(const std::string& stream_id);
  // Releases the stream at the end of its call, with its state then.
  void DetachIngestStream(const std::string& stream_id, IngestStreamState state);
  // For recovery: the stream's batches through `sequence` are applied and durable, with
  // `accepted` and `rejected` samples (a stream attached to a call now is left alone).
  void RestoreStreamSequence(const std::string& stream_id, uint64_t sequence, uint64_t accepted,
                             uint64_t rejected);
  // Counts resent batches that were acknowledged again instead of applied.
  void CountDuplicateBatches(uint64_t n) { duplicate_batches_.fetch_add(n); }

  // Records activity (a batch arrived) for the idle timeout.
  void Touch() { last_activity_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed); }
  // No stream open and no activity since `since`.
  bool IdleSince(absl::Time since) const;

 private:
  Export(std::string id, Sender* sender);
  // The target's points sent as the figures give them: this process's deliveries and what the
  // recovery counted as delivered before it.
  uint64_t PointsSent(size_t target, const TargetFigures& f) const;
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
  absl::Time recovered_ = absl::InfinitePast();  // InfinitePast: not recovered
  uint64_t sequence_ = 0;
  durable::v1::ExportRecord record_;
  DeliveryMark mark_;
  // Per target: points not sent because the crashed process had delivered them (the mark's
  // suppression), and those a restored checkpoint says were sent; they count in the target's
  // points_sent.
  std::unique_ptr<std::atomic<uint64_t>[]> suppressed_per_target_;
  // Per target: the crashed process's queue files taken over (durable queues), and the newest
  // timestamp in them; set at creation.
  struct FromQueue {
    uint64_t points = 0;
    int64_t through_ms = 0;
  };
  std::vector<FromQueue> from_queue_;
  std::atomic<uint64_t> replayed_batches_{0};
  std::atomic<uint64_t> replayed_samples_{0};
  absl::Time checkpoint_restored_ = absl::InfinitePast();  // InfinitePast: not restored
  // The replayed batches the restored checkpoint counted (the status gives those after it).
  uint64_t checkpoint_base_batches_ = 0;
  std::atomic<bool> checkpoint_unsupported_{false};
  // One checkpoint at a time, and none after the stop's removal. Held for a whole checkpoint
  // (fsyncs): never taken by Status() or the ingest path.
  mutable Mutex checkpoint_mu_;
  bool checkpoint_removed_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  std::atomic<uint64_t> checkpoints_written_{0};
  std::atomic<int64_t> last_checkpoint_ms_{0};  // 0: none
  std::atomic<int> active_streams_{0};
  std::atomic<int64_t> stream_retained_bytes_{0};
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
  uint64_t points_already_stored = 0;
  uint64_t requests = 0;
  uint64_t retries = 0;
  uint64_t failures = 0;
  uint64_t bytes_sent = 0;
  std::map<std::string, uint64_t> points_dropped;  // by reason
};

// What ExportRegistry::Recover() found in the data directory.
struct RecoveryReport {
  // Exports running again.
  size_t recovered = 0;
  // Records that parsed but could not be brought back (a configuration this version refuses,
  // a target that cannot be set up): moved to corrupt/ with a WARN line each.
  size_t unrecoverable = 0;
  // Files that did not parse: moved to corrupt/.
  size_t corrupt = 0;
  // Stopped exports whose figures are kept for a retried StopExport.
  size_t stopped_kept = 0;
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
  // and delivered, bounded by the default delivery timeout), or after KeepAll() kept.
  ~ExportRegistry();

  // With a store: brings back every export recorded as running (oldest first), and sequences
  // continue after the highest recorded one. Call once, before anything else uses the
  // registry (the server calls it before it listens). Without a store: does nothing.
  // An error only when the store cannot be read at all (a directory cannot be listed).
  absl::StatusOr<RecoveryReport> Recover();

  // Validates the request and creates an export: INVALID_ARGUMENT naming the field for a bad
  // configuration, RESOURCE_EXHAUSTED when max_exports are running. With a store the export's
  // record is written before this returns; if it cannot be (RESOURCE_EXHAUSTED for a full
  // disk, UNAVAILABLE otherwise, naming the cause) the export is not created.
  absl::StatusOr<v1::StartExportResponse> Start(const v1::StartExportRequest& request);

  // The export with this id, or nullptr.
  std::shared_ptr<Export> Find(const std::string& id) const;
  // The export with this id: UNAVAILABLE "export <id> is owned by replica <r>" when the id
  // names another replica (CheckExportOwner), NOT_FOUND when there is none.
  absl::StatusOr<std::shared_ptr<Export>> Lookup(const std::string& id) const;

  // Stops and removes an export: errors as Lookup's. A zero timeout means the default. With a
  // store: the final figures are recorded (stopped/) before the export's record is removed, and
  // an id that stopped within the store's retention answers again with the figures of its
  // first stop. If they cannot be recorded, the export stays listed (STOPPING) and the error
  // (UNAVAILABLE or RESOURCE_EXHAUSTED) says to call Stop again.
  absl::StatusOr<v1::StopExportResponse> Stop(const std::string& id,
                                              absl::Duration delivery_timeout);

  // Stop() on the stop executor (never on the caller's thread, unless the registry is being
  // destroyed); `done` gets its result there. For callers that must not block (gRPC callbacks).
  void StopAsync(const std::string& id, absl::Duration delivery_timeout,
                 std::function<void(absl::StatusOr<v1::StopExportResponse>)> done);

  // After the write-ahead log's replay (JournalReplayer::Finish): every recovered export's
  // re-sent windows end where the crashed process's clock could have reached
  // (Export::EndRecoveryReplay).
  void EndRecoveryReplay();

  // Stops every export (for server shutdown) and returns how many there were.
  size_t StopAll();

  // For a graceful stop with a store (rwexport_server --data_dir, SIGTERM): keeps every
  // running export for the next start instead of stopping it. From now on Start and Stop are
  // refused UNAVAILABLE (stops already running finish); the timer stops (no window closes, no
  // idle stop); then it waits until `deadline` for the points already handed to the targets
  // to be delivered, and records each export's delivery mark. The exports stay recorded as
  // running; the destructor then ends them with Export::Keep(). Returns how many were kept.
  // Without a store: StopAll(). Call once nothing ingests any more (streams ended).
  size_t KeepAll(absl::Time deadline);

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
  // Checkpoints written and failed (not counting those not allowed at the moment, retried).
  uint64_t checkpoints_written() const { return checkpoints_written_.load(); }
  uint64_t checkpoints_failed() const { return checkpoints_failed_.load(); }
  // The aggregation workers the exports share.
  WorkerPool& pool() const { return *pool_; }
  // What Recover() found (all zero without a store or before Recover).
  RecoveryReport recovery() const;

  // The write-ahead log of accepted batches (with --data_dir), attached once it is open and
  // replayed (after Recover(), before anything listens). Borrowed: it must outlive the
  // registry. With one, a stop writes the export's stopped record to it (after its figures
  // are recorded), which lets the log be truncated behind the exports still running.
  void AttachJournal(ExportJournal* journal) { journal_.store(journal); }
  ExportJournal* journal() const { return journal_.load(); }

 private:
  void TickLoop();
  // Checkpoints running exports (ExportOptions::checkpoint_interval), off the ticker.
  void CheckpointLoop();
  // A new id, unique among running and remembered stopped exports.
  std::string UniqueExportId() const;
  // Recover() for one record: true if the export runs again.
  bool RecoverOne(const durable::v1::ExportRecord& record, absl::Time now);
  // With a store: records e's delivery mark if it advanced (from the ticker; or `after_stop`,
  // once its stop delivered every point, before its stopped record is written).
  void RecordDeliveryMark(Export& e, bool after_stop = false);
  // Writes the stopped record (with a store); an error to return from Stop, or OK.
  absl::Status RecordStopped(const Export& e, const v1::StopExportResponse& response);

  WorkerPool* const pool_;
  Sender* const sender_;
  const ExportOptions options_;

  // Stops idle exports, off the ticker thread.
  void StopIdle(const std::string& id);

  mutable Mutex mu_;
  CondVar cv_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // KeepAll() was called: the exports are kept for the next start, not stopped.
  bool keeping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::shared_ptr<Export>> exports_ ABSL_GUARDED_BY(mu_);
  RetiredTotals retired_ ABSL_GUARDED_BY(mu_);
  uint64_t exports_started_ ABSL_GUARDED_BY(mu_) = 0;
  RecoveryReport recovery_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> next_sequence_{1};
  std::atomic<ExportJournal*> journal_{nullptr};
  // Held while an export's running record is rewritten (RecordDeliveryMark) and before its
  // stopped record is written, so that a rewrite never follows the stop.
  Mutex record_mu_;
  // Idle exports whose stop is queued or running on stop_executor_.
  absl::flat_hash_set<std::string> idle_stopping_ ABSL_GUARDED_BY(mu_);
  // Runs StopAsync and idle stops; shut down (queued stops run) before StopAll at destruction.
  StopExecutor stop_executor_;
  std::thread ticker_;
  std::thread checkpointer_;
  std::atomic<uint64_t> checkpoints_written_{0};
  std::atomic<uint64_t> checkpoints_failed_{0};
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_EXPORT_EXPORT_H_
