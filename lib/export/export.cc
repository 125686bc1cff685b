#include "lib/export/export.h"

#include <algorithm>
#include <future>
#include <optional>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "lib/common/crash_point.h"
#include "lib/common/log.h"
#include "lib/config/config.h"
#include "lib/export/ownership.h"

namespace rwexport {
namespace {

// Start and Stop while a graceful stop keeps the exports for the next start.
absl::Status KeptError() {
  return absl::UnavailableError(
      "the server is stopping and keeps its exports for its next start; retry when it is back");
}

// A new id: 32 random hex digits, prefixed by the replica's name in a fleet (ownership.h).
std::string NewExportId(const std::string& replica_id) {
  static absl::BitGen* const gen = new absl::BitGen();
  static Mutex* const mu = new Mutex();
  MutexLock lock(mu);
  return MakeExportId(replica_id, absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(*gen),
                                                  absl::Uniform<uint64_t>(*gen)));
}

// The server's delivery limits (`defaults`) with the target's own URL, credentials and TLS.
TargetOptions SenderOptionsFor(const TargetConfig& target, const TargetOptions& defaults) {
  TargetOptions o = defaults;
  o.url = target.url;
  o.display_url = target.redacted_url;
  o.bearer_token = target.bearer_token;
  o.username = target.username;
  o.password = target.password;
  if (target.sigv4) {
    o.sigv4 = SigV4Key{target.sigv4->region, target.sigv4->service, target.sigv4->access_key,
                       target.sigv4->secret_key, target.sigv4->session_token};
  }
  o.headers = target.headers;
  o.ca_file = target.ca_file;
  o.cert_file = target.cert_file;
  o.key_file = target.key_file;
  o.insecure_skip_verify = target.insecure_skip_verify;
  o.timeout = target.timeout;
  return o;
}

}  // namespace

void FillRejections(const Rejections& from, google::protobuf::RepeatedPtrField<v1::Rejection>* to) {
  for (const auto& [reason, r] : from) {
    v1::Rejection* out = to->Add();
    out->set_reason(reason);
    out->set_count(r.count);
    out->set_example(r.example);
  }
}

Export::Export(std::string id, Sender* sender) : id_(std::move(id)), sender_(sender) {}

absl::StatusOr<std::unique_ptr<Export>> Export::Create(std::string id, uint64_t sequence,
                                                       const v1::StartExportRequest& request,
                                                       ExportConfig config, WorkerPool* pool,
                                                       Sender* sender,
                                                       const ExportOptions& options) {
  std::unique_ptr<Export> e(new Export(std::move(id), sender));
  e->sequence_ = sequence;
  e->test_run_id_ = request.test_run_id();
  e->started_ = absl::Now();
  e->Touch();
  for (const v1::Target& target : request.targets()) {
    e->redacted_targets_.push_back(RedactTarget(target));
  }
  for (size_t t = 0; t < config.targets.size(); ++t) {
    TargetOptions target_options = SenderOptionsFor(config.targets[t], options.sender_defaults);
    // With durable queues: the target's queue files are this export's (a recovered export
    // takes over those of the crashed process).
    target_options.queue_scope = absl::StrCat(e->id_, "/", t);
    absl::StatusOr<Sender::TargetId> target = sender->AddTarget(std::move(target_options));
    if (!target.ok()) {
      for (Sender::TargetId added : e->targets_) sender->RemoveTarget(added, absl::Now());
      return absl::Status(target.status().code(),
                          absl::StrCat("targets[", t, "]: ", target.status().message()));
    }
    e->targets_.push_back(*target);
  }
  e->suppressed_per_target_ = std::make_unique<std::atomic<uint64_t>[]>(e->targets_.size());
  // A recovered export's targets took over the crashed process's queue files: the replay does
  // not send their windows again.
  for (Sender::TargetId t : e->targets_) {
    const TargetFigures f = sender->Figures(t);
    e->from_queue_.push_back({f.points_from_spool, f.from_spool_through_ms});
  }
  Export* raw = e.get();
  AggregatorOptions aggregator_options = options.aggregator;
  aggregator_options.on_series_refused = [raw,
                                          per_target = options.aggregator.max_series_per_target,
                                          per_export = options.aggregator.max_series_per_export](
                                             size_t target, absl::string_view limit) {
    raw->OnSeriesRefused(target, limit, limit == "max_series_per_target" ? per_target : per_export);
  };
  const std::vector<std::pair<std::string, MetricInfo>> declarations = config.metric_declarations;
  e->aggregator_ = Aggregator::Create(
      std::move(config), pool,
      [raw](size_t target, PointBatch batch) {
        uint64_t suppressed = 0;
        const int64_t max_ts =
            raw->mark_.Filter(&batch, &suppressed, raw->from_queue_[target].through_ms);
        if (suppressed > 0) raw->suppressed_per_target_[target] += suppressed;
        // After a recovery: what the crashed process may have delivered goes first, one
        // window per request (delivery_mark.h).
        PointBatch resend = raw->mark_.TakeResend(&batch);
        if (!resend.series.empty()) {
          raw->sender_->Enqueue(raw->targets_[target], std::move(resend),
                                BatchKind::kRecoveryResend);
        }
        if (!batch.series.empty()) raw->sender_->Enqueue(raw->targets_[target], std::move(batch));
        raw->mark_.Enqueued(max_ts);
      },
      std::move(aggregator_options));
  // Checked by ValidateStartExport: declaring cannot fail (a repeated name keeps the first).
  for (const auto& [name, info] : declarations) e->aggregator_->Declare(name, info).IgnoreError();
  return e;
}

