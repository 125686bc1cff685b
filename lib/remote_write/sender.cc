#include "lib/remote_write/sender.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/common/mutex.h"
#include "lib/remote_write/curl_transport.h"
#include "lib/remote_write/delivery.h"
#include "lib/remote_write/drop_reason.h"
#include "lib/remote_write/request_plan.h"
#include "lib/remote_write/retry_policy.h"
#include "lib/remote_write/shard.h"
#include "lib/remote_write/spool.h"
#include "lib/remote_write/spool_index.h"
#include "lib/remote_write/target_queue.h"

namespace rwexport {
namespace {

// The thread looks at its targets at least this often even when nothing happens.
constexpr absl::Duration kMaxPollWait = absl::Seconds(1);

BackoffOptions BackoffOf(const TargetOptions& options) {
  return BackoffOptions{options.min_backoff, options.max_backoff};
}

}  // namespace

// The sender thread's loop (Prometheus's shard loop): it owns the transport, the per-target
// delivery state and every request; callers reach it through the targets' queues and Wake.
class Sender::Impl {
 public:
  // `spool` is null without a spool.
  Impl(SenderOptions options, std::unique_ptr<SpoolIndex> spool);
  ~Impl();

  absl::StatusOr<TargetId> AddTarget(TargetOptions options);
  void Enqueue(TargetId id, PointBatch batch, BatchKind kind);
  TargetFigures RemoveTarget(TargetId id, absl::Time deadline, QueueAtDeadline at_deadline);
  uint64_t DiscardQueue(TargetId id);
  bool AwaitQueueCommits(absl::Duration timeout) {
    return spool_ == nullptr || spool_->AwaitCommitted(timeout);
  }
  TargetFigures Figures(TargetId id) const;
  SpoolFigures Spool() const;
  uint64_t DiscardUnclaimed();
  void Wake() { transport_.Wake(); }

 private:
  using Request = DeliveryRequest;

  std::shared_ptr<TargetQueue> Find(TargetId id) const;
  absl::Time Now() const { return options_.clock(); }

  // The sender thread and what only it calls.
  void Run();
  void Adopt(std::shared_ptr<TargetQueue> target);
  // Returns true when the target is finished and its state may be destroyed.
  bool Advance(TargetState& state, absl::Time now, absl::Time* wake_at);
  bool TakeBatch(TargetState& state);
  // Reads the spooled batch `queued` back as requests; when its file is gone or bad, its
  // points are dropped.
  void TakeSpooledBatch(TargetState& state, const std::shared_ptr<ActiveBatch>& batch,
                        const QueuedBatch& queued);
  void StartRequests(TargetState& state, absl::Time now, absl::Time* wake_at);
  // False when the request was dropped instead (it is then erased).
  bool Start(TargetState& state, Request& request, absl::Time now);
  void OnDone(CURL* easy, CURLcode result);
  void Retry(TargetState& state, Request& request, std::string error, absl::Duration delay);
  // Replaces a request answered 413 by its two halves.
  void SplitTooLarge(TargetState& state, Request& request);
  // Abandons everything in flight and queued (dropped with `reason`, or spooled when there is
  // a spool and the reason is a deadline or shutdown) and marks the target finished.
  void Abandon(TargetState& state, DropReason reason);
  void UpdateMaxConnects();

  const SenderOptions options_;
  const std::unique_ptr<SpoolIndex> spool_;
  CurlTransport transport_;

  mutable Mutex mu_;
  TargetId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<TargetId, std::shared_ptr<TargetQueue>> targets_ ABSL_GUARDED_BY(mu_);
  // Added, not yet seen by the sender thread.
  std::vector<std::shared_ptr<TargetQueue>> added_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Batch sequence numbers: enqueue order, and spool file order across restarts.
  std::atomic<uint64_t> next_sequence_{1};

  // Owned by the sender thread.
  absl::flat_hash_map<TargetId, std::unique_ptr<TargetState>> states_;
  absl::BitGen rng_;
  uint64_t next_chain_ = 1;

