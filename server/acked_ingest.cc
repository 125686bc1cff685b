#include "server/acked_ingest.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/allocator.h"
#include "lib/common/log.h"
#include "lib/common/mutex.h"
#include "lib/durable/wal_ingest_journal.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/stream_ingester.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace {

grpc::Status Error(grpc::StatusCode code, std::string message) {
  return grpc::Status(code, std::move(message));
}

// One IngestSamples call. A batch taken goes through three parts: routed to the shards (on
// the reactor's thread), applied by the workers, durable in the journal; when all three are
// done for it and every earlier batch, it is acknowledged. Each step that changes the state
// then decides, under the lock, what to do next (Decide) and does it after (Perform).
class AckedIngestCall final : public AckedIngestReactor, public StoppableCall {
 public:
  // Batches of a call being applied at once, as for StreamSamples.
  static constexpr int kMaxApplying = 4;

  AckedIngestCall(ExportRegistry* registry, OpenStreams* streams, IngestJournal* journal,
                  uint32_t window)
      : registry_(registry), streams_(streams), journal_(journal), window_(window) {
    StartRead(&request_);
  }

  ~AckedIngestCall() override {
    if (export_ != nullptr) {
      {
        MutexLock lock(&mu_);
        Detach();
      }
      export_->ReportStreamRetainedBytes(0, &retained_reported_);
      export_->StreamClosed();
    }
    // This gRPC thread freed the stream's state: hand its cached blocks back (jemalloc).
    ingester_.reset();
    FlushThreadCache();
  }

  void ServerStopping() override {
    Actions actions;
    {
      MutexLock lock(&mu_);
      server_stopping_ = true;
      EndLocked(Error(grpc::StatusCode::UNAVAILABLE, ""));
      actions = Decide();
    }
    Perform(this, actions);
  }

  void OnReadDone(bool ok) override {
    Actions actions;
    bool handle = false;
    {
      MutexLock lock(&mu_);
      read_pending_ = false;
      if (!ok) {  // the client half-closed, or the call is gone
        EndLocked(std::nullopt);
      } else if (!ending_) {
        handling_ = handle = true;
      }
      if (!handle) actions = Decide();
    }
    if (!handle) {
      Perform(this, actions);
      return;
    }
    HandleRequest();
    {
      MutexLock lock(&mu_);
      handling_ = false;
      actions = Decide();
    }
    Perform(this, actions);
  }