void Export::OnSeriesRefused(size_t target, absl::string_view limit, size_t max) {
  constexpr absl::Duration kEvery = absl::Minutes(1);
  const bool per_target = limit == "max_series_per_target";
  const absl::Time now = absl::Now();
  uint64_t refused;
  bool first;
  {
    MutexLock lock(&refusal_mu_);
    RefusalLog& log =
        refusal_logs_[per_target ? absl::StrCat(limit, "/", target) : std::string(limit)];
    ++log.since_warned;
    if (now - log.last_warned < kEvery) return;
    first = log.last_warned == absl::InfinitePast();
    refused = log.since_warned;
    log.last_warned = now;
    log.since_warned = 0;
  }
  const std::string where =
      per_target ? absl::StrCat("target ", target, " (",
                                aggregator_->config().targets[target].redacted_url, ")")
                 : "the export";
  LogWarning(first ? "series limit reached: new series are refused, samples that would only "
                     "feed them are rejected (series_limit)"
                   : "series limit still refusing new series",
             {{"export_id", id_},
              {"test_run_id", test_run_id_},
              {"limit", std::string(limit)},
              {"max", absl::StrCat(max)},
              {"where", where},
              {"refused", absl::StrCat(refused)},
              {"repeated_at_most_every", absl::FormatDuration(kEvery)}});
}

Export::~Export() { Stop(absl::ZeroDuration()); }

void Export::MarkRecovered(absl::Time started, absl::Time recovered) {
  started_ = started;
  recovered_ = recovered;
}

void Export::EndRecoveryReplay(absl::Time now) {
  if (recovered_ == absl::InfinitePast()) return;
  int64_t window_ms = 0;
  for (const TargetConfig& target : aggregator_->config().targets) {
    window_ms = std::max<int64_t>(window_ms, int64_t{1000} * target.resample_rate_s);
  }
  // The crashed process closed windows whose end (plus the lateness) its clock reached: at most
  // the newest sample or the wall clock now (samples are not stamped far ahead); a stop under
  // way when it crashed also closed the window holding its clock and put stale markers one
  // window later.
  const int64_t through =
      std::max(absl::ToUnixMillis(now), aggregator_->NewestSampleMs()) + 2 * window_ms + 1;
  mark_.ResendThrough(through);
  LogInfo("recovered export: windows after the delivery mark are re-sent one per request",
          {{"export_id", id_},
           {"delivered_through_ms", absl::StrCat(mark_.recorded())},
           {"resend_through_ms", absl::StrCat(through)},
           {"points_resent_so_far", absl::StrCat(mark_.resent())}});
}

bool Export::DeliveredOrQueueWritten(bool* queued) const {
  *queued = false;
  if (aggregator_->Flushing()) return false;
  for (Sender::TargetId t : targets_) {
    const TargetFigures f = sender_->Figures(t);
    if (f.points_queued > 0 && !f.queue_written) return false;
    *queued = *queued || f.points_queued > 0;
  }
  return true;
}

bool Export::DeliveredOrDurablyQueued() const {
  bool queued = false;
  if (!DeliveredOrQueueWritten(&queued)) return false;
  // Every queue file written before now (those of the points the mark would cover) committed;
  // files written after it may still be under way (queue_written, not queue_durable).
  return !queued || sender_->AwaitQueueCommits(kQueueCommitWait);
}

uint64_t Export::PointsFromQueue() const {
  uint64_t points = 0;
  for (const FromQueue& q : from_queue_) points += q.points;
  return points;
}

bool Export::NothingQueued() const {
  if (aggregator_->Flushing()) return false;
  for (Sender::TargetId t : targets_) {
    if (sender_->Figures(t).points_queued > 0) return false;
  }
  return true;
}

v1::StopExportResponse Export::Stop(absl::Duration delivery_timeout) {
  MutexLock lock(&mu_);
  if (stopped_) return result_;
  stopped_ = true;
  stopping_ = true;
  aggregator_->Stop();
  const absl::Time deadline = absl::Now() + delivery_timeout;
  const AggregatorFigures agg = aggregator_->Figures();
  result_.set_samples_accepted(agg.samples_accepted);
  result_.set_samples_rejected(agg.samples_rejected);
  FillRejections(agg.rejections, result_.mutable_rejections());
  for (size_t t = 0; t < targets_.size(); ++t) {
    FillTargetFigures(t,
                      sender_->RemoveTarget(targets_[t], deadline, QueueAtDeadline::kDeleteLater),
                      agg, result_.add_targets());
    result_.mutable_targets(t)->set_series_refused(agg.series_refused_per_target[t]);
  }
  return result_;
}

void Export::Keep() {
  MutexLock lock(&mu_);
  if (stopped_) return;
  stopped_ = true;
  // No flush may reach the sink (which points at this export) once it is gone.
  aggregator_->Abandon();
  const absl::Time now = absl::Now();
  for (Sender::TargetId t : targets_) sender_->RemoveTarget(t, now, QueueAtDeadline::kKeep);
}

void Export::DiscardQueues() {
  for (Sender::TargetId t : targets_) sender_->DiscardQueue(t);
}

void FillHistogram(const DurationHistogram& from, v1::DurationHistogram* to) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < from.counts().size(); ++i) {
    cumulative += from.counts()[i];
    if (i < DurationHistogram::kBoundsSeconds.size()) {
      to->add_upper_bounds_seconds(DurationHistogram::kBoundsSeconds[i]);
    }
    to->add_cumulative_counts(cumulative);
  }
  to->set_sum_seconds(from.sum_seconds());
  to->set_count(from.count());
}

uint64_t Export::PointsSent(size_t target, const TargetFigures& f) const {
  // Points the crashed process had delivered count as sent: the recovered export rebuilt them
  // and does not send them again (and a restored checkpoint's figure is counted the same way).
  // The points of the crashed process's queue files are rebuilt and suppressed too, but they
  // are delivered from the files (and counted in f.points_sent) in this process.
  const uint64_t suppressed = suppressed_per_target_[target].load();
  const uint64_t from_queue = from_queue_[target].points;
  return f.points_sent + (suppressed > from_queue ? suppressed - from_queue : 0);
}