  std::thread thread_;  // last, so that it starts after everything above exists
};

Sender::Impl::Impl(SenderOptions options, std::unique_ptr<SpoolIndex> spool)
    : options_(std::move(options)), spool_(std::move(spool)) {
  if (spool_ != nullptr) next_sequence_ = spool_->last_sequence() + 1;
  UpdateMaxConnects();
  thread_ = std::thread([this] { Run(); });
}

Sender::Impl::~Impl() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
}

absl::StatusOr<Sender::TargetId> Sender::Impl::AddTarget(TargetOptions options) {
  if (absl::Status status = CheckTargetOptions(options); !status.ok()) return status;
  TargetId id;
  {
    MutexLock lock(&mu_);
    id = next_id_++;
  }
  const uint64_t key = SpoolKey(options.url, options.headers, options.queue_scope);
  auto target = std::make_shared<TargetQueue>(id, std::move(options), key,
                                              options_.write_through && spool_ != nullptr);
  std::vector<SpoolIndex::Claimed> claimed;
  if (spool_ != nullptr) {
    claimed = spool_->Claim(key, id);
    target->AddResumed(claimed);
  }
  {
    MutexLock lock(&mu_);
    targets_[id] = target;
    added_.push_back(target);
  }
  Wake();
  LogInfo("remote-write target added",
          {{"target", target->display_url}, {"target_id", absl::StrCat(id)}});
  if (!claimed.empty()) {
    const TargetFigures figures = target->Snapshot();
    LogInfo(options_.write_through ? "remote-write target resumes its queue from disk"
                                   : "remote-write target resumes spooled batches",
            {{"target", target->display_url},
             {"files", absl::StrCat(claimed.size())},
             {"points", absl::StrCat(figures.points_from_spool)},
             {"through_ms", absl::StrCat(figures.from_spool_through_ms)}});
  }
  return id;
}

void Sender::Impl::Enqueue(TargetId id, PointBatch batch, BatchKind kind) {
  std::shared_ptr<TargetQueue> target = Find(id);
  if (target == nullptr) {
    LogWarning("points for an unknown remote-write target are dropped",
               {{"target_id", absl::StrCat(id)}, {"points", absl::StrCat(batch.point_count())}});
    return;
  }
  TargetQueue::PushResult result;
  if (kind == BatchKind::kRecoveryResend) {
    // One batch per window, so that every request holds one window.
    for (PointBatch& window : SplitByTimestamp(std::move(batch))) {
      TargetQueue::PushResult one =
          target->Push(std::move(window), kind, next_sequence_, spool_.get(), Now());
      result.queued |= one.queued;
      result.dropped += one.dropped;
      result.spooled += one.spooled;
      result.log_overflow |= one.log_overflow;
      if (!one.spool_error.empty()) result.spool_error = std::move(one.spool_error);
    }
  } else {
    result = target->Push(std::move(batch), kind, next_sequence_, spool_.get(), Now());
  }
  if (!result.queued) return;
  if (result.log_overflow && result.dropped > 0) {
    LogWarning("remote-write queue full, oldest batches dropped",
               {{"target", target->display_url},
                {"points", absl::StrCat(result.dropped)},
                {"max_queued_points", absl::StrCat(target->options.max_queued_points)},
                {"spool_error", result.spool_error}});
  } else if (!result.spool_error.empty() && options_.write_through) {
    LogWarning(
        "a batch cannot be written to the remote-write queue on disk; it is delivered "
        "from memory only",
        {{"target", target->display_url}, {"error", result.spool_error}});
  } else if (result.log_overflow) {
    LogWarning("remote-write queue full, oldest batches spooled to disk",
               {{"target", target->display_url},
                {"points", absl::StrCat(result.spooled)},
                {"max_queued_points", absl::StrCat(target->options.max_queued_points)}});
  }
  Wake();
}

