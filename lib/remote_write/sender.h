// Delivery of exported points to Prometheus remote-write endpoints.
//
// One Sender owns one background thread that owns a libcurl multi handle: it encodes each
// request (WriteRequest + snappy), POSTs it, retries 5xx, 429 and network errors with backoff,
// and accounts for every point (sent, or dropped with a reason). Other threads hand it work
// through per-target queues and never wait on the network.
//
// Per target, as in Prometheus's queue manager, series are sharded: a series always goes to
// shard hash(labels) % max_in_flight. A batch is split by shard, then into requests of at most
// `max_points_per_request` points and `max_bytes_per_request` encoded bytes (a series is split
// only when it alone exceeds a cap). A shard has one request in flight at a time, in enqueue
// order, and the shards travel in parallel (several batches may be under way), so a slow
// target still gets `max_in_flight` requests at once and the points of one series always
// arrive in order. A batch read back from the spool (its requests may hold any series) waits
// for the batches before it, and those after it wait for it.
//
// Answers: 2xx delivers. 5xx, network errors and timeouts are retried with exponential backoff
// and jitter (min_backoff..max_backoff), without a retry limit: the queue bound and the
// RemoveTarget deadline bound them. 429 is retried after its Retry-After (no sooner than
// min_backoff, no later than an hour), or with backoff when it has none. 413 splits the
// request in two halves (by series, or a single series by points; the halves keep the order)
// and sends them, recursively; a single point still refused is dropped as "http_413". Any
// other answer (4xx, and redirects, which are not followed) drops the request's points as
// "http_<code>" and is logged with the start of the response body, except that a 400 "out of
// order sample" or "duplicate sample for timestamp" (the target holds the points already) to a
// retry, or to a recovered export's re-sent window (Enqueue's kRecoveryResend), counts as sent
// (duplicate_on_retry, points_already_stored).
//
// Secrets: logs, last_error and spool files show a target only by its display_url; the raw
// URL, the bearer token, the password and secret query values are replaced by "REDACTED" in
// any error text (curl messages, response bodies) before it is logged or kept.
//
// Durable queues (SenderOptions::write_through, with spool_dir): the spool is the target's queue
// on disk. Every batch is cut into its requests and written there before Enqueue returns
// (TargetQueue: memory keeps the encoded requests within the bound, beyond it only the file,
// read back in order), and its file is deleted once the batch is delivered or dropped. A target
// added later with the same URL, headers and queue_scope (a recovered export, after a crash)
// delivers the files first, and a 400 "already stored" to one of them counts as sent
// (points_already_stored): its requests are those the crashed process sent, which may have
// arrived before it could delete the file. The files are group-committed (spool_index.h): a
// batch is durable once its group's sync ends, shortly after Enqueue returns (the figures'
// queue_durable, AwaitQueueCommits). At a RemoveTarget deadline the files are deleted (dropped
// "shutdown_timeout"), kept for a later target, or kept until DiscardQueue (QueueAtDeadline);
// at destruction they stay.
//
// Spool (SenderOptions::spool_dir without write_through): when a target's memory queue is full, its
// oldest batches not yet started are written to disk instead of dropped, and read back in order
// when their turn comes; at the RemoveTarget deadline and at destruction, whatever is undelivered
// is written there too (reported as dropped "spooled"), and a target added later with the same URL
// and extra headers (in this process, or in a new Sender on the same directory after a restart)
// delivers it before its own batches. Credentials are not written: resuming needs the target
// configured again. The directory is bounded by spool_max_bytes: the oldest files are deleted to
// make room ("spool_full").
//
// Parts, as in Prometheus's queue manager: target_queue.h (per-target queue, bound, eviction
// to the spool, figures), request_plan.h (cutting, 413 halves), retry_policy.h (what to do
// after an attempt, pure functions), curl_transport.h (multi loop, easy-handle pools),
// spool_index.h, target_options.h, scrubber.h; sender.cc is the sender thread's loop.
//
// Time (backoff, Retry-After, deadlines) comes from SenderOptions::clock.
//
// Thread-safe: every public method may be called from any thread.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_SENDER_H_
#define RWEXPORT_LIB_REMOTE_WRITE_SENDER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/model/series.h"
#include "lib/remote_write/retry_policy.h"    // ParseRetryAfter
#include "lib/remote_write/spool_index.h"     // SpoolFigures
#include "lib/remote_write/target_options.h"  // TargetOptions, CheckTargetLimits
#include "lib/remote_write/target_queue.h"    // TargetFigures

