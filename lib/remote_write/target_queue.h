// One remote-write target's queue and figures, shared by the threads that enqueue and the
// sender thread: the batches waiting for their turn (spooled ones first, then those in
// memory), the memory bound with eviction to the spool, and every point's accounting (sent,
// dropped with a reason, or still queued).
//
// Durable queue (write_through): every batch is cut into its requests (by shard, as the sender
// sends them), encoded and written to its spool file before Push returns, durable once its group
// commit ends (spool_index.h: many files, one sync); memory keeps the encoded requests up to the
// bound, beyond it (once committed) only the file (read back in order when its turn comes). The
// file goes once the batch is delivered or dropped. One mechanism for overflow and durability:
// without write_through, only the batches beyond the bound are written.
//
// Batches leave the queue in enqueue order (TakeNext); the sender thread delivers them (several
// at once, see sender.h) and settles their points through the *Active methods. Thread-safe: every
// method takes the queue's mutex (lock order: this mutex, then the SpoolIndex's).
#ifndef RWEXPORT_LIB_REMOTE_WRITE_TARGET_QUEUE_H_
#define RWEXPORT_LIB_REMOTE_WRITE_TARGET_QUEUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "lib/common/duration_histogram.h"
#include "lib/common/mutex.h"
#include "lib/model/series.h"
#include "lib/remote_write/drop_reason.h"
#include "lib/remote_write/scrubber.h"
#include "lib/remote_write/spool.h"
#include "lib/remote_write/spool_index.h"
#include "lib/remote_write/target_options.h"

namespace rwexport {

// How a batch is to be delivered.
enum class BatchKind {
  kNormal,
  // A recovered export's window that the target may hold already (delivered by the crashed
  // process after its last delivery mark): sent one window per request, and a 400 "already
  // stored" answer to it counts as sent (points_already_stored), not as a drop.
  kRecoveryResend,
};

// What RemoveTarget does at its deadline with a durable queue's undelivered batches.
enum class QueueAtDeadline {
  // Their files are deleted and their points dropped ("shutdown_timeout").
  kDelete,
  // Their files stay for a later target with the same scope (the export is kept for the next
  // start); their points count as dropped "spooled".
  kKeep,
  // Their points are dropped ("shutdown_timeout"), but their files stay, held by the removed
  // target, until Sender::DiscardQueue: the caller records the drop durably in between, so that
  // a crash finds either the drop recorded or the files (delivered by a recovered export).
  kDeleteLater,
};

// Why the target already held the points of a request it refused as already stored.
enum class AlreadyStored {
  kNo,
  // A retry: an earlier attempt was stored but its answer was lost.
  kOnRetry,
  // A recovery re-send (BatchKind::kRecoveryResend).
  kRecoveryResend,
};

// What happened to a target's points so far. Every point enqueued or taken over from the spool
// (points_from_spool) is in exactly one of points_sent, points_dropped or points_queued.
struct TargetFigures {
  uint64_t points_sent = 0;
  // Of points_sent, those of retried requests that the target refused as already stored
  // ("out of order sample", "duplicate sample for timestamp"): an earlier attempt was stored
  // but its answer was lost.
  uint64_t duplicate_on_retry = 0;
  // Of points_sent, those of a recovered export's re-sent windows (BatchKind::kRecoveryResend)
  // that the target refused as already stored: the crashed process had delivered them.
  uint64_t points_already_stored = 0;
  // HTTP attempts started, retries included.
  uint64_t requests = 0;
  // Attempts started again after a failure.
  uint64_t retries = 0;
  // Attempts that did not end in 2xx (HTTP errors, network errors, timeouts).
  uint64_t failures = 0;
  uint64_t points_dropped = 0;
  // Compressed body bytes of delivered requests.
  uint64_t bytes_sent = 0;
  // Points dropped, by reason (drop_reason.h): "http_<code>" (rejected, not retried;
  // "http_413" for a single point too large), "queue_full", "shutdown_timeout" (RemoveTarget
  // deadline), "shutdown" (Sender destroyed), "target_removed" (enqueued after RemoveTarget
  // began), "encode_error"; with a spool: "spooled" (left on disk for a later target with the
  // same URL), "spool_full" (a spooled batch deleted to bound the spool, or too large for it),
  // "spool_error" (a spool file that could not be read back).
  absl::flat_hash_map<std::string, uint64_t> dropped_by_reason;
  // Highest timestamp among delivered points; 0 while nothing was delivered.
  int64_t highest_timestamp_ms = 0;
  // The last failure, for people ("HTTP 503: <start of body>", "curl: <error>"); never holds
  // credentials.
  std::string last_error;
  // Enqueued and not yet delivered or dropped (in memory or spooled).
  uint64_t points_queued = 0;
  // Of points_queued, those waiting in spool files.
  uint64_t points_spooled_queued = 0;
  // Points of earlier targets found in the spool when this one was added, delivered first.
  uint64_t points_from_spool = 0;
  // The newest timestamp among those points (0: none): a recovered export's replay does not
  // send its windows at or before it again.
  int64_t from_spool_through_ms = 0;
  // Durable queue (write_through): every queued point is in a queue file whose group commit
  // ended (spool_index.h), so a crash loses none of them (false without write_through, while a
  // batch could not be written, or while a commit is under way).
  bool queue_durable = false;
  // Every queued point is in a queue file, some perhaps waiting for their group commit: durable
  // once the commits under way end (Sender::AwaitQueueCommits).
  bool queue_written = false;
  // Requests on the wire now.
  uint64_t requests_in_flight = 0;
  // How long each completed attempt took (any answer or error), from curl's total time.
  DurationHistogram send_duration;
};

// A batch waiting for its turn.
struct QueuedBatch {
  uint64_t sequence = 0;
  uint64_t points = 0;
  BatchKind kind = BatchKind::kNormal;
  // The batch is the spool file with this sequence; `batch` is empty.
  bool spooled = false;
  // Taken over from the spool when the target was added (written by an earlier target, maybe
  // an earlier process, which may have delivered it before it could delete the file).
  bool resumed = false;
  // Durable queue: the batch's file exists (its requests are on disk).
  bool on_disk = false;
  // Durable queue: the batch as encoded requests (`batch` is then empty), each with its shard
  // in `shards`; empty once the batch is spooled (only its file holds it).
  std::vector<SpooledRequest> requests;
  std::vector<uint32_t> shards;
  // And each request's points, kept for a 413 split as for a batch in memory (batch.owner
  // keeps their series alive).
  std::vector<std::vector<SeriesPoints>> contents;
  // Durable queue: the oldest timestamp of `requests`.
  int64_t first_timestamp_ms = 0;
  PointBatch batch;
};

class TargetQueue {
 public:
  TargetQueue(uint64_t id, TargetOptions options, uint64_t spool_key, bool write_through = false);
  TargetQueue(const TargetQueue&) = delete;
  TargetQueue& operator=(const TargetQueue&) = delete;