TargetFigures Sender::Impl::RemoveTarget(TargetId id, absl::Time deadline,
                                         QueueAtDeadline at_deadline) {
  std::shared_ptr<TargetQueue> target = Find(id);
  if (target == nullptr) return TargetFigures();
  target->BeginRemoval(deadline, at_deadline);
  Wake();
  const TargetFigures figures = target->AwaitFinished();
  {
    MutexLock lock(&mu_);
    targets_.erase(id);
  }
  LogInfo("remote-write target removed", {{"target", target->display_url},
                                          {"points_sent", absl::StrCat(figures.points_sent)},
                                          {"points_dropped", absl::StrCat(figures.points_dropped)},
                                          {"requests", absl::StrCat(figures.requests)},
                                          {"retries", absl::StrCat(figures.retries)},
                                          {"failures", absl::StrCat(figures.failures)}});
  return figures;
}

uint64_t Sender::Impl::DiscardQueue(TargetId id) {
  if (spool_ == nullptr) return 0;
  const auto [files, points] = spool_->DiscardOwned(id);
  if (files > 0) {
    LogInfo(
        "queue files of a removed remote-write target deleted (their points were counted "
        "as dropped)",
        {{"target_id", absl::StrCat(id)},
         {"files", absl::StrCat(files)},
         {"points", absl::StrCat(points)}});
  }
  return points;
}

TargetFigures Sender::Impl::Figures(TargetId id) const {
  std::shared_ptr<TargetQueue> target = Find(id);
  if (target == nullptr) return TargetFigures();
  return target->Snapshot(spool_.get());
}

SpoolFigures Sender::Impl::Spool() const {
  return spool_ == nullptr ? SpoolFigures() : spool_->Figures();
}

uint64_t Sender::Impl::DiscardUnclaimed() {
  if (spool_ == nullptr) return 0;
  const auto [files, points] = spool_->DiscardUnowned();
  if (files > 0) {
    LogWarning(
        "queued remote-write batches of exports no longer running deleted",
        {{"dir", spool_->dir()}, {"files", absl::StrCat(files)}, {"points", absl::StrCat(points)}});
  }
  return points;
}

std::shared_ptr<TargetQueue> Sender::Impl::Find(TargetId id) const {
  MutexLock lock(&mu_);
  auto it = targets_.find(id);
  return it == targets_.end() ? nullptr : it->second;
}

void Sender::Impl::Run() {
  while (true) {
    bool stopping;
    std::vector<std::shared_ptr<TargetQueue>> added;
    {
      MutexLock lock(&mu_);
      stopping = stopping_;
      added.swap(added_);
    }
    for (std::shared_ptr<TargetQueue>& target : added) Adopt(std::move(target));
    if (stopping) {
      for (auto& [id, state] : states_) Abandon(*state, DropReason::kShutdown);
      states_.clear();
      return;
    }

    const absl::Time now = Now();
    absl::Time wake_at = now + kMaxPollWait;
    bool removed = false;
    for (auto it = states_.begin(); it != states_.end();) {
      if (Advance(*it->second, now, &wake_at)) {
        states_.erase(it++);
        removed = true;
      } else {
        ++it;
      }
    }
    if (removed) UpdateMaxConnects();

    // A finished request may let the next ones start at once.
    if (transport_.Perform([this](CURL* easy, CURLcode result) { OnDone(easy, result); })) {
      continue;
    }
    transport_.Poll(std::min(wake_at - Now(), kMaxPollWait));
  }
}

void Sender::Impl::Adopt(std::shared_ptr<TargetQueue> target) {
  const TargetId id = target->id;
  states_[id] = std::make_unique<TargetState>(std::move(target));
  UpdateMaxConnects();
}

void Sender::Impl::UpdateMaxConnects() {
  // Enough idle connections in the cache for every target's in-flight requests to be reused.
  long connections = 8;
  for (const auto& [id, state] : states_) {
    connections += static_cast<long>(std::min<size_t>(state->target->options.max_in_flight, 1024));
  }
  transport_.SetMaxConnects(connections);
}