void Export::FillTargetFigures(size_t target, const TargetFigures& f, const AggregatorFigures& agg,
                               v1::TargetFigures* out) const {
  out->set_remote_write_url(aggregator_->config().targets[target].redacted_url);
  out->set_series(agg.series_per_target[target]);
  out->set_exported_series(agg.exported_series_per_target[target]);
  out->set_points_sent(PointsSent(target, f));
  out->set_duplicate_on_retry(f.duplicate_on_retry);
  out->set_points_already_stored(f.points_already_stored);
  out->set_requests(f.requests);
  out->set_retries(f.retries);
  out->set_failures(f.failures);
  out->set_points_dropped(f.points_dropped);
  for (const auto& [reason, n] : f.dropped_by_reason) {
    (*out->mutable_dropped_by_reason())[reason] = n;
  }
  out->set_bytes_sent(f.bytes_sent);
  out->set_highest_timestamp_ms(f.highest_timestamp_ms);
  out->set_last_error(f.last_error);
  out->set_points_pending(f.points_queued);
  out->set_requests_in_flight(static_cast<uint32_t>(f.requests_in_flight));
  FillHistogram(f.send_duration, out->mutable_send_duration());
}

bool Export::StreamOpened(int max) {
  int open = active_streams_.load();
  do {
    if (open >= max) return false;
  } while (!active_streams_.compare_exchange_weak(open, open + 1));
  Touch();
  return true;
}

void Export::StreamClosed() {
  --active_streams_;
  Touch();
}

void Export::ReportStreamRetainedBytes(size_t now, size_t* reported) {
  if (now == *reported) return;
  stream_retained_bytes_.fetch_add(static_cast<int64_t>(now) - static_cast<int64_t>(*reported),
                                   std::memory_order_relaxed);
  *reported = now;
}

bool Export::IdleSince(absl::Time since) const {
  return active_streams_.load() == 0 &&
         last_activity_ns_.load(std::memory_order_relaxed) < absl::ToUnixNanos(since);
}

absl::StatusOr<Export::IngestStreamState> Export::AttachIngestStream(const std::string& stream_id) {
  MutexLock lock(&ingest_mu_);
  auto it = ingest_streams_.find(stream_id);
  if (it == ingest_streams_.end()) {
    if (ingest_streams_.size() >= kMaxIngestStreams) {
      return absl::ResourceExhaustedError(
          absl::StrCat("export \"", id_, "\" already knows ", kMaxIngestStreams, " stream ids"));
    }
    it = ingest_streams_.emplace(stream_id, IngestStream()).first;
  } else if (it->second.attached) {
    return absl::UnavailableError(absl::StrCat(
        "stream \"", stream_id,
        "\" is still attached to an earlier call (the server has not seen it end yet); retry"));
  }
  it->second.attached = true;
  return it->second.state;
}

void Export::DetachIngestStream(const std::string& stream_id, IngestStreamState state) {
  MutexLock lock(&ingest_mu_);
  IngestStream& stream = ingest_streams_[stream_id];
  stream.state = state;
  stream.attached = false;
}

void Export::RestoreStreamSequence(const std::string& stream_id, uint64_t sequence,
                                   uint64_t accepted, uint64_t rejected) {
  MutexLock lock(&ingest_mu_);
  IngestStream& stream = ingest_streams_[stream_id];
  if (stream.attached || sequence <= stream.state.applied_through) return;
  stream.state = {sequence, sequence, accepted, rejected};
}

bool Export::CheckpointAllowed(bool* queued) const {
  // Every window flushed so far is delivered or in its target's queue files (with --data_dir;
  // their group commit may still be under way: WriteCheckpoint waits for it after the cut, so
  // the cut never waits for a sync): the checkpoint's points_sent_per_target counts both, and
  // after a restart the queue files' points of windows before the checkpoint are delivered from
  // the files (counted in points_sent) without being rebuilt, which is what PointsSent
  // subtracts (lib/durable/checkpoints.md, "Checkpoints while a target is down"). Points queued
  // only in memory (no durable queue, or a queue file that could not be written) would be lost
  // with a crash: no checkpoint then.
  return DeliveredOrQueueWritten(queued);
}

absl::Status Export::WriteCheckpoint(ExportJournal* journal, CheckpointStore* store) {
  MutexLock lock(&checkpoint_mu_);
  if (stopping_.load() || checkpoint_removed_) {
    return absl::FailedPreconditionError("the export is stopping");
  }
  if (checkpoint_unsupported_.load()) {
    return absl::UnimplementedError("checkpoints do not cover this export yet");
  }
  // The checkpoint record is appended at the cut: every batch logged before it was dispatched
  // before the cut, so it is in the state; those dispatched before the cut and logged after it
  // are told apart at replay by their stream's sequence (lib/durable/checkpoints.md).
  std::promise<absl::StatusOr<WalPosition>> record;
  bool appended = false;
  std::vector<uint64_t> points_sent;
  bool queued = false;
  absl::StatusOr<AggregatorSnapshot> snapshot = aggregator_->Snapshot(
      [this, journal, &record, &appended, &points_sent, &queued]() -> absl::Status {
        if (!CheckpointAllowed(&queued)) {
          return absl::AbortedError("points are queued for a target but not in its queue files");
        }
        for (size_t t = 0; t < targets_.size(); ++t) {
          // Sent and queued from one look at the target (a delivery moves points from one to
          // the other under the target's lock).
          const TargetFigures f = sender_->Figures(targets_[t]);
          points_sent.push_back(PointsSent(t, f) + f.points_queued);
        }
        journal->AppendCheckpoint(id_, [&record](absl::StatusOr<WalPosition> position) {
          record.set_value(std::move(position));
        });
        appended = true;
        return absl::OkStatus();
      });
  absl::StatusOr<WalPosition> covers =
      appended ? record.get_future().get() : absl::StatusOr<WalPosition>(WalPosition{});
  if (!snapshot.ok()) {
    if (absl::IsUnimplemented(snapshot.status())) checkpoint_unsupported_ = true;
    return snapshot.status();
  }
  if (!covers.ok()) return covers.status();
  // The queue files of the points counted as sent are durable before the checkpoint is (a
  // checkpoint record without its file is ignored at replay).
  if (queued && !sender_->AwaitQueueCommits(kQueueCommitWait)) {
    return absl::AbortedError("the target queue files are not synced yet");
  }
  durable::v1::AggregationCheckpoint checkpoint;
  checkpoint.set_export_id(id_);
  SetCheckpointPosition(*covers, &checkpoint);
  const absl::Time now = absl::Now();
  checkpoint.set_written_unix_ms(absl::ToUnixMillis(now));
  for (const auto& [stream_id, progress] : snapshot->streams) {
    durable::v1::StreamProgress* p = checkpoint.add_streams();
    p->set_stream_id(stream_id);
    p->set_sequence(progress.sequence);
    p->set_accepted(progress.accepted);
    p->set_rejected(progress.rejected);
  }
  checkpoint.set_replayed_batches(replayed_batches_.load());
  checkpoint.set_replayed_samples(replayed_samples_.load());
  checkpoint.set_aggregation_state(std::move(snapshot->state));
  for (uint64_t sent : points_sent) checkpoint.add_points_sent_per_target(sent);
  if (absl::Status written = store->Write(checkpoint); !written.ok()) return written;
  ++checkpoints_written_;
  last_checkpoint_ms_ = absl::ToUnixMillis(now);
  return journal->CheckpointCovered(id_, *covers);
}