namespace rwexport {

// Options of a whole Sender.
struct SenderOptions {
  // Directory for batches that do not fit in memory or were not delivered in time; created if
  // missing (one level). Empty: no spool. One Sender per directory at a time.
  std::string spool_dir;
  // Bound on the spool files' total size; the oldest files are deleted beyond it.
  uint64_t spool_max_bytes = uint64_t{1} << 30;
  // Durable queues (needs spool_dir): every batch is written to the spool directory before
  // Enqueue returns, not only those beyond the memory bound, and its file is deleted once the
  // batch is delivered or dropped; a target added later with the same URL, extra headers and
  // TargetOptions::queue_scope (after a crash) delivers them first. See target_queue.h.
  bool write_through = false;
  // Durable queues, tests only: called by the queue's committer before each group commit's sync
  // (spool_index.h), without locks; may block to let a group grow.
  std::function<void()> queue_commit_gate;
  // The clock of retries, backoff, Retry-After dates and RemoveTarget deadlines; tests replace
  // it (and then call Sender::ClockMoved after moving it).
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

class Sender {
 public:
  using TargetId = uint64_t;

  // Starts the sender thread; no spool.
  Sender();
  // A Sender with `options`: creates and scans the spool directory (INVALID_ARGUMENT when it
  // cannot be used, FAILED_PRECONDITION when another Sender holds it).
  static absl::StatusOr<std::unique_ptr<Sender>> Create(SenderOptions options);
  // Stops the thread; points not yet delivered are dropped with reason "shutdown".
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // Validates `options` (URL scheme and host, credentials, headers, TLS files readable, limits)
  // and registers the target. INVALID_ARGUMENT names the offending option.
  absl::StatusOr<TargetId> AddTarget(TargetOptions options);

  // Queues `batch` for delivery after the batches enqueued before it. Never blocks on the
  // network. If the target's points in memory would then exceed max_queued_points, the oldest
  // batches not yet started are written to the spool (this call then writes to disk), or
  // without a spool dropped ("queue_full"), the new batch included if it must be.
  // Points for a target being removed are dropped ("target_removed"); an unknown id is logged.
  // kRecoveryResend (a recovered export's windows that the target may hold already): the
  // batch is queued as one batch per window (SplitByTimestamp), oldest first, so each request
  // holds one window, and a 400 "already stored" answer to one counts as sent
  // (points_already_stored), not as a drop.
  void Enqueue(TargetId id, PointBatch batch, BatchKind kind = BatchKind::kNormal);

  // Blocks until everything enqueued for the target so far is delivered or dropped, or until
  // `deadline` (by SenderOptions::clock), when what is still undelivered is dropped
  // ("shutdown_timeout") and requests in flight are abandoned. Then removes the target and returns
  // its final figures. An unknown id returns empty figures.
  // `at_deadline` (durable queues): what becomes of the queue files of what is undelivered at
  // the deadline (target_queue.h): deleted, kept for a later target with the same scope
  // (dropped as "spooled"), or kept until DiscardQueue (dropped "shutdown_timeout").
  TargetFigures RemoveTarget(TargetId id, absl::Time deadline,
                             QueueAtDeadline at_deadline = QueueAtDeadline::kDelete);

  // Deletes the queue files that target `id`, removed with QueueAtDeadline::kDeleteLater, kept
  // at its deadline (its figures counted their points as dropped). Returns their points.
  uint64_t DiscardQueue(TargetId id);

  // Durable queues: waits up to `timeout` until every queue file written before the call is
  // committed (spool_index.h); false on timeout. True at once without durable queues.
  bool AwaitQueueCommits(absl::Duration timeout);

  // A snapshot of the target's figures; empty figures for an unknown id.
  TargetFigures Figures(TargetId id) const;

  // The spool's size and losses; zeros without a spool.
  SpoolFigures Spool() const;

  // Durable queues, once every target that may resume files was added (after a recovery):
  // deletes the files no target took over (their export is no longer running), logged, and
  // counted in SpoolFigures::points_dropped_unowned. Returns the points deleted.
  uint64_t DiscardUnclaimed();

  // For a SenderOptions::clock that is not the wall clock: the clock moved, so the sender looks
  // at its timers (backoff, Retry-After, deadlines) at once rather than within a second.
  void ClockMoved();

 private:
  class Impl;
  explicit Sender(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_SENDER_H_