bool Sender::Impl::Advance(TargetState& state, absl::Time now, absl::Time* wake_at) {
  TargetQueue& target = *state.target;
  if (spool_ != nullptr) target.DropEvicted(*spool_);
  absl::Time deadline;
  const bool removing = target.Removing(&deadline);
  if (removing && now >= deadline) {
    Abandon(state, DropReason::kShutdownTimeout);
    return true;
  }
  StartRequests(state, now, wake_at);
  if (!removing) return false;
  if (state.requests.empty() && target.FinishIfDrained()) return true;
  *wake_at = std::min(*wake_at, deadline);
  return false;
}

bool Sender::Impl::TakeBatch(TargetState& state) {
  TargetQueue& target = *state.target;
  std::optional<QueuedBatch> queued = target.TakeNext();
  if (!queued.has_value()) return false;
  auto batch = std::make_shared<ActiveBatch>();
  batch->sequence = queued->sequence;
  batch->kind = queued->kind;
  ++state.active_batches;
  if (queued->spooled) {
    // A file an earlier process may have delivered before it could delete it.
    if (queued->resumed) batch->kind = BatchKind::kRecoveryResend;
    TakeSpooledBatch(state, batch, *queued);
    if (batch->requests == 0) FinishBatch(state, *batch, spool_.get());
    return true;
  }
  if (!queued->requests.empty()) {
    // A durable queue's batch, cut and encoded when it was queued; its file stays until every
    // request has ended.
    batch->from_spool = queued->on_disk && spool_->Take(queued->sequence, target.id);
    batch->not_durable = !queued->on_disk;
    batch->owner = queued->batch.owner;
    absl::flat_hash_map<uint64_t, uint64_t> chains;  // the batch's chain ids -> ours
    for (size_t i = 0; i < queued->requests.size(); ++i) {
      SpooledRequest& spooled = queued->requests[i];
      Piece piece;
      piece.points = spooled.points;
      piece.max_timestamp_ms = spooled.max_timestamp_ms;
      piece.min_timestamp_ms = queued->first_timestamp_ms;
      piece.content = std::move(queued->contents[i]);
      if (spooled.chain != 0) {
        auto [it, inserted] = chains.try_emplace(spooled.chain, next_chain_);
        if (inserted) ++next_chain_;
        piece.chain = it->second;
      }
      Request* request =
          AddRequest(state, state.requests.end(), std::move(piece), batch, queued->shards[i]);
      request->encoded = true;
      request->body = std::move(spooled.body);
    }
    if (batch->requests == 0) FinishBatch(state, *batch, spool_.get());
    return true;
  }
  batch->owner = queued->batch.owner;
  // Prometheus's queue manager shards the same way: a series always goes to shard
  // hash(series) % shards, and a shard has one request in flight at a time, in order
  // (StartRequests), so its points arrive in order while the shards travel in parallel.
  const TargetOptions& options = target.options;
  const size_t shards = Shards(options);
  std::vector<PointBatch> by_shard = ShardBySeries(std::move(queued->batch.series), shards);
  for (size_t shard = 0; shard < shards; ++shard) {
    if (by_shard[shard].series.empty()) continue;
    for (Piece& piece : CutIntoPieces(std::move(by_shard[shard]), options.max_points_per_request,
                                      options.max_bytes_per_request, &next_chain_)) {
      AddRequest(state, state.requests.end(), std::move(piece), batch,
                 static_cast<uint32_t>(shard));
    }
  }
  if (batch->requests == 0) FinishBatch(state, *batch, spool_.get());
  return true;
}