void Export::RemoveCheckpoint(CheckpointStore* store) {
  MutexLock lock(&checkpoint_mu_);
  checkpoint_removed_ = true;
  if (absl::Status removed = store->Remove(id_); !removed.ok()) {
    LogWarning("the stopped export's checkpoint cannot be removed",
               {{"export_id", id_}, {"error", std::string(removed.message())}});
  }
}

absl::Time Export::last_checkpoint() const {
  const int64_t ms = last_checkpoint_ms_.load();
  return ms == 0 ? absl::InfinitePast() : absl::FromUnixMillis(ms);
}

void Export::MarkRestoredFromCheckpoint(const durable::v1::AggregationCheckpoint& checkpoint) {
  checkpoint_restored_ = absl::FromUnixMillis(checkpoint.written_unix_ms());
  checkpoint_base_batches_ = checkpoint.replayed_batches();
  AddReplayed(checkpoint.replayed_batches(), checkpoint.replayed_samples());
  // Counted in points_sent as the crashed process's delivered points are. The checkpoint's
  // figure includes the points then durably queued: those still in the queue files are
  // delivered from them (and counted again in this process's points_sent), and they are part
  // of from_queue_, which PointsSent subtracts; those the crashed process delivered after the
  // checkpoint are not in the files (and not rebuilt: their windows are before the cut).
  for (size_t t = 0;
       t < targets_.size() && t < static_cast<size_t>(checkpoint.points_sent_per_target_size());
       ++t) {
    suppressed_per_target_[t] += checkpoint.points_sent_per_target(static_cast<int>(t));
  }
}

v1::ExportStatus Export::Status() const {
  v1::ExportStatus status;
  status.set_export_id(id_);
  status.set_test_run_id(test_run_id_);
  status.set_state(stopping_ ? v1::ExportStatus::STOPPING : v1::ExportStatus::RUNNING);
  status.set_started_unix_ms(absl::ToUnixMillis(started_));
  if (recovered_ != absl::InfinitePast()) {
    status.set_recovered_unix_ms(absl::ToUnixMillis(recovered_));
    status.set_replayed_batches(replayed_batches_.load());
    status.set_replayed_samples(replayed_samples_.load());
    status.set_points_suppressed_on_recovery(mark_.suppressed());
    status.set_points_resent_on_recovery(mark_.resent());
    const int64_t resend_through = mark_.resend_through();
    status.set_resend_through_ms(resend_through == DeliveryMark::kResendAll ? 0 : resend_through);
    if (checkpoint_restored_ != absl::InfinitePast()) {
      status.set_checkpoint_unix_ms(absl::ToUnixMillis(checkpoint_restored_));
      status.set_checkpoint_replayed_batches(replayed_batches_.load() - checkpoint_base_batches_);
    }
  }
  status.set_checkpoints_written(checkpoints_written_.load());
  status.set_last_checkpoint_unix_ms(last_checkpoint_ms_.load());
  status.set_delivered_through_ms(mark_.recorded());
  status.set_active_streams(static_cast<uint32_t>(std::max(0, active_streams_.load())));
  status.set_stream_retained_bytes(static_cast<uint64_t>(
      std::max<int64_t>(0, stream_retained_bytes_.load(std::memory_order_relaxed))));
  status.set_duplicate_batches(duplicate_batches_.load());
  {
    MutexLock lock(&ingest_mu_);
    status.set_ingest_streams(static_cast<uint32_t>(ingest_streams_.size()));
  }
  const AggregatorFigures agg = aggregator_->Figures();
  status.set_samples_accepted(agg.samples_accepted);
  status.set_samples_rejected(agg.samples_rejected);
  status.set_samples_late(agg.samples_late);
  status.set_windows_flushed(agg.windows_flushed);
  FillHistogram(agg.flush_duration, status.mutable_flush_duration());
  FillHistogram(agg.window_delay, status.mutable_window_delay());
  FillRejections(agg.rejections, status.mutable_rejections());
  for (size_t t = 0; t < targets_.size(); ++t) {
    *status.add_targets() = redacted_targets_[t];
    FillTargetFigures(t, sender_->Figures(targets_[t]), agg, status.add_figures());
    status.mutable_figures(t)->set_series_refused(agg.series_refused_per_target[t]);
  }
  return status;
}

// ---------------------------------------------------------------------------------------------

ExportRegistry::ExportRegistry(WorkerPool* pool, Sender* sender, ExportOptions options)
    : pool_(pool),
      sender_(sender),
      options_(std::move(options)),
      stop_executor_(options_.stop_threads) {
  ticker_ = std::thread([this] { TickLoop(); });
  if (options_.checkpoints != nullptr && options_.checkpoint_interval > absl::ZeroDuration()) {
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
  }
}