  const uint64_t id;
  const TargetOptions options;
  const std::string display_url;  // holds no secret
  const uint64_t spool_key;
  const SecretScrubber scrubber;
  // Durable queue: every batch is written to the spool (which is then not null) before Push
  // returns.
  const bool write_through;

  // --- Callers' side.

  // Queues spool files taken over from earlier targets, before anything else.
  void AddResumed(const std::vector<SpoolIndex::Claimed>& files) ABSL_LOCKS_EXCLUDED(mu_);

  struct PushResult {
    bool queued = false;   // false: dropped as "target_removed", or empty
    uint64_t dropped = 0;  // oldest batches dropped to keep the bound
    uint64_t spooled = 0;  // oldest batches written to the spool to keep the bound
    std::string spool_error;
    bool log_overflow = false;  // at most one log line per 10 s
  };
  // Queues `batch` with the next sequence number; over max_queued_points, the oldest batches
  // in memory go to `spool` (may be null) or are dropped ("queue_full", "spool_full"). A
  // target being removed drops the batch ("target_removed").
  PushResult Push(PointBatch batch, BatchKind kind, std::atomic<uint64_t>& next_sequence,
                  SpoolIndex* spool, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Marks the target for removal by `deadline` (the earlier of several); Push drops from now.
  // `at_deadline`: what becomes of the durable queue's files then (kKeep wins over the others).
  void BeginRemoval(absl::Time deadline, QueueAtDeadline at_deadline = QueueAtDeadline::kDelete)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until the sender thread has finished the target; its final figures.
  TargetFigures AwaitFinished() ABSL_LOCKS_EXCLUDED(mu_);
  // `spool` (may be null): files of this target deleted to bound it and not yet seen by
  // DropEvicted make the queue not durable (nor written), files waiting for their group commit
  // not durable.
  TargetFigures Snapshot(const SpoolIndex* spool = nullptr) const ABSL_LOCKS_EXCLUDED(mu_);

  // --- The sender thread's side.

  // Whether removal began, and its deadline (InfiniteFuture when not).
  bool Removing(absl::Time* deadline) const ABSL_LOCKS_EXCLUDED(mu_);
  // What the removal does with the durable queue's files (BeginRemoval's at_deadline).
  QueueAtDeadline AtDeadline() const ABSL_LOCKS_EXCLUDED(mu_);
  // The oldest waiting batch, now active; nullopt when none waits.
  std::optional<QueuedBatch> TakeNext() ABSL_LOCKS_EXCLUDED(mu_);
  // A batch of the durable queue that had no file (it could not be written, or was deleted to
  // bound the spool) has been delivered or dropped.
  void NotDurableFinished() ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the waiting spooled batches whose files were deleted ("spool_full"); a batch still
  // in memory stays, no longer durable.
  // `spool` says which (TakeEvicted, under the queue's mutex, so Snapshot sees either the
  // evicted list or its effect).
  void DropEvicted(SpoolIndex& spool) ABSL_LOCKS_EXCLUDED(mu_);
  // Finishes the target when nothing waits (only once removal began); true if so.
  bool FinishIfDrained() ABSL_LOCKS_EXCLUDED(mu_);
  // Removal from now on; empties the queue and returns what waited, with no point active or in
  // flight any more: the caller settles them through Finish.
  std::deque<QueuedBatch> TakeAll() ABSL_LOCKS_EXCLUDED(mu_);
  // Counts the points the caller settled after TakeAll and marks the target finished.
  void Finish(const std::map<DropReason, uint64_t>& dropped, uint64_t spooled)
      ABSL_LOCKS_EXCLUDED(mu_);

  // An attempt started (`retry`: not the request's first).
  void AttemptStarted(bool retry) ABSL_LOCKS_EXCLUDED(mu_);
  // An attempt ended after `took`, whatever its outcome.
  void AttemptEnded(absl::Duration took) ABSL_LOCKS_EXCLUDED(mu_);
  // An attempt failed and will be retried.
  void AttemptFailed(std::string error) ABSL_LOCKS_EXCLUDED(mu_);
  // `points` of the active batch arrived in `bytes` (compressed), the latest at max_timestamp;
  // `already`: known from an "already stored" answer, and why (counted apart too).
  void DeliveredActive(uint64_t points, uint64_t bytes, int64_t max_timestamp_ms,
                       AlreadyStored already = AlreadyStored::kNo) ABSL_LOCKS_EXCLUDED(mu_);
  // `points` of the active batch are dropped for `reason` (`http_status` for kHttp). With
  // `error`, it becomes last_error, and counts as a failed attempt when `failure`.
  void DropActive(uint64_t points, DropReason reason, long http_status,
                  std::optional<std::string> error, bool failure) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void DropLocked(uint64_t points, const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TargetFigures SnapshotLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends the oldest batches in memory to the spool, or drops them, until the bound holds.
  void EnforceBoundLocked(SpoolIndex* spool, PushResult* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Durable queue: cuts `queued->batch` into its requests and writes its file; on failure the
  // requests stay in memory only (counted in not_durable_batches_).
  void WriteThroughLocked(QueuedBatch* queued, SpoolIndex* spool, PushResult* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  CondVar finished_cv_;
  // Batches not started yet, oldest first: the spooled ones, then those in memory.
  std::deque<QueuedBatch> waiting_ ABSL_GUARDED_BY(mu_);
  size_t waiting_spooled_batches_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t waiting_spooled_points_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t waiting_memory_points_ ABSL_GUARDED_BY(mu_) = 0;
  // Points of the batch being delivered that are neither delivered nor dropped yet.
  uint64_t active_points_ ABSL_GUARDED_BY(mu_) = 0;
  TargetFigures figures_ ABSL_GUARDED_BY(mu_);
  bool removing_ ABSL_GUARDED_BY(mu_) = false;
  QueueAtDeadline at_deadline_ ABSL_GUARDED_BY(mu_) = QueueAtDeadline::kDelete;
  // Durable queue: batches queued or being delivered that have no file.
  uint64_t not_durable_batches_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Set by the sender thread once it has let go of the target; figures are final.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_queue_full_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_TARGET_QUEUE_H_