void Sender::Impl::TakeSpooledBatch(TargetState& state, const std::shared_ptr<ActiveBatch>& batch,
                                    const QueuedBatch& queued) {
  TargetQueue& target = *state.target;
  // The file stays until every request of the batch has ended.
  const bool present = spool_ != nullptr && spool_->Take(queued.sequence, target.id);
  DropReason reason = DropReason::kSpoolFull;  // deleted to bound the spool meanwhile
  if (present) {
    const std::string path = spool_->Path(target.spool_key, queued.sequence);
    absl::StatusOr<std::pair<SpoolFileHeader, std::vector<SpooledRequest>>> file =
        ReadSpoolFile(path);
    if (file.ok() && file->first.points == queued.points) {
      batch->from_spool = true;
      absl::flat_hash_map<uint64_t, uint64_t> chains;  // the file's chain ids -> ours
      for (SpooledRequest& spooled : file->second) {
        Piece piece;
        piece.points = spooled.points;
        piece.max_timestamp_ms = spooled.max_timestamp_ms;
        piece.min_timestamp_ms = file->first.first_timestamp_ms;
        if (spooled.chain != 0) {
          auto [it, inserted] = chains.try_emplace(spooled.chain, next_chain_);
          if (inserted) ++next_chain_;
          piece.chain = it->second;
        }
        Request* request =
            AddRequest(state, state.requests.end(), std::move(piece), batch, kAllShards);
        request->encoded = true;
        request->body = std::move(spooled.body);
      }
      return;
    }
    const std::string error =
        file.ok() ? "point count differs from the index" : std::string(file.status().message());
    LogError("unreadable spool file; its points are dropped",
             {{"target", target.display_url}, {"file", path}, {"error", error}});
    unlink(path.c_str());
    reason = DropReason::kSpoolError;
  }
  target.DropActive(queued.points, reason, 0, std::nullopt, false);
}

void Sender::Impl::StartRequests(TargetState& state, absl::Time now, absl::Time* wake_at) {
  const TargetOptions& options = state.target->options;
  const size_t shards = Shards(options);
  // Batches taken ahead while shards are free; bounds what leaves the (spillable) queue.
  const size_t max_active_batches = 2 * shards + 1;
  while (true) {
    // A request waits while an earlier request of its shard has not ended; a request read
    // from the spool waits for every earlier batch, and every later batch waits for it;
    // within a spooled batch, a piece of a long series waits for the piece before it.
    ShardGate gate(shards);
    const ActiveBatch* first_batch =
        state.requests.empty() ? nullptr : state.requests.front()->batch.get();
    for (auto it = state.requests.begin(); it != state.requests.end();) {
      Request& request = **it;
      if (gate.Waits(request.shard, request.batch.get() == first_batch, request.chain) ||
          request.easy != nullptr) {
        gate.Occupy(request.shard);
        ++it;
        continue;
      }
      if (state.in_flight >= options.max_in_flight) return;
      auto next = std::next(it);
      const uint32_t shard = request.shard;
      if (request.not_before > now) {
        *wake_at = std::min(*wake_at, request.not_before);
      } else if (const uint64_t chain = request.chain; !Start(state, request, now)) {
        // Dropped and erased: the next request of its shard (or chain) may go.
        gate.Dropped(shard, chain);
        it = next;
        continue;
      }
      gate.Occupy(shard);
      it = next;
    }
    // Another batch, while a shard is free and there is room in flight.
    if (state.in_flight >= options.max_in_flight || !gate.AnyFree() ||
        state.active_batches >= max_active_batches) {
      return;
    }
    if (!TakeBatch(state)) return;
  }
}

bool Sender::Impl::Start(TargetState& state, Request& request, absl::Time now) {
  TargetQueue& target = *state.target;
  if (!request.encoded) {
    absl::StatusOr<std::string> body = EncodeBody(request.content);
    if (!body.ok()) {
      const std::string error = target.scrubber.Scrub(std::string(body.status().message()));
      target.DropActive(request.points, DropReason::kEncodeError, 0, error, false);
      LogError("cannot encode a remote-write request; its points are dropped",
               {{"target", target.display_url}, {"error", error}});
      EraseRequest(state, request, spool_.get());
      return false;
    }
    request.body = *std::move(body);
    request.encoded = true;
  }
  EasyPtr easy = state.pool.Take();
  if (easy != nullptr) state.pool.Prepare(easy.get(), request.body, &request.transfer, &request);
  if (easy == nullptr || !transport_.Add(easy.get())) {
    // Out of memory, or refused by libcurl: try again later rather than lose the points.
    if (easy != nullptr) state.pool.Return(std::move(easy));
    request.not_before = now + Backoff(BackoffOf(target.options), request.attempts + 1,
                                       absl::Uniform(rng_, 0.0, 1.0));
    return true;
  }
  request.easy = std::move(easy);
  ++state.in_flight;
  ++request.attempts;
  target.AttemptStarted(request.attempts > 1);
  return true;
}