ExportRegistry::~ExportRegistry() {
  {
    MutexLock lock(&mu_);
    shutting_down_ = true;
    cv_.SignalAll();
  }
  if (ticker_.joinable()) ticker_.join();
  if (checkpointer_.joinable()) checkpointer_.join();
  stop_executor_.Shutdown();  // queued stops run: their callers get their answers
  std::vector<std::shared_ptr<Export>> kept;
  {
    MutexLock lock(&mu_);
    if (keeping_) {
      for (auto& [id, e] : exports_) kept.push_back(std::move(e));
      exports_.clear();
    }
  }
  if (kept.empty()) {
    StopAll();
    return;
  }
  for (const std::shared_ptr<Export>& e : kept) e->Keep();
}

size_t ExportRegistry::KeepAll(absl::Time deadline) {
  if (options_.store == nullptr) return StopAll();
  {
    MutexLock lock(&mu_);
    keeping_ = true;
    shutting_down_ = true;  // the timer ends
    cv_.SignalAll();
  }
  if (ticker_.joinable()) ticker_.join();
  stop_executor_.Shutdown();  // stops already running finish; queued ones are refused
  std::vector<std::shared_ptr<Export>> exports;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, e] : exports_) exports.push_back(e);
  }
  // What was handed to the targets is delivered while the deadline allows (bounded; polled as
  // the timer polls the mark), so that the next start sends none of it again.
  for (const std::shared_ptr<Export>& e : exports) {
    while (!e->NothingQueued() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    RecordDeliveryMark(*e);
    uint64_t queued = 0;
    const v1::ExportStatus status = e->Status();
    for (const v1::TargetFigures& t : status.figures()) queued += t.points_pending();
    LogInfo("export kept for the next start",
            {{"export_id", e->id()},
             {"test_run_id", e->test_run_id()},
             {"delivered_through_ms", absl::StrCat(e->delivery_mark().recorded())},
             {"points_not_delivered", absl::StrCat(queued)}});
  }
  return exports.size();
}

void ExportRegistry::StopIdle(const std::string& id) {
  LogInfo("export idle; stopping it",
          {{"export_id", id}, {"idle_timeout", absl::FormatDuration(options_.idle_timeout)}});
  const absl::Status stopped = Stop(id, options_.default_delivery_timeout).status();
  MutexLock lock(&mu_);
  // An export whose final figures could not be recorded in the data dir (logged by Stop) stays
  // marked: the ticker does not retry it every tick; StopExport or shutdown do.
  if (stopped.ok() || stopped.code() == absl::StatusCode::kNotFound) idle_stopping_.erase(id);
}

void ExportRegistry::StopAsync(const std::string& id, absl::Duration delivery_timeout,
                               std::function<void(absl::StatusOr<v1::StopExportResponse>)> done) {
  auto stop = [this, id, delivery_timeout, done = std::move(done)] {
    done(Stop(id, delivery_timeout));
  };
  if (!stop_executor_.Schedule(stop)) stop();  // the registry is being destroyed
}

void ExportRegistry::CheckpointLoop() {
  struct Due {
    absl::Time last;        // the last checkpoint (or when the export was first seen)
    int64_t log_bytes = 0;  // the log's bytes appended then
    bool failed = false;    // the last try failed (logged): the next waits a whole interval
  };
  std::map<std::string, Due> due;
  for (;;) {
    std::vector<std::shared_ptr<Export>> exports;
    {
      MutexLock lock(&mu_);
      cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(options_.tick_interval));
      if (shutting_down_) return;
      for (const auto& [id, e] : exports_) exports.push_back(e);
    }
    ExportJournal* journal = journal_.load();
    if (journal == nullptr) continue;  // not before the recovery's replay
    const int64_t log_bytes = journal->Figures().bytes_appended;
    std::map<std::string, Due> still;
    for (const std::shared_ptr<Export>& e : exports) {
      if (e->stopping() || e->checkpoint_unsupported()) continue;
      auto it = due.find(e->id());
      Due d = it != due.end() ? it->second : Due{absl::Now(), log_bytes, false};
      const bool by_time = absl::Now() - d.last >= options_.checkpoint_interval;
      const bool by_bytes = options_.checkpoint_log_bytes > 0 && !d.failed &&
                            log_bytes - d.log_bytes >= options_.checkpoint_log_bytes;
      if (by_time || by_bytes) {
        const int64_t bytes_before = journal->Figures().bytes_appended;
        absl::Status written = e->WriteCheckpoint(journal, options_.checkpoints);
        if (written.ok()) {
          checkpoints_written_.fetch_add(1);
          d = Due{absl::Now(), bytes_before, false};
        } else if (absl::IsUnimplemented(written)) {
          LogInfo("checkpoints do not cover this export; its log is replayed in full",
                  {{"export_id", e->id()}, {"reason", std::string(written.message())}});
        } else if (!absl::IsAborted(written) && !absl::IsFailedPrecondition(written)) {
          checkpoints_failed_.fetch_add(1);
          LogWarning("a checkpoint cannot be written; the next is tried after the interval",
                     {{"export_id", e->id()}, {"error", std::string(written.message())}});
          d = Due{absl::Now(), bytes_before, true};
        }
        // ABORTED, not allowed now (points queued for a target, not durably): tried at the next
        // tick; FAILED_PRECONDITION: the export is stopping.
      }
      still.emplace(e->id(), d);
    }
    due = std::move(still);
  }
}

