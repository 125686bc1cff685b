#include "lib/remote_write/target_queue.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "lib/remote_write/request_plan.h"
#include "lib/remote_write/shard.h"

namespace rwexport {
namespace {

// At most one log line per target this often when its queue overflows.
constexpr absl::Duration kOverflowLogInterval = absl::Seconds(10);

}  // namespace

TargetQueue::TargetQueue(uint64_t id, TargetOptions opts, uint64_t spool_key, bool write_through)
    : id(id),
      options(std::move(opts)),
      display_url(DisplayUrl(options)),
      spool_key(spool_key),
      scrubber(options, display_url),
      write_through(write_through) {}

void TargetQueue::AddResumed(const std::vector<SpoolIndex::Claimed>& files) {
  MutexLock lock(&mu_);
  for (const SpoolIndex::Claimed& file : files) {
    QueuedBatch queued;
    queued.sequence = file.sequence;
    queued.points = file.points;
    queued.spooled = true;
    queued.resumed = true;
    queued.on_disk = true;
    waiting_.push_back(std::move(queued));
    ++waiting_spooled_batches_;
    waiting_spooled_points_ += file.points;
    figures_.points_from_spool += file.points;
    figures_.from_spool_through_ms =
        std::max(figures_.from_spool_through_ms, file.last_timestamp_ms);
  }
}

TargetQueue::PushResult TargetQueue::Push(PointBatch batch, BatchKind kind,
                                          std::atomic<uint64_t>& next_sequence, SpoolIndex* spool,
                                          absl::Time now) {
  PushResult result;
  const uint64_t points = batch.point_count();
  MutexLock lock(&mu_);
  if (removing_ || finished_) {
    DropLocked(points, DropReasonName(DropReason::kTargetRemoved));
    return result;
  }
  if (points == 0) return result;
  result.queued = true;
  QueuedBatch queued;
  queued.sequence = next_sequence++;
  queued.points = points;
  queued.kind = kind;
  queued.batch = std::move(batch);
  if (write_through && spool != nullptr) WriteThroughLocked(&queued, spool, &result);
  waiting_memory_points_ += queued.points;  // less any dropped by WriteThroughLocked
  waiting_.push_back(std::move(queued));
  EnforceBoundLocked(spool, &result);
  if ((result.dropped > 0 || result.spooled > 0) &&
      now - last_queue_full_log_ >= kOverflowLogInterval) {
    last_queue_full_log_ = now;
    result.log_overflow = true;
  }
  return result;
}

void TargetQueue::WriteThroughLocked(QueuedBatch* queued, SpoolIndex* spool, PushResult* result) {
  // Cut as the sender cuts a batch in memory (by shard, then by the caps), so that the file's
  // requests are the requests sent: after a crash, each is stored whole or not at all.
  const size_t shards = Shards(options);
  std::vector<PointBatch> by_shard = ShardBySeries(std::move(queued->batch.series), shards);
  queued->batch.series.clear();  // the owner stays: it keeps the contents' series alive
  SpoolFileHeader header;
  header.key = spool_key;
  header.display_url = display_url;
  header.first_timestamp_ms = std::numeric_limits<int64_t>::max();
  header.last_timestamp_ms = std::numeric_limits<int64_t>::min();
  uint64_t chain = 1;
  for (size_t shard = 0; shard < shards; ++shard) {
    if (by_shard[shard].series.empty()) continue;
    for (Piece& piece : CutIntoPieces(std::move(by_shard[shard]), options.max_points_per_request,
                                      options.max_bytes_per_request, &chain)) {
      absl::StatusOr<std::string> body = EncodeBody(piece.content);
      if (!body.ok()) {
        // As the sender drops a request it cannot encode.
        queued->points -= piece.points;
        DropLocked(piece.points, DropReasonName(DropReason::kEncodeError));
        result->spool_error = std::string(body.status().message());
        continue;
      }
      queued->requests.push_back(
          {piece.points, piece.chain, piece.max_timestamp_ms, *std::move(body)});
      queued->shards.push_back(static_cast<uint32_t>(shard));
      queued->contents.push_back(std::move(piece.content));
      header.first_timestamp_ms = std::min(header.first_timestamp_ms, piece.min_timestamp_ms);
      header.last_timestamp_ms = std::max(header.last_timestamp_ms, piece.max_timestamp_ms);
    }
  }
  queued->first_timestamp_ms = header.first_timestamp_ms;
  if (queued->requests.empty()) return;  // nothing left to send
  // Durable once its group commit ends (Snapshot, SpoolIndex::AwaitCommitted).
  const absl::Status status =
      spool->WriteGrouped(std::move(header), queued->sequence, queued->requests, id);
  if (status.ok()) {
    queued->on_disk = true;
    return;
  }
  // Delivered from memory all the same; not durable (the delivery mark waits for it).
  ++not_durable_batches_;
  result->spool_error = std::string(status.message());
}

void TargetQueue::NotDurableFinished() {
  MutexLock lock(&mu_);
  if (not_durable_batches_ > 0) --not_durable_batches_;
}

void TargetQueue::EnforceBoundLocked(SpoolIndex* spool, PushResult* result) {
  while (waiting_memory_points_ + active_points_ > options.max_queued_points &&
         waiting_memory_points_ > 0) {
    const auto oldest = waiting_.begin() + waiting_spooled_batches_;
    const uint64_t n = oldest->points;
    waiting_memory_points_ -= n;
    if (oldest->on_disk) {
      // Its file waits for its group commit: memory keeps it until then (the bound waits).
      if (spool != nullptr && !spool->Committed(oldest->sequence)) break;
      // Durable queue: the file holds it already; memory lets go.
      oldest->requests = std::vector<SpooledRequest>();
      oldest->shards = std::vector<uint32_t>();
      oldest->contents = std::vector<std::vector<SeriesPoints>>();
      oldest->batch = PointBatch();
      oldest->spooled = true;
      ++waiting_spooled_batches_;
      waiting_spooled_points_ += n;
      result->spooled += n;
      continue;
    }
    absl::Status status = absl::UnavailableError("no spool");
    if (write_through) {
      status = absl::UnavailableError(result->spool_error.empty() ? "not in the queue's files"
                                                                  : result->spool_error);
      if (not_durable_batches_ > 0) --not_durable_batches_;
    } else if (spool != nullptr) {
      SpoolFileHeader header;
      header.key = spool_key;
      header.display_url = display_url;
      status = spool->WriteBatch(std::move(header), oldest->sequence, std::move(oldest->batch),
                                 options.max_points_per_request, options.max_bytes_per_request, id);
      oldest->batch = PointBatch();
    }
    if (status.ok()) {
      oldest->spooled = true;
      ++waiting_spooled_batches_;
      waiting_spooled_points_ += n;
      result->spooled += n;
      continue;
    }
    if (spool != nullptr) result->spool_error = std::string(status.message());
    DropLocked(
        n, DropReasonName(spool != nullptr && !write_through && absl::IsResourceExhausted(status)
                              ? DropReason::kSpoolFull
                              : DropReason::kQueueFull));
    waiting_.erase(oldest);
    result->dropped += n;
  }
}

void TargetQueue::BeginRemoval(absl::Time deadline, QueueAtDeadline at_deadline) {
  MutexLock lock(&mu_);
  if (!removing_ || deadline < deadline_) deadline_ = deadline;
  if (!removing_ || at_deadline == QueueAtDeadline::kKeep) at_deadline_ = at_deadline;
  removing_ = true;
}

QueueAtDeadline TargetQueue::AtDeadline() const {
  MutexLock lock(&mu_);
  return at_deadline_;
}

TargetFigures TargetQueue::AwaitFinished() {
  MutexLock lock(&mu_);
  // The sender thread finishes the target by its deadline at the latest.
  while (!finished_) finished_cv_.Wait(&mu_);
  return SnapshotLocked();
}

TargetFigures TargetQueue::Snapshot(const SpoolIndex* spool) const {
  MutexLock lock(&mu_);
  TargetFigures out = SnapshotLocked();
  if (out.queue_written && spool != nullptr && spool->HasEvicted(id)) {
    out.queue_written = false;
    out.queue_durable = false;
  }
  if (out.queue_durable && spool != nullptr && spool->HasUncommitted(id)) {
    out.queue_durable = false;
  }
  return out;
}

TargetFigures TargetQueue::SnapshotLocked() const {
  TargetFigures out = figures_;
  out.points_queued = waiting_memory_points_ + waiting_spooled_points_ + active_points_;
  out.points_spooled_queued = waiting_spooled_points_;
  out.queue_written = write_through && not_durable_batches_ == 0;
  out.queue_durable = out.queue_written;
  return out;
}

bool TargetQueue::Removing(absl::Time* deadline) const {
  MutexLock lock(&mu_);
  *deadline = deadline_;
  return removing_;
}

std::optional<QueuedBatch> TargetQueue::TakeNext() {
  MutexLock lock(&mu_);
  if (waiting_.empty()) return std::nullopt;
  QueuedBatch queued = std::move(waiting_.front());
  waiting_.pop_front();
  if (queued.spooled) {
    --waiting_spooled_batches_;
    waiting_spooled_points_ -= queued.points;
  } else {
    waiting_memory_points_ -= queued.points;
  }
  active_points_ += queued.points;
  return queued;
}

void TargetQueue::DropEvicted(SpoolIndex& spool) {
  MutexLock lock(&mu_);
  const std::vector<uint64_t> sequences = spool.TakeEvicted(id);
  for (uint64_t sequence : sequences) {
    for (size_t i = waiting_spooled_batches_; i < waiting_.size(); ++i) {
      // Still in memory (durable queue): delivered from there, no longer durable.
      if (waiting_[i].sequence != sequence || !waiting_[i].on_disk) continue;
      waiting_[i].on_disk = false;
      ++not_durable_batches_;
      break;
    }
    for (size_t i = 0; i < waiting_spooled_batches_; ++i) {
      if (waiting_[i].sequence != sequence) continue;
      const uint64_t n = waiting_[i].points;
      waiting_.erase(waiting_.begin() + i);
      --waiting_spooled_batches_;
      waiting_spooled_points_ -= n;
      DropLocked(n, DropReasonName(DropReason::kSpoolFull));
      break;
    }
  }
}

bool TargetQueue::FinishIfDrained() {
  MutexLock lock(&mu_);
  // Push adds nothing once `removing_` is set, so empty now means empty for good.
  if (!removing_ || !waiting_.empty()) return false;
  finished_ = true;
  finished_cv_.SignalAll();
  return true;
}

std::deque<QueuedBatch> TargetQueue::TakeAll() {
  std::deque<QueuedBatch> out;
  MutexLock lock(&mu_);
  figures_.requests_in_flight = 0;  // abandoned by the caller
  removing_ = true;                 // Push drops from now on
  out.swap(waiting_);
  waiting_spooled_batches_ = 0;
  waiting_spooled_points_ = 0;
  waiting_memory_points_ = 0;
  active_points_ = 0;
  not_durable_batches_ = 0;
  return out;
}

void TargetQueue::Finish(const std::map<DropReason, uint64_t>& dropped, uint64_t spooled) {
  MutexLock lock(&mu_);
  for (const auto& [reason, n] : dropped) DropLocked(n, DropReasonName(reason));
  DropLocked(spooled, DropReasonName(DropReason::kSpooled));
  finished_ = true;
  finished_cv_.SignalAll();
}

void TargetQueue::AttemptStarted(bool retry) {
  MutexLock lock(&mu_);
  ++figures_.requests;
  ++figures_.requests_in_flight;
  if (retry) ++figures_.retries;
}

void TargetQueue::AttemptEnded(absl::Duration took) {
  MutexLock lock(&mu_);
  --figures_.requests_in_flight;
  figures_.send_duration.Observe(took);
}

void TargetQueue::AttemptFailed(std::string error) {
  MutexLock lock(&mu_);
  ++figures_.failures;
  figures_.last_error = std::move(error);
}

void TargetQueue::DeliveredActive(uint64_t points, uint64_t bytes, int64_t max_timestamp_ms,
                                  AlreadyStored already) {
  MutexLock lock(&mu_);
  active_points_ -= points;
  figures_.points_sent += points;
  if (already == AlreadyStored::kOnRetry) figures_.duplicate_on_retry += points;
  if (already == AlreadyStored::kRecoveryResend) figures_.points_already_stored += points;
  figures_.bytes_sent += bytes;
  figures_.highest_timestamp_ms = figures_.points_sent == points
                                      ? max_timestamp_ms
                                      : std::max(figures_.highest_timestamp_ms, max_timestamp_ms);
}

void TargetQueue::DropActive(uint64_t points, DropReason reason, long http_status,
                             std::optional<std::string> error, bool failure) {
  MutexLock lock(&mu_);
  if (failure) ++figures_.failures;
  if (error.has_value()) figures_.last_error = *std::move(error);
  active_points_ -= points;
  DropLocked(points, DropReasonName(reason, http_status));
}

void TargetQueue::DropLocked(uint64_t points, const std::string& reason) {
  if (points == 0) return;
  figures_.points_dropped += points;
  figures_.dropped_by_reason[reason] += points;
}

}  // namespace rwexport