void Sender::Impl::OnDone(CURL* easy, CURLcode result) {
  const TransferResult transfer = EasyPool::Read(easy);
  Request& request = *static_cast<Request*>(transfer.owner);
  TargetState& state = *request.owner;
  TargetQueue& target = *state.target;
  transport_.Remove(easy);
  --state.in_flight;
  target.AttemptEnded(transfer.total_time);
  // Back to the pool; nothing of the request may be reached through the handle any more.
  state.pool.Return(std::move(request.easy));

  AttemptOutcome outcome;
  outcome.curl_code = result;
  outcome.http_status = transfer.http_status;
  if (transfer.retry_after.has_value()) outcome.retry_after = *transfer.retry_after;
  outcome.attempts = request.attempts;
  outcome.recovery_resend = request.batch->kind == BatchKind::kRecoveryResend;
  outcome.points = request.points;
  outcome.has_content = !request.content.empty();
  outcome.body = request.transfer.response_start;
  const absl::Time now = Now();
  const RetryDecision decision =
      DecideAfterAttempt(outcome, BackoffOf(target.options), now, absl::Uniform(rng_, 0.0, 1.0));
  if (result != CURLE_OK) {
    const std::string detail =
        request.transfer.error[0] != '\0' ? request.transfer.error : curl_easy_strerror(result);
    Retry(state, request, target.scrubber.Scrub(absl::StrCat("curl: ", detail)), decision.delay);
    return;
  }
  const long status = transfer.http_status;
  const std::string body = target.scrubber.Scrub(Printable(request.transfer.response_start));
  const std::string error = absl::StrCat("HTTP ", status, body.empty() ? "" : ": ", body);
  switch (decision.action) {
    case RetryDecision::Action::kDeliver:
      target.DeliveredActive(request.points, request.body.size(), request.max_timestamp_ms);
      if (state.failing) {
        state.failing = false;
        LogInfo("remote-write target delivers again", {{"target", target.display_url}});
      }
      EraseRequest(state, request, spool_.get());
      return;
    case RetryDecision::Action::kAlreadyDelivered:
      if (outcome.recovery_resend) {
        target.DeliveredActive(request.points, request.body.size(), request.max_timestamp_ms,
                               AlreadyStored::kRecoveryResend);
        // Expected for every window the crashed process had delivered: one line per target.
        if (!state.logged_already_stored) {
          state.logged_already_stored = true;
          LogInfo(
              "remote-write target already holds a window re-sent after recovery (the crashed "
              "process had delivered it); its points count as sent (points_already_stored)",
              {{"target", target.display_url},
               {"status", absl::StrCat(status)},
               {"points", absl::StrCat(request.points)},
               {"body", body}});
        }
      } else {
        target.DeliveredActive(request.points, request.body.size(), request.max_timestamp_ms,
                               AlreadyStored::kOnRetry);
        LogInfo(
            "remote-write target already holds a retried request (an earlier attempt was "
            "stored); its points count as sent",
            {{"target", target.display_url},
             {"status", absl::StrCat(status)},
             {"points", absl::StrCat(request.points)},
             {"attempt", absl::StrCat(request.attempts)},
             {"body", body}});
      }
      if (state.failing) {
        state.failing = false;
        LogInfo("remote-write target delivers again", {{"target", target.display_url}});
      }
      EraseRequest(state, request, spool_.get());
      return;
    case RetryDecision::Action::kRetry:
      Retry(state, request, error, decision.delay);
      return;
    case RetryDecision::Action::kSplit:
      target.AttemptFailed(error);
      if (!request.split) {
        LogWarning("remote-write target refused a request as too large; sending it in halves",
                   {{"target", target.display_url},
                    {"points", absl::StrCat(request.points)},
                    {"bytes", absl::StrCat(request.body.size())},
                    {"body", body}});
      }
      SplitTooLarge(state, request);
      return;
    case RetryDecision::Action::kDrop:
      target.DropActive(request.points, decision.reason, decision.http_status, error, true);
      LogWarning("remote-write target rejected a request; its points are dropped",
                 {{"target", target.display_url},
                  {"status", absl::StrCat(status)},
                  {"points", absl::StrCat(request.points)},
                  {"body", body}});
      EraseRequest(state, request, spool_.get());
      return;
  }
}