void ExportRegistry::TickLoop() {
  // Stopped exports' records past the retention are removed this often.
  constexpr absl::Duration kPruneEvery = absl::Minutes(1);
  absl::Time next_prune = absl::Now() + kPruneEvery;
  absl::Time next_mark = absl::Now() + options_.delivery_mark_interval;
  absl::Time wake = absl::Now() + options_.tick_interval;
  for (;;) {
    std::vector<std::shared_ptr<Export>> exports;
    {
      MutexLock lock(&mu_);
      // At least a millisecond: a window due now is closed by the Tick() below.
      cv_.WaitFor(&mu_,
                  absl::ToChronoNanoseconds(std::max(wake - absl::Now(), absl::Milliseconds(1))));
      if (shutting_down_) return;
      exports.reserve(exports_.size());
      for (const auto& [id, e] : exports_) exports.push_back(e);
    }
    // Wake when the next window closes by the clock (samples that close one flush it
    // themselves), and at least every tick_interval.
    wake = absl::Now() + options_.tick_interval;
    if (options_.store != nullptr && absl::Now() >= next_prune) {
      options_.store->PruneStopped();
      next_prune = absl::Now() + kPruneEvery;
    }
    const bool record_marks = absl::Now() >= next_mark;
    if (record_marks) next_mark = absl::Now() + options_.delivery_mark_interval;
    wake = std::min(wake, next_mark);
    for (const auto& e : exports) {
      e->aggregator()->Tick();
      wake = std::min(wake, e->aggregator()->NextCloseTime());
      if (record_marks) RecordDeliveryMark(*e);
    }
    if (options_.idle_timeout <= absl::ZeroDuration()) continue;
    const absl::Time idle_since = absl::Now() - options_.idle_timeout;
    for (const auto& e : exports) {
      if (!e->IdleSince(idle_since)) continue;
      MutexLock lock(&mu_);
      if (shutting_down_ || !idle_stopping_.insert(e->id()).second) continue;
      stop_executor_.Schedule([this, id = e->id()] { StopIdle(id); });
    }
  }
}

absl::StatusOr<v1::StartExportResponse> ExportRegistry::Start(
    const v1::StartExportRequest& request) {
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  if (!config.ok()) return config.status();
  {
    MutexLock lock(&mu_);
    if (keeping_) return KeptError();
    if (exports_.size() >= options_.max_exports) {
      return absl::ResourceExhaustedError(
          absl::StrCat("too many exports running (", options_.max_exports, "); stop one first"));
    }
  }
  v1::StartExportResponse response;
  for (const TargetConfig& target : config->targets) {
    v1::TargetReport* report = response.add_targets();
    report->set_remote_write_url(target.redacted_url);
    for (const SkippedEntry& skipped : target.skipped) {
      v1::SkippedMetric* s = report->add_skipped_metrics();
      s->set_entry(skipped.entry);
      s->set_reason(skipped.reason);
    }
    for (const OutputSpec& output : target.outputs) report->add_exported_metrics(output.entry);
    for (const ReplacedDefault& replaced : target.replaced_defaults) {
      v1::ReplacedDefault* r = report->add_replaced_defaults();
      r->set_metric(replaced.metric);
      r->set_entry(replaced.entry);
    }
  }
  const std::string test_run_id = config->test_run_id;
  const size_t targets = config->targets.size();
  std::string id = UniqueExportId();
  absl::StatusOr<std::unique_ptr<Export>> created =
      Export::Create(id, next_sequence_++, request, *std::move(config), pool_, sender_, options_);
  if (!created.ok()) return created.status();
  if (options_.store != nullptr) {
    // On disk before anyone hears of the export; if that fails, it never existed.
    durable::v1::ExportRecord record;
    record.set_export_id(id);
    record.set_sequence((*created)->sequence());
    *record.mutable_request() = request;
    record.set_started_unix_ms(absl::ToUnixMillis((*created)->started()));
    (*created)->SetRecord(record);
    if (absl::Status put = options_.store->PutRunning(record); !put.ok()) {
      LogError("export not started: its record cannot be written to the data dir",
               {{"test_run_id", test_run_id}, {"error", std::string(put.message())}});
      return absl::Status(
          put.code() == absl::StatusCode::kResourceExhausted ? put.code()
                                                             : absl::StatusCode::kUnavailable,
          absl::StrCat("the export cannot be recorded in the data dir: ", put.message()));
    }
    CrashPoint("start_export.after_record");  // recorded, not answered
  }
  {
    MutexLock lock(&mu_);
    exports_.emplace(id, std::shared_ptr<Export>(std::move(*created)));
    ++exports_started_;
  }
  response.set_export_id(id);
  LogInfo("export started",
          {{"export_id", id}, {"test_run_id", test_run_id}, {"targets", absl::StrCat(targets)}});
  return response;
}

std::shared_ptr<Export> ExportRegistry::Find(const std::string& id) const {
  MutexLock lock(&mu_);
  auto it = exports_.find(id);
  return it == exports_.end() ? nullptr : it->second;
}

absl::StatusOr<std::shared_ptr<Export>> ExportRegistry::Lookup(const std::string& id) const {
  if (absl::Status owner = CheckExportOwner(options_.replica_id, id); !owner.ok()) return owner;
  std::shared_ptr<Export> e = Find(id);
  if (e == nullptr) return absl::NotFoundError(absl::StrCat("no export with id \"", id, "\""));
  return e;
}