  void OnWriteDone(bool ok) override {
    Actions actions;
    {
      MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) EndLocked(Error(grpc::StatusCode::CANCELLED, "the client is gone"));
      actions = Decide();
    }
    Perform(this, actions);
  }

  void OnDone() override {
    streams_->Remove(this);
    Actions actions;
    {
      MutexLock lock(&mu_);
      grpc_done_ = true;
      actions = Decide();
    }
    Perform(this, actions);
  }

 private:
  // A batch taken and not yet acknowledged.
  struct Entry {
    uint64_t sequence;
    int parts_left;  // of routed, applied, durable
    uint64_t accepted_after = 0;
    uint64_t rejected_after = 0;
  };
  // What Decide found to do, done by Perform outside the lock.
  struct Actions {
    bool read = false;
    bool write = false;
    bool finish = false;
    bool finish_with_write = false;
    grpc::Status status;
    bool destroy = false;
  };

  // Reads the request just received, and hands its batch on. Runs on the reactor's thread
  // with handling_ set; errors end the call (EndLocked).
  void HandleRequest() {
    IngestEnvelope req;
    const absl::string_view bytes = MessageBytes(request_, &slice_, &buffer_);
    if (absl::Status s = DecodeIngestRequest(bytes, &req); !s.ok()) {
      return End(Error(grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("request ", requests_, ": ", s.message())));
    }
    ++requests_;
    if (export_ == nullptr) {
      if (grpc::Status attached = Attach(req); !attached.ok()) return End(attached);
    } else if (grpc::Status same = CheckSameIds(req); !same.ok()) {
      return End(same);
    }
    const uint64_t seq = req.sequence;
    if (seq == 0) {
      return End(Error(grpc::StatusCode::INVALID_ARGUMENT,
                       "sequence: required, 1 for a stream's first batch"));
    }
    if (seq > applied_through_ + 1) {
      return End(Error(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("stream \"", stream_id_, "\": expected sequence ", applied_through_ + 1,
                       ", received ", seq, " (batches in between were never received)")));
    }
    if (absl::Status s = DecodeSampleBatch(req.batch, &batch_); !s.ok()) {
      return End(BadBatch(seq, s.message()));
    }
    if (!batch_.export_id.empty() && batch_.export_id != export_id_) {
      return End(BadBatch(seq, absl::StrCat("export_id: \"", batch_.export_id,
                                            "\", but the call feeds \"", export_id_, "\"")));
    }
    if (std::optional<uint32_t> ref = ingester_->FirstUndeclaredRef(batch_)) {
      return End(
          BadBatch(seq, absl::StrCat("compact: series reference ", *ref,
                                     " is not declared on this call (declare every series the call "
                                     "uses in its first batch, again after a reconnect)")));
    }
    export_->Touch();
    if (seq <= applied_through_) return TakeDuplicate(seq, req.batch);
    TakeNew(seq, req.batch);
  }

  // The first request: attaches the call to its export and stream.
  grpc::Status Attach(const IngestEnvelope& req) {
    if (req.export_id.empty()) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   "export_id: required on the first request of a call");
    }
    if (!IsValidStreamId(req.stream_id)) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("stream_id: 1 to ", kMaxIngestStreamIdLength,
                                " printable ASCII characters required on the first request of "
                                "a call, got \"",
                                req.stream_id.substr(0, kMaxIngestStreamIdLength), "\""));
    }
    std::shared_ptr<Export> e;
    if (grpc::Status opened = OpenExportStream(*registry_, std::string(req.export_id), &e);
        !opened.ok()) {
      return opened;
    }
    const std::string stream_id(req.stream_id);
    absl::StatusOr<Export::IngestStreamState> state = e->AttachIngestStream(stream_id);
    if (!state.ok()) {
      e->StreamClosed();
      return Error(static_cast<grpc::StatusCode>(state.status().code()),
                   std::string(state.status().message()));
    }
    export_id_.assign(req.export_id.data(), req.export_id.size());
    stream_id_ = stream_id;
    applied_through_ = state->applied_through;
    base_accepted_ = state->accepted;
    base_rejected_ = state->rejected;
    ingester_ = std::make_unique<StreamIngester>(e->aggregator());
    MutexLock lock(&mu_);
    export_ = std::move(e);
    acked_through_ = state->durable_through;
    ack_wanted_ = true;  // tells the client the window and where the stream is
    return grpc::Status::OK;
  }

  grpc::Status CheckSameIds(const IngestEnvelope& req) const {
    if (!req.export_id.empty() && req.export_id != export_id_) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("export_id: a call feeds one export; this call feeds \"",
                                export_id_, "\", not \"", req.export_id, "\""));
    }
    if (!req.stream_id.empty() && req.stream_id != stream_id_) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("stream_id: a call carries one stream; this call carries \"",
                                stream_id_, "\""));
    }
    return grpc::Status::OK;
  }

  grpc::Status BadBatch(uint64_t seq, absl::string_view message) const {
    LogWarning("IngestSamples: invalid batch", {{"export_id", export_id_},
                                                {"stream_id", stream_id_},
                                                {"batch", absl::StrCat(seq)},
                                                {"error", std::string(message)}});
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("batch ", seq, ": ", message, " (", ingester_->accepted(),
                              " samples of this call were accepted before)"));
  }

  // A batch the stream has already: its declarations apply to this call, its samples do not.
  // Acknowledged again at once if durable, else journaled again (its first copy was applied
  // but did not become durable) and acknowledged when that is.
  void TakeDuplicate(uint64_t seq, absl::string_view bytes) {
    ingester_->Declare(batch_);
    export_->ReportStreamRetainedBytes(CallRetainedBytes(*ingester_, batch_, buffer_),
                                       &retained_reported_);
    export_->CountDuplicateBatches(1);
    {
      MutexLock lock(&mu_);
      ++duplicates_;
      if (seq <= acked_through_) {
        ack_wanted_ = true;
        return;
      }
      if (!pending_.empty() && seq <= pending_.back().sequence) return;  // on its way
      pending_.push_back({seq, 1, ingester_->accepted(), ingester_->rejected()});
      ++journaling_;
    }
    Journal(seq, bytes, /*resent=*/true);
  }

  void TakeNew(uint64_t seq, absl::string_view bytes) {
    {
      MutexLock lock(&mu_);
      pending_.push_back({seq, 3});
      ++applying_;
    }
    // The stream and sequence as the log has them, for checkpoints (wal_ingest_journal.h).
    const std::string logged_stream = absl::StrCat(kAckedStreamPrefix, stream_id_);
    DispatchTag tag{logged_stream, seq};
    absl::Status status = ingester_->Ingest(
        batch_, [this, seq] { PartDone(seq, &applying_); }, &tag);
    if (!status.ok()) {
      {
        MutexLock lock(&mu_);
        --applying_;
        pending_.pop_back();
      }
      if (absl::IsInvalidArgument(status)) return End(BadBatch(seq, status.message()));
      return End(Error(grpc::StatusCode::ABORTED,
                       absl::StrCat("export \"", export_id_, "\" was stopped: ", status.message(),
                                    " (batches through ", seq - 1, " were taken)")));
    }
    applied_through_ = seq;
    export_->ReportStreamRetainedBytes(CallRetainedBytes(*ingester_, batch_, buffer_),
                                       &retained_reported_);
    {
      MutexLock lock(&mu_);
      Entry& entry = *Find(seq);
      entry.accepted_after = ingester_->accepted();
      entry.rejected_after = ingester_->rejected();
      --entry.parts_left;  // routed
      ++journaling_;
    }
    Journal(seq, bytes, /*resent=*/false);
  }

  void Journal(uint64_t seq, absl::string_view bytes, bool resent) {
    // The log writes the batch from the request's own bytes (no copy), kept until written.
    IngestRecord record{export_id_, stream_id_, seq, bytes, resent};
    record.batch_owner = KeepMessageBytes(slice_, &buffer_, &record.batch);
    journal_->Append(record, [this, seq](absl::Status durable) {
      if (durable.ok()) return PartDone(seq, &journaling_);
      Actions actions;
      {
        MutexLock lock(&mu_);
        --journaling_;
        LogWarning("IngestSamples: a batch could not be made durable",
                   {{"export_id", export_id_},
                    {"stream_id", stream_id_},
                    {"batch", absl::StrCat(seq)},
                    {"error", std::string(durable.message())}});
        EndLocked(
            Error(grpc::StatusCode::UNAVAILABLE,
                  absl::StrCat("batch ", seq, " could not be made durable: ", durable.message())));
        actions = Decide();
      }
      Perform(this, actions);
    });
  }

  // One part of batch `seq` is done; `counter` counts the callbacks of that kind still due.
  void PartDone(uint64_t seq, int* counter) {
    Actions actions;
    {
      MutexLock lock(&mu_);
      --*counter;
      --Find(seq)->parts_left;
      actions = Decide();
    }
    Perform(this, actions);
  }

  Entry* Find(uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
      if (it->sequence == seq) return &*it;
    }
    LogError("IngestSamples: acknowledgement state lost a batch", {{"batch", absl::StrCat(seq)}});
    std::abort();
  }

  void End(grpc::Status status) {
    MutexLock lock(&mu_);
    EndLocked(std::move(status));
  }

  // Ends the call with `status` (nullopt: OK, with the last ack) once nothing it took is
  // still being handled. The first end wins.
  void EndLocked(std::optional<grpc::Status> status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ending_) return;
    ending_ = true;
    end_status_ = std::move(status);
  }

  // Acknowledges what is done, then decides on the next read, ack write, finish or deletion.
  Actions Decide() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Actions a;
    while (!pending_.empty() && pending_.front().parts_left == 0) {
      acked_through_ = pending_.front().sequence;
      acked_accepted_ = pending_.front().accepted_after;
      acked_rejected_ = pending_.front().rejected_after;
      pending_.pop_front();
    }
    const bool busy = handling_ || applying_ > 0 || journaling_ > 0;
    if (grpc_done_) {
      a.destroy = !busy && !destroying_;
      destroying_ = destroying_ || a.destroy;
      return a;
    }
    if (finished_ || writing_) return a;
    if (ending_) {
      if (busy) return a;
      finished_ = true;
      a.finish = true;
      a.status = FinalStatus();
      if (export_ != nullptr) {
        Detach();
        a.finish_with_write = true;
        FillAck(/*last=*/a.status.ok());
      }
      return a;
    }
    // Acks are coalesced: one per quarter window of batches is enough to keep the client's
    // window open (the last ones go out with the call's end); others are answered at once.
    if ((ack_wanted_ || acked_through_ - sent_through_ >= ack_every_) && export_ != nullptr) {
      ack_wanted_ = false;
      writing_ = true;
      a.write = true;
      FillAck(/*last=*/false);
    }
    if (!read_pending_ && !handling_ && pending_.size() < window_ && applying_ < kMaxApplying) {
      read_pending_ = true;
      a.read = true;
    }
    return a;
  }

  // Carries out what Decide chose, once mu_ is released. Static, and with nothing to do it
  // never touches `self`: once mu_ is released another thread may have destroyed the call
  // (e.g. the last aggregator callback's Decide chose nothing and OnDone's then chose destroy).
  static void Perform(AckedIngestCall* self, const Actions& a) {
    if (!a.read && !a.write && !a.finish && !a.destroy) return;
    self->PerformActions(a);
  }

  void PerformActions(const Actions& a) {
    if (a.destroy) {
      delete this;
      return;
    }
    if (a.write) StartWrite(&ack_buffer_);
    if (a.read) {
      // Not the buffer of a large batch for the stream's life (~25 MB for 100k declarations).
      ReleaseMessageBytes(&request_, &slice_, &buffer_);
      StartRead(&request_);
    }
    if (a.finish_with_write) {
      StartWriteAndFinish(&ack_buffer_, grpc::WriteOptions(), a.status);
    } else if (a.finish) {
      Finish(a.status);
    }
  }

  grpc::Status FinalStatus() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (server_stopping_) {
      return Error(grpc::StatusCode::UNAVAILABLE,
                   absl::StrCat("the server is stopping: stream \"", stream_id_,
                                "\" is acknowledged through batch ", acked_through_,
                                "; resend the rest when it is back"));
    }
    return end_status_.value_or(grpc::Status::OK);
  }

  void FillAck(bool last) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::IngestAck ack;
    ack.set_acked_through(acked_through_);
    sent_through_ = acked_through_;
    ack.set_window(window_);
    ack.set_accepted(acked_accepted_);
    ack.set_rejected(acked_rejected_);
    ack.set_duplicate_batches(duplicates_);
    ack.set_stream_accepted(base_accepted_ + acked_accepted_);
    ack.set_stream_rejected(base_rejected_ + acked_rejected_);
    if (last) {
      ack.set_last(true);
      FillRejections(ingester_->rejections(), ack.mutable_rejections());
      FillRejections(ingester_->declaration_errors(), ack.mutable_declaration_errors());
    }
    grpc::Slice slice(ack.SerializeAsString());
    grpc::ByteBuffer buffer(&slice, 1);
    ack_buffer_.Swap(&buffer);
  }

  // Hands the stream back to its export (once), with what this call applied and acknowledged.
  void Detach() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (detached_) return;
    detached_ = true;
    export_->DetachIngestStream(
        stream_id_, {applied_through_, acked_through_, base_accepted_ + ingester_->accepted(),
                     base_rejected_ + ingester_->rejected()});
  }

  ExportRegistry* const registry_;
  OpenStreams* const streams_;
  IngestJournal* const journal_;
  const uint32_t window_;
  const uint32_t ack_every_ = std::max<uint32_t>(1, window_ / 4);

  // The reactor's thread (one read at a time).
  grpc::ByteBuffer request_;
  grpc::Slice slice_;
  std::string buffer_;
  DecodedBatch batch_;
  uint64_t requests_ = 0;
  std::unique_ptr<StreamIngester> ingester_;
  size_t retained_reported_ = 0;  // CallRetainedBytes as last reported to export_
  std::string export_id_;
  std::string stream_id_;
  uint64_t applied_through_ = 0;  // highest sequence the stream has applied
  // The stream's counts through the sequence it had applied when this call attached it.
  uint64_t base_accepted_ = 0;
  uint64_t base_rejected_ = 0;

  Mutex mu_;
  // Set once, by Attach on the reactor's thread under mu_; other threads read it under mu_.
  std::shared_ptr<Export> export_;
  std::deque<Entry> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t acked_through_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sent_through_ ABSL_GUARDED_BY(mu_) = 0;  // in the last ack written
  uint64_t acked_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_rejected_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
  int applying_ ABSL_GUARDED_BY(mu_) = 0;    // aggregator callbacks due
  int journaling_ ABSL_GUARDED_BY(mu_) = 0;  // journal callbacks due
  bool handling_ ABSL_GUARDED_BY(mu_) = false;
  bool read_pending_ ABSL_GUARDED_BY(mu_) = true;  // the constructor's read
  bool ack_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ByteBuffer ack_buffer_ ABSL_GUARDED_BY(mu_);
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> end_status_ ABSL_GUARDED_BY(mu_);
  bool server_stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  bool grpc_done_ ABSL_GUARDED_BY(mu_) = false;
  bool destroying_ ABSL_GUARDED_BY(mu_) = false;
};

class RefusedCall final : public AckedIngestReactor {
 public:
  explicit RefusedCall(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

AckedIngestReactor* NewAckedIngestCall(ExportRegistry* registry, OpenStreams* streams,
                                       IngestJournal* journal, uint32_t window) {
  auto* call = new AckedIngestCall(registry, streams, journal, window);
  streams->open.insert(call);
  return call;
}

AckedIngestReactor* RefusedAckedIngestCall(const grpc::Status& status) {
  return new RefusedCall(status);
}

}  // namespace rwexport