void Sender::Impl::SplitTooLarge(TargetState& state, Request& request) {
  for (Piece& half :
       SplitInHalves(std::move(request.content), request.points, request.chain, &next_chain_)) {
    AddRequest(state, request.self, std::move(half), request.batch, request.shard)->split = true;
  }
  EraseRequest(state, request, spool_.get());
}

void Sender::Impl::Retry(TargetState& state, Request& request, std::string error,
                         absl::Duration delay) {
  TargetQueue& target = *state.target;
  request.not_before = Now() + delay;
  if (!state.failing) {
    state.failing = true;
    LogWarning("remote-write request failed; retrying with backoff",
               {{"target", target.display_url},
                {"error", error},
                {"retry_in", absl::FormatDuration(delay)}});
  }
  target.AttemptFailed(std::move(error));
}

void Sender::Impl::Abandon(TargetState& state, DropReason reason) {
  for (const std::unique_ptr<Request>& request : state.requests) {
    if (request->easy != nullptr) transport_.Remove(request->easy.get());
  }
  state.in_flight = 0;
  TargetQueue& target = *state.target;
  const QueueAtDeadline at_deadline = target.AtDeadline();
  std::deque<QueuedBatch> waiting = target.TakeAll();
  // A durable queue keeps its files for the next start (destruction, or kKeep); a target
  // removed for good (its export stopped) drops them at its deadline, at once or (kDeleteLater)
  // once the caller recorded the drop: the files stay held by this target until DiscardQueue.
  const bool keep_queue = at_deadline == QueueAtDeadline::kKeep;
  const bool later = options_.write_through && reason == DropReason::kShutdownTimeout &&
                     at_deadline == QueueAtDeadline::kDeleteLater;
  const bool spool =
      spool_ != nullptr && (reason == DropReason::kShutdown || keep_queue || later ||
                            (reason == DropReason::kShutdownTimeout && !options_.write_through));
  // Who holds the files written or kept here: no one (a later target takes them over), or this
  // target until DiscardQueue.
  const SpoolIndex::Owner keeper = later ? target.id : SpoolIndex::kNoOwner;
  std::map<DropReason, uint64_t> dropped;
  uint64_t spooled = 0;
  AbandonActive(state, reason, spool_.get(), spool, keeper, &dropped, &spooled);

  for (QueuedBatch& queued : waiting) {
    if (queued.on_disk && !spool) {
      // A durable queue's file, dropped with its points.
      spool_->Discard(queued.sequence, target.id);
      dropped[reason] += queued.points;
      continue;
    }
    if (queued.on_disk && !queued.spooled) {
      // A durable queue's batch still in memory: its file stays for a target added later.
      if (spool_->Release(queued.sequence, target.id, keeper)) {
        spooled += queued.points;
      } else {
        dropped[DropReason::kSpoolFull] += queued.points;
      }
      continue;
    }
    if (!queued.requests.empty()) {
      // A durable queue's batch without a file.
      absl::Status status = absl::UnavailableError("no spool");
      if (spool) {
        SpoolFileHeader header = SpoolHeaderOf(target);
        header.first_timestamp_ms = queued.first_timestamp_ms;
        header.last_timestamp_ms = std::numeric_limits<int64_t>::min();
        for (const SpooledRequest& r : queued.requests) {
          header.last_timestamp_ms = std::max(header.last_timestamp_ms, r.max_timestamp_ms);
        }
        status = spool_->Write(std::move(header), queued.sequence, queued.requests, keeper);
      }
      if (status.ok()) {
        spooled += queued.points;
      } else {
        dropped[spool && absl::IsResourceExhausted(status) ? DropReason::kSpoolFull : reason] +=
            queued.points;
      }
      continue;
    }
    if (queued.spooled) {
      // For a target added later.
      if (spool_ != nullptr && spool_->Release(queued.sequence, target.id, keeper)) {
        spooled += queued.points;
      } else {
        dropped[DropReason::kSpoolFull] += queued.points;
      }
      continue;
    }
    absl::Status status = absl::UnavailableError("no spool");
    if (spool) {
      status = spool_->WriteBatch(SpoolHeaderOf(target), queued.sequence, std::move(queued.batch),
                                  target.options.max_points_per_request,
                                  target.options.max_bytes_per_request, keeper);
    }
    if (status.ok()) {
      spooled += queued.points;
    } else {
      dropped[spool && absl::IsResourceExhausted(status) ? DropReason::kSpoolFull : reason] +=
          queued.points;
    }
  }
  if (later) {
    // Kept only until the caller recorded their drop.
    dropped[reason] += spooled;
    spooled = 0;
  }
  if (spool_ != nullptr) spool_->TakeEvicted(target.id);

  uint64_t lost = 0;
  for (const auto& [why, n] : dropped) lost += n;
  if (lost > 0) {
    LogWarning("remote-write target abandoned with points undelivered",
               {{"target", target.display_url},
                {"reason", DropReasonName(reason)},
                {"points", absl::StrCat(lost)}});
  }
  if (spooled > 0) {
    LogWarning(options_.write_through
                   ? "remote-write target's undelivered points stay in its queue on disk for a "
                     "later start"
                   : "remote-write target's undelivered points spooled to disk",
               {{"target", target.display_url},
                {"reason", DropReasonName(reason)},
                {"points", absl::StrCat(spooled)},
                {"spool_dir", spool_->dir()}});
  }
  target.Finish(dropped, spooled);
}