absl::StatusOr<v1::StopExportResponse> ExportRegistry::Stop(const std::string& id,
                                                            absl::Duration delivery_timeout) {
  if (absl::Status owner = CheckExportOwner(options_.replica_id, id); !owner.ok()) return owner;
  {
    MutexLock lock(&mu_);
    if (keeping_) return KeptError();
  }
  std::shared_ptr<Export> e = Find(id);
  if (e == nullptr) {
    // A retry after a lost answer gets the first answer's figures.
    if (options_.store != nullptr) {
      std::optional<durable::v1::StoppedExportRecord> stopped = options_.store->FindStopped(id);
      if (stopped.has_value()) return stopped->response();
    }
    return absl::NotFoundError(absl::StrCat("no export with id \"", id, "\""));
  }
  if (delivery_timeout <= absl::ZeroDuration())
    delivery_timeout = options_.default_delivery_timeout;
  // The export stays listed while it stops; the call that removes it retires its figures.
  v1::StopExportResponse response = e->Stop(delivery_timeout);
  // Everything delivered by the stop's deadline (points dropped earlier, refused by a target,
  // are settled too): the mark goes through the last window before the stopped record is
  // written, so that an export found running after a crash in between sends nothing again.
  if (std::none_of(response.targets().begin(), response.targets().end(),
                   [](const v1::TargetFigures& t) {
                     return t.dropped_by_reason().contains("shutdown_timeout") ||
                            t.dropped_by_reason().contains("spooled");
                   })) {
    RecordDeliveryMark(*e, /*after_stop=*/true);
  }
  CrashPoint("stop_export.before_stopped_record");  // flushed and delivered, still running
  if (absl::Status recorded = RecordStopped(*e, response); !recorded.ok()) return recorded;
  CrashPoint("stop_export.after_running_removed");  // stopped, not answered
  // The queue files of points dropped at the deadline go only now: a crash before the stopped
  // record finds them (and the export running), one after it finds their drop recorded.
  e->DiscardQueues();
  if (ExportJournal* journal = journal_.load(); journal != nullptr) {
    // Only for truncation: a recovery skips the records of an export with no running record.
    if (absl::Status written = journal->ExportStopped(id); !written.ok()) {
      LogWarning("the export's stopped record cannot be written to the wal",
                 {{"export_id", id}, {"error", std::string(written.message())}});
    }
  }
  if (options_.checkpoints != nullptr) {
    // After the stopped record: a recovery no longer replays the export at all.
    e->RemoveCheckpoint(options_.checkpoints);
  }
  const AggregatorFigures agg = e->aggregator()->Figures();
  uint64_t sent = 0, dropped = 0;
  for (const v1::TargetFigures& t : response.targets()) {
    sent += t.points_sent();
    dropped += t.points_dropped();
  }
  {
    MutexLock lock(&mu_);
    auto it = exports_.find(id);
    if (it == exports_.end() || it->second != e) return response;  // another call retired it
    exports_.erase(it);
    ++retired_.exports_stopped;
    retired_.samples_accepted += response.samples_accepted();
    retired_.samples_late += agg.samples_late;
    retired_.windows_flushed += agg.windows_flushed;
    MergeRejections(&retired_.rejections, agg.rejections);
    for (const v1::TargetFigures& t : response.targets()) {
      retired_.points_sent += t.points_sent();
      retired_.duplicate_on_retry += t.duplicate_on_retry();
      retired_.points_already_stored += t.points_already_stored();
      retired_.requests += t.requests();
      retired_.retries += t.retries();
      retired_.failures += t.failures();
      retired_.bytes_sent += t.bytes_sent();
      for (const auto& [reason, n] : t.dropped_by_reason()) retired_.points_dropped[reason] += n;
    }
  }
  LogInfo("export stopped", {{"export_id", id},
                             {"samples_accepted", absl::StrCat(response.samples_accepted())},
                             {"samples_rejected", absl::StrCat(response.samples_rejected())},
                             {"points_sent", absl::StrCat(sent)},
                             {"points_dropped", absl::StrCat(dropped)}});
  return response;
}

void ExportRegistry::RecordDeliveryMark(Export& e, bool after_stop) {
  if (options_.store == nullptr || (!after_stop && e.stopping())) return;
  // After its stop the export's targets are removed: nothing is queued any more.
  const std::optional<int64_t> mark = e.delivery_mark().Next(
      [&e, after_stop] { return after_stop || e.DeliveredOrDurablyQueued(); });
  if (!mark.has_value()) return;
  durable::v1::ExportRecord record = e.record();
  record.set_delivered_through_ms(*mark);
  MutexLock lock(&record_mu_);
  // Its stopped record may be written already (by another Stop call, or while it stops).
  if (after_stop ? options_.store->FindStopped(e.id()).has_value() : e.stopping()) return;
  if (absl::Status put = options_.store->PutRunning(record); !put.ok()) {
    LogWarning("the export's delivery mark cannot be recorded in the data dir",
               {{"export_id", e.id()}, {"error", std::string(put.message())}});
    return;
  }
  e.SetRecord(std::move(record));
  e.delivery_mark().Recorded(*mark);
}

absl::Status ExportRegistry::RecordStopped(const Export& e,
                                           const v1::StopExportResponse& response) {
  if (options_.store == nullptr) return absl::OkStatus();
  { MutexLock lock(&record_mu_); }  // a rewrite of the running record under way is done
  durable::v1::StoppedExportRecord record;
  record.set_export_id(e.id());
  record.set_sequence(e.sequence());
  record.set_test_run_id(e.test_run_id());
  *record.mutable_response() = response;
  record.set_started_unix_ms(absl::ToUnixMillis(e.started()));
  absl::Status recorded = options_.store->RecordStopped(std::move(record));
  if (recorded.ok()) return recorded;
  LogError("export stopped, but its final figures cannot be recorded in the data dir",
           {{"export_id", e.id()}, {"error", std::string(recorded.message())}});
  return absl::Status(
      recorded.code() == absl::StatusCode::kResourceExhausted ? recorded.code()
                                                              : absl::StatusCode::kUnavailable,
      absl::StrCat("the export stopped, but its final figures cannot be recorded in the data "
                   "dir (",
                   recorded.message(), "); call StopExport again"));
}

std::string ExportRegistry::UniqueExportId() const {
  // 128 random bits never repeat in practice; checked anyway against what is known, including
  // exports recovered from the data dir and stopped ones still remembered there.
  std::string id = NewExportId(options_.replica_id);
  for (int attempt = 1; attempt < 8; ++attempt) {
    const bool known = Find(id) != nullptr ||
                       (options_.store != nullptr && options_.store->FindStopped(id).has_value());
    if (!known) break;
    id = NewExportId(options_.replica_id);
  }
  return id;
}