Sender::Sender() : impl_(std::make_unique<Impl>(SenderOptions(), nullptr)) {}
Sender::Sender(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sender::~Sender() = default;

absl::StatusOr<std::unique_ptr<Sender>> Sender::Create(SenderOptions options) {
  if (options.write_through && options.spool_dir.empty()) {
    return absl::InvalidArgumentError("durable queues (write_through) need a spool directory");
  }
  std::unique_ptr<SpoolIndex> spool;
  if (!options.spool_dir.empty()) {
    absl::StatusOr<std::unique_ptr<SpoolIndex>> opened =
        SpoolIndex::Open(options.spool_dir, options.spool_max_bytes, options.write_through,
                         options.queue_commit_gate);
    if (!opened.ok()) return opened.status();
    spool = *std::move(opened);
  }
  return std::unique_ptr<Sender>(
      new Sender(std::make_unique<Impl>(std::move(options), std::move(spool))));
}

absl::StatusOr<Sender::TargetId> Sender::AddTarget(TargetOptions options) {
  return impl_->AddTarget(std::move(options));
}
void Sender::Enqueue(TargetId id, PointBatch batch, BatchKind kind) {
  impl_->Enqueue(id, std::move(batch), kind);
}
TargetFigures Sender::RemoveTarget(TargetId id, absl::Time deadline, QueueAtDeadline at_deadline) {
  return impl_->RemoveTarget(id, deadline, at_deadline);
}
uint64_t Sender::DiscardQueue(TargetId id) { return impl_->DiscardQueue(id); }
bool Sender::AwaitQueueCommits(absl::Duration timeout) { return impl_->AwaitQueueCommits(timeout); }
TargetFigures Sender::Figures(TargetId id) const { return impl_->Figures(id); }
SpoolFigures Sender::Spool() const { return impl_->Spool(); }
uint64_t Sender::DiscardUnclaimed() { return impl_->DiscardUnclaimed(); }
void Sender::ClockMoved() { impl_->Wake(); }

}  // namespace rwexport