absl::StatusOr<RecoveryReport> ExportRegistry::Recover() {
  RecoveryReport report;
  if (options_.store == nullptr) return report;
  absl::StatusOr<LoadedExports> loaded = options_.store->Load();
  if (!loaded.ok()) return loaded.status();
  report.corrupt = loaded->corrupt;
  report.stopped_kept = loaded->stopped_kept;
  // New exports come after every recorded one, running or stopped.
  uint64_t next = next_sequence_.load();
  while (next <= loaded->max_sequence &&
         !next_sequence_.compare_exchange_weak(next, loaded->max_sequence + 1)) {
  }
  const absl::Time now = absl::Now();
  for (const durable::v1::ExportRecord& record : loaded->running) {
    if (RecoverOne(record, now)) {
      ++report.recovered;
    } else {
      ++report.unrecoverable;
    }
  }
  {
    MutexLock lock(&mu_);
    recovery_ = report;
  }
  LogInfo("data dir loaded", {{"exports_recovered", absl::StrCat(report.recovered)},
                              {"unrecoverable", absl::StrCat(report.unrecoverable)},
                              {"corrupt_files", absl::StrCat(report.corrupt)},
                              {"stopped_kept", absl::StrCat(report.stopped_kept)},
                              {"stopped_pruned", absl::StrCat(loaded->stopped_pruned)}});
  return report;
}

bool ExportRegistry::RecoverOne(const durable::v1::ExportRecord& record, absl::Time now) {
  absl::StatusOr<ExportConfig> config = ValidateStartExport(record.request());
  absl::StatusOr<std::unique_ptr<Export>> created =
      config.ok() ? Export::Create(record.export_id(), record.sequence(), record.request(),
                                   *std::move(config), pool_, sender_, options_)
                  : absl::StatusOr<std::unique_ptr<Export>>(config.status());
  if (!created.ok()) {
    options_.store->SetAsideRunning(
        record.export_id(),
        absl::StrCat("the export cannot be brought back: ", created.status().message()));
    return false;
  }
  (*created)->MarkRecovered(absl::FromUnixMillis(record.started_unix_ms()), now);
  (*created)->SetRecord(record);
  // What the crashed process delivered is rebuilt by the replay but not sent again; what it may
  // have delivered after its last recorded mark is re-sent one window per request (the bound
  // is set once the replay is done: EndRecoveryReplay).
  (*created)->delivery_mark().SuppressThrough(record.delivered_through_ms());
  (*created)->delivery_mark().ResendThrough(DeliveryMark::kResendAll);
  const uint64_t from_queue = (*created)->PointsFromQueue();
  {
    MutexLock lock(&mu_);
    exports_.emplace(record.export_id(), std::shared_ptr<Export>(std::move(*created)));
    ++exports_started_;
  }
  LogInfo("export recovered from the data dir",
          {{"export_id", record.export_id()},
           {"test_run_id", record.request().test_run_id()},
           {"sequence", absl::StrCat(record.sequence())},
           {"started", absl::FormatTime(absl::FromUnixMillis(record.started_unix_ms()))},
           {"queued_points_recovered", absl::StrCat(from_queue)}});
  return true;
}

void ExportRegistry::EndRecoveryReplay() {
  std::vector<std::shared_ptr<Export>> exports;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, e] : exports_) exports.push_back(e);
  }
  const absl::Time now = absl::Now();
  for (const auto& e : exports) e->EndRecoveryReplay(now);
}

size_t ExportRegistry::StopAll() {
  std::vector<std::string> ids;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, e] : exports_) ids.push_back(id);
  }
  // In parallel, so that shutdown waits for the slowest export's delivery, not for the sum.
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  const size_t parallel = std::min<size_t>(ids.size(), 16);
  for (size_t i = 0; i < parallel; ++i) {
    threads.emplace_back([&] {
      for (size_t k = next++; k < ids.size(); k = next++) {
        Stop(ids[k], options_.default_delivery_timeout).IgnoreError();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return ids.size();
}

std::vector<v1::ExportStatus> ExportRegistry::List() const {
  std::vector<v1::ExportStatus> live;
  RetiredTotals retired;
  uint64_t started;
  Snapshot(&live, &retired, &started);
  return live;
}

void ExportRegistry::Snapshot(std::vector<v1::ExportStatus>* live, RetiredTotals* retired,
                              uint64_t* exports_started) const {
  std::vector<std::shared_ptr<Export>> exports;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, e] : exports_) exports.push_back(e);
    *retired = retired_;
    *exports_started = exports_started_;
  }
  std::sort(exports.begin(), exports.end(),
            [](const std::shared_ptr<Export>& a, const std::shared_ptr<Export>& b) {
              return a->sequence() < b->sequence();
            });
  live->clear();
  live->reserve(exports.size());
  for (const auto& e : exports) live->push_back(e->Status());
}

ExportPage ExportRegistry::ListPage(uint64_t after_sequence, size_t max_exports,
                                    size_t max_bytes) const {
  std::vector<std::shared_ptr<Export>> exports;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, e] : exports_) {
      if (e->sequence() > after_sequence) exports.push_back(e);
    }
  }
  std::sort(exports.begin(), exports.end(),
            [](const std::shared_ptr<Export>& a, const std::shared_ptr<Export>& b) {
              return a->sequence() < b->sequence();
            });
  ExportPage page;
  size_t bytes = 0;
  uint64_t last = 0;
  for (const auto& e : exports) {
    if (page.exports.size() >= std::max<size_t>(1, max_exports)) {
      page.next_after = last;
      break;
    }
    v1::ExportStatus status = e->Status();
    const size_t size = status.ByteSizeLong();
    if (!page.exports.empty() && bytes + size > max_bytes) {
      page.next_after = last;
      break;
    }
    bytes += size;
    last = e->sequence();
    page.exports.push_back(std::move(status));
  }
  return page;
}

RecoveryReport ExportRegistry::recovery() const {
  MutexLock lock(&mu_);
  return recovery_;
}

size_t ExportRegistry::size() const {
  MutexLock lock(&mu_);
  return exports_.size();
}

}  // namespace rwexport
