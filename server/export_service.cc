#include "server/export_service.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/allocator.h"
#include "lib/common/log.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/stream_ingester.h"
#include "server/acked_ingest.h"

namespace rwexport {

// One StreamSamples call. Reads a batch, decodes it, hands it to the export's aggregator, and
// reads the next one while the workers apply it: at most kMaxApplying batches of a stream are
// being applied at once, then the next read waits for one of them (back-pressure). Answers,
// with its counts or an error, only once every batch it took is applied and, with a
// write-ahead log (--data_dir), durable: each batch is applied first (the pipeline keeps
// moving) and then appended to the log with its bytes as received; the answer waits for the
// last append, and a failed append ends the call with its error instead. Deletes itself once
// gRPC is done with it and no batch is still being applied or written. Registered with `streams`
// while gRPC holds it, so that a stopping server can end it (ServerStopping).
class IngestReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer>, public StoppableCall {
 public:
  // Enough to keep the workers busy while the next batch is read and routed; each holds its
  // samples' work items (24 bytes a sample) until applied.
  static constexpr int kMaxApplying = 4;

  IngestReactor(ExportRegistry* registry, OpenStreams* streams,
                grpc::CallbackServerContext* context, grpc::ByteBuffer* response)
      : registry_(registry),
        journal_(registry->journal()),
        streams_(streams),
        context_(context),
        response_(response) {
    if (journal_ != nullptr) stream_id_ = NewStreamId();
    StartRead(&request_);
  }

  // Ends the stream because the server is stopping: once the batches being applied are done,
  // it is answered UNAVAILABLE with its counts (in the message, and as a serialized
  // StreamSamplesResponse in the trailing metadata kStoppingResponseKey). Batches not read yet
  // are not taken. Called with the OpenStreams lock held, before OnDone.
  void ServerStopping() override { End(std::nullopt, /*server_stopping=*/true); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or the call ended)
      End(std::nullopt);
      return;
    }
    {
      MutexLock lock(&mu_);
      if (ending_) return;  // the server is stopping: this batch is not taken
      ++applying_;          // held while the batch is handled: an End() meanwhile waits for it
    }
    const bool read_on = HandleBatch();
    // Releases the hold: answers if the stream ended meanwhile, else reads on if there is room.
    bool finish_now = false;
    bool read_now = false;
    std::optional<grpc::Status> status;
    {
      MutexLock lock(&mu_);
      --applying_;
      if (ending_) {
        finish_now = Idle();
        if (finish_now) status = std::move(end_status_);
      } else if (read_on) {
        read_now = applying_ < kMaxApplying;
        waiting_for_room_ = !read_now;
      }
    }
    if (finish_now) Complete(status);
    if (read_now) ReadNext();
  }

  ~IngestReactor() override {
    if (export_ != nullptr) {
      export_->ReportStreamRetainedBytes(0, &retained_reported_);
      export_->StreamClosed();
    }
    // This gRPC thread freed the stream's state: hand its cached blocks back (jemalloc).
    ingester_.reset();
    FlushThreadCache();
  }

  void OnDone() override {
    streams_->Remove(this);
    bool delete_now;
    {
      MutexLock lock(&mu_);
      grpc_done_ = true;
      delete_now = Idle();
    }
    if (delete_now) delete this;
  }

 private:
  // Decodes the batch just read and hands it to the aggregator. True if the stream reads on;
  // false if it was ended (End()).
  bool HandleBatch() {
    const int64_t index = batches_read_++;
    const absl::string_view bytes = RequestBytes();
    absl::Status decoded = DecodeSampleBatch(bytes, &batch_);
    if (!decoded.ok()) {
      FinishInvalid(index, decoded);
      return false;
    }
    if (ingester_ == nullptr) {
      if (batch_.export_id.empty()) {
        End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "export_id: required on the first batch of a stream"));
        return false;
      }
      std::shared_ptr<Export> e;
      if (grpc::Status opened = OpenExportStream(*registry_, batch_.export_id, &e); !opened.ok()) {
        End(opened);
        return false;
      }
      export_id_ = batch_.export_id;
      ingester_ = std::make_unique<StreamIngester>(e->aggregator());
      export_ = std::move(e);
    } else if (!batch_.export_id.empty() && batch_.export_id != export_id_) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("export_id: a stream feeds one export; this stream feeds \"",
                                    export_id_, "\", not \"", batch_.export_id, "\"")));
      return false;
    }
    export_->Touch();
    {
      MutexLock lock(&mu_);
      ++applying_;
    }
    // With the log, the batch's stream and sequence go with it for checkpoints.
    DispatchTag tag{stream_id_, static_cast<uint64_t>(index)};
    absl::Status status = ingester_->Ingest(
        batch_, [this] { OnApplied(); }, journal_ != nullptr ? &tag : nullptr);
    export_->ReportStreamRetainedBytes(CallRetainedBytes(*ingester_, batch_, buffer_),
                                       &retained_reported_);
    if (!status.ok()) {
      {
        MutexLock lock(&mu_);
        --applying_;
      }
      if (absl::IsInvalidArgument(status)) {
        FinishInvalid(index, status);
        return false;
      }
      End(grpc::Status(
          grpc::StatusCode::ABORTED,
          absl::StrCat("export \"", export_id_, "\" was stopped: ", status.message(), " (",
                       ingester_->accepted(), " samples of this stream were accepted before)")));
      return false;
    }
    // The batch's samples are the workers' now; its bytes go to the write-ahead log (the
    // request's own bytes, kept until written) and the stream can take the next one.
    if (journal_ != nullptr) {
      {
        MutexLock lock(&mu_);
        ++durable_pending_;
      }
      absl::string_view logged = bytes;
      std::shared_ptr<const void> owner = KeepMessageBytes(slice_, &buffer_, &logged);
      journal_->Append(export_id_, stream_id_, static_cast<uint64_t>(index), logged,
                       std::move(owner),
                       [this, index](absl::Status status) { OnDurable(index, std::move(status)); });
    }
    return true;
  }

  // Runs on the WAL's writer thread once batch `index` is durable or failed to be. A failure
  // ends the call with its status (RESOURCE_EXHAUSTED or UNAVAILABLE, with the cause), also
  // one that was about to be answered OK: nothing of it is acknowledged.
  void OnDurable(int64_t index, absl::Status status) {
    if (!status.ok()) {
      LogWarning("StreamSamples: a batch cannot be written to the wal",
                 {{"export_id", export_id_}, {"error", std::string(status.message())}});
    }
    bool delete_now = false;
    bool finish_now = false;
    std::optional<grpc::Status> end_status;
    {
      MutexLock lock(&mu_);
      --durable_pending_;
      if (!status.ok() && !wal_failed_) {
        // As End() does, but also replacing an answer already decided (OK, or stopping).
        wal_failed_ = true;
        ending_ = true;
        server_stopping_ = false;
        end_status_ =
            grpc::Status(ToGrpcStatus(status).error_code(),
                         absl::StrCat("batch ", index,
                                      " of this stream cannot be made durable: ", status.message(),
                                      "; the call acknowledges none of its batches"));
      }
      if (grpc_done_) {
        delete_now = Idle();
      } else if (ending_) {
        finish_now = Idle();
        if (finish_now) end_status = std::move(end_status_);
      }
    }
    if (delete_now) delete this;
    if (finish_now) Complete(end_status);
  }

  // Unique within the process and across its restarts: the WAL keeps streams apart by it.
  static std::string NewStreamId() {
    static const int64_t boot = absl::GetCurrentTimeNanos();
    static std::atomic<uint64_t> next{0};
    return absl::StrCat(boot, "-", next++);
  }

  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return applying_ == 0 && durable_pending_ == 0;
  }

  // Runs on a worker thread once the aggregator has applied a batch: reads on if reads waited
  // for room, answers if the client half-closed and this was the last batch.
  void OnApplied() {
    bool delete_now = false;
    bool finish_now = false;
    bool read_now = false;
    std::optional<grpc::Status> status;
    {
      MutexLock lock(&mu_);
      --applying_;
      if (grpc_done_) {
        delete_now = Idle();
      } else if (ending_) {
        finish_now = Idle();
        if (finish_now) status = std::move(end_status_);
      } else if (waiting_for_room_) {
        waiting_for_room_ = false;
        read_now = true;
      }
    }
    if (delete_now) delete this;
    if (finish_now) Complete(status);
    if (read_now) ReadNext();
  }

  // Ends the call with `status` (nullopt: OK with the stream's counts) once no batch of it is
  // being applied, so that a client that has its answer finds every earlier sample counted
  // (GetExport, StopExport). No read follows.
  // The first call wins: a stream the server ended is not ended again by the read that was
  // pending (OnReadDone(false)).
  void End(std::optional<grpc::Status> status, bool server_stopping = false) {
    bool now;
    {
      MutexLock lock(&mu_);
      if (ending_) return;
      ending_ = true;
      server_stopping_ = server_stopping;
      now = Idle();
      if (!now) end_status_ = std::move(status);
    }
    if (now) Complete(status);  // else the last OnApplied does
  }

  // Answers once: a batch read just as the server stopped the stream may finish applying after
  // the answer went out.
  void Complete(const std::optional<grpc::Status>& status) {
    bool server_stopping;
    {
      MutexLock lock(&mu_);
      if (completed_) return;
      completed_ = true;
      server_stopping = server_stopping_;
    }
    if (server_stopping) {
      FinishStopping();
    } else if (status.has_value()) {
      Finish(*status);
    } else {
      FinishWithCounts();
    }
  }

  // UNAVAILABLE with the stream's counts, for a server that is stopping.
  void FinishStopping() {
    const v1::StreamSamplesResponse counts = Counts();
    context_->AddTrailingMetadata(std::string(kStoppingResponseKey), counts.SerializeAsString());
    Finish(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("the server is stopping: this stream was ended after ", batches_read_,
                     " batches; ", counts.accepted(),
                     " samples were accepted (they are flushed "
                     "and delivered with the export), ",
                     counts.rejected(), " rejected; batches not read yet were not taken")));
  }

  void ReadNext() {
    ReleaseMessageBytes(&request_, &slice_, &buffer_);
    StartRead(&request_);
  }

  // The bytes of the batch just read: its only slice when gRPC received it in one (no copy),
  // else its slices copied into buffer_.
  absl::string_view RequestBytes() { return MessageBytes(request_, &slice_, &buffer_); }

  // Ends the stream because batch `index` is not a valid SampleBatch.
  void FinishInvalid(int64_t index, const absl::Status& status) {
    const uint64_t accepted = ingester_ != nullptr ? ingester_->accepted() : 0;
    LogWarning("StreamSamples: invalid batch", {{"export_id", export_id_},
                                                {"batch", absl::StrCat(index)},
                                                {"error", std::string(status.message())}});
    End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     absl::StrCat("batch ", index, ": ", status.message(), " (", accepted,
                                  " samples of this stream were accepted before)")));
  }

  v1::StreamSamplesResponse Counts() const {
    v1::StreamSamplesResponse response;
    if (ingester_ != nullptr) {
      response.set_accepted(ingester_->accepted());
      response.set_rejected(ingester_->rejected());
      FillRejections(ingester_->rejections(), response.mutable_rejections());
      FillRejections(ingester_->declaration_errors(), response.mutable_declaration_errors());
    }
    return response;
  }

  void FinishWithCounts() {
    grpc::Slice slice(Counts().SerializeAsString());
    grpc::ByteBuffer serialized(&slice, 1);
    response_->Swap(&serialized);
    Finish(grpc::Status::OK);
  }

  ExportRegistry* const registry_;
  ExportJournal* const journal_;  // null without --data_dir
  std::string stream_id_;         // in the journal
  OpenStreams* const streams_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const response_;
  grpc::ByteBuffer request_;
  grpc::Slice slice_;   // request_'s only slice, when it has one
  std::string buffer_;  // request_'s bytes, when it has several slices
  int64_t batches_read_ = 0;
  DecodedBatch batch_;
  std::string export_id_;
  std::unique_ptr<StreamIngester> ingester_;
  size_t retained_reported_ = 0;  // CallRetainedBytes as last reported to export_
  std::shared_ptr<Export> export_;
  Mutex mu_;
  int applying_ ABSL_GUARDED_BY(mu_) = 0;  // batches handed to the aggregator, not yet applied
  int durable_pending_ ABSL_GUARDED_BY(mu_) = 0;  // batches appended to the WAL, not yet durable
  bool wal_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_for_room_ ABSL_GUARDED_BY(mu_) = false;  // the next read waits for OnApplied
  bool ending_ ABSL_GUARDED_BY(mu_) = false;            // End() was called: no more reads
  bool server_stopping_ ABSL_GUARDED_BY(mu_) = false;   // ended by ServerStopping()
  bool completed_ ABSL_GUARDED_BY(mu_) = false;         // Complete() ran
  std::optional<grpc::Status> end_status_ ABSL_GUARDED_BY(mu_);
  bool grpc_done_ ABSL_GUARDED_BY(mu_) = false;
};

namespace {

// Has every aggregation worker hand its cached free blocks back to the allocator
// (FlushThreadCache), waiting at most a second for them: after an export stopped, the blocks
// of its series sit in the caches of the workers that freed them.
void FlushWorkerCaches(WorkerPool& pool) {
  // Shared with the tasks: a worker may run its task after the wait gave up.
  struct Countdown {
    Mutex mu;
    CondVar cv;
    size_t left ABSL_GUARDED_BY(mu) = 0;
  };
  auto countdown = std::make_shared<Countdown>();
  {
    MutexLock lock(&countdown->mu);
    countdown->left = pool.size();
  }
  for (size_t w = 0; w < pool.size(); ++w) {
    pool.Post(w, [countdown] {
      FlushThreadCache();
      MutexLock lock(&countdown->mu);
      --countdown->left;
      countdown->cv.SignalAll();
    });
  }
  MutexLock lock(&countdown->mu);
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  while (countdown->left > 0 && absl::Now() < deadline) {
    countdown->cv.WaitFor(&countdown->mu, std::chrono::milliseconds(50));
  }
}

// Answers one StartExport. An export whose answer did not reach the client (the call was
// cancelled, or its status could not be sent) would run unseen until its idle timeout: it is
// removed again. So is one created after the call's deadline: the client, whose clock started
// first, has given up already, even if the server has not seen the cancellation yet.
class StartReactor final : public grpc::ServerUnaryReactor {
 public:
  StartReactor(grpc::CallbackServerContext* context, std::function<void(const std::string&)> remove)
      : context_(context), remove_(std::move(remove)) {}

  // `export_id`: the export this call created (empty if none).
  void Answer(std::string export_id, const grpc::Status& status) {
    export_id_ = std::move(export_id);
    if (!export_id_.empty() && context_->deadline() < std::chrono::system_clock::now()) {
      late_ = true;
      Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          "the export was created after the call's deadline; it is removed"));
      return;
    }
    Finish(status);
  }

  void OnDone() override {
    if (!export_id_.empty() && (late_ || context_->IsCancelled())) remove_(export_id_);
    delete this;
  }

 private:
  grpc::CallbackServerContext* const context_;
  const std::function<void(const std::string&)> remove_;
  std::string export_id_;
  bool late_ = false;  // answered after the deadline
};

// A StreamSamples call refused before its first read (e.g. unauthenticated).
class RefusedStream final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

ExportServiceImpl::ExportServiceImpl(ExportRegistry* registry, TokenAuthenticator auth,
                                     IngestOptions ingest)
    : registry_(registry),
      auth_(std::move(auth)),
      journal_(ingest.journal != nullptr ? ingest.journal : &immediate_journal_),
      ingest_window_(ingest.window < 1 ? 1 : ingest.window) {}

grpc::ServerUnaryReactor* ExportServiceImpl::Refuse(grpc::CallbackServerContext* context,
                                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

ExportServiceImpl::~ExportServiceImpl() {
  MutexLock lock(&mu_);
  while (stops_running_ > 0) cv_.Wait(&mu_);
}

grpc::ServerUnaryReactor* ExportServiceImpl::StartExport(grpc::CallbackServerContext* context,
                                                         const v1::StartExportRequest* request,
                                                         v1::StartExportResponse* response) {
  if (grpc::Status auth = auth_.Check(*context); !auth.ok()) return Refuse(context, auth);
  auto* reactor = new StartReactor(context, [this](const std::string& id) { RemoveOrphan(id); });
  absl::StatusOr<v1::StartExportResponse> result = registry_->Start(*request);
  if (result.ok()) {
    *response = *std::move(result);
    reactor->Answer(response->export_id(), grpc::Status::OK);
  } else {
    // The test run id is bounded by validation only if it passed; cut it for the log.
    LogWarning("StartExport rejected",
               {{"test_run_id", request->test_run_id().substr(0, kMaxTestRunIdLength)},
                {"error", std::string(result.status().message())}});
    reactor->Answer("", ToGrpcStatus(result.status()));
  }
  return reactor;
}

void ExportServiceImpl::RemoveOrphan(const std::string& id) {
  LogWarning("StartExport's answer did not reach the client; removing the export it started",
             {{"export_id", id}});
  {
    MutexLock lock(&mu_);
    ++stops_running_;
  }
  // Stopping takes locks and waits for the sender: not on a gRPC callback thread, but on the
  // registry's stop executor.
  registry_->StopAsync(id, absl::Milliseconds(1), [this](absl::StatusOr<v1::StopExportResponse>) {
    MutexLock lock(&mu_);
    if (--stops_running_ == 0) cv_.SignalAll();
  });
}

grpc::ServerReadReactor<grpc::ByteBuffer>* ExportServiceImpl::StreamSamples(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  if (grpc::Status auth = auth_.Check(*context); !auth.ok()) return new RefusedStream(auth);
  MutexLock lock(&streams_.mu);
  if (streams_.stopping) {
    return new RefusedStream(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping: no new streams"));
  }
  auto* reactor = new IngestReactor(registry_, &streams_, context, response);
  streams_.open.insert(reactor);
  return reactor;
}

AckedIngestReactor* ExportServiceImpl::IngestSamples(grpc::CallbackServerContext* context) {
  if (grpc::Status auth = auth_.Check(*context); !auth.ok()) return RefusedAckedIngestCall(auth);
  MutexLock lock(&streams_.mu);
  if (streams_.stopping) {
    return RefusedAckedIngestCall(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping: no new streams"));
  }
  return NewAckedIngestCall(registry_, &streams_, journal_, ingest_window_);
}

size_t ExportServiceImpl::StopStreams() {
  MutexLock lock(&streams_.mu);
  streams_.stopping = true;
  for (StoppableCall* call : streams_.open) call->ServerStopping();
  return streams_.open.size();
}

size_t ExportServiceImpl::AwaitStreamsEnded(absl::Time deadline) {
  MutexLock lock(&streams_.mu);
  while (!streams_.open.empty()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    streams_.removed.WaitFor(&streams_.mu, absl::ToChronoNanoseconds(left));
  }
  return streams_.open.size();
}

grpc::ServerUnaryReactor* ExportServiceImpl::StopExport(grpc::CallbackServerContext* context,
                                                        const v1::StopExportRequest* request,
                                                        v1::StopExportResponse* response) {
  if (grpc::Status auth = auth_.Check(*context); !auth.ok()) return Refuse(context, auth);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->export_id().empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "export_id: required"));
    return reactor;
  }
  {
    MutexLock lock(&mu_);
    ++stops_running_;
  }
  // Stopping waits for delivery, which may take seconds: never on a gRPC callback thread, but
  // on the registry's stop executor.
  registry_->StopAsync(request->export_id(), absl::Milliseconds(request->delivery_timeout_ms()),
                       [this, reactor, response](absl::StatusOr<v1::StopExportResponse> result) {
                         // The export's series and caches were just freed: give the pages
                         // back before answering, so the RSS the caller sees next is the
                         // server's without it.
                         if (result.ok()) {
                           FlushWorkerCaches(registry_->pool());
                           FlushThreadCache();
                           ReleaseFreeMemory();
                         }
                         if (result.ok()) *response = *std::move(result);
                         reactor->Finish(ToGrpcStatus(result.status()));
                         MutexLock lock(&mu_);
                         if (--stops_running_ == 0) cv_.SignalAll();
                       });
  return reactor;
}

grpc::ServerUnaryReactor* ExportServiceImpl::GetExport(grpc::CallbackServerContext* context,
                                                       const v1::GetExportRequest* request,
                                                       v1::ExportStatus* response) {
  if (grpc::Status auth = auth_.Check(*context); !auth.ok()) return Refuse(context, auth);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::shared_ptr<Export>> found = registry_->Lookup(request->export_id());
  if (!found.ok()) {
    reactor->Finish(ToGrpcStatus(found.status()));
    return reactor;
  }
  *response = (*found)->Status();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ExportServiceImpl::ListExports(grpc::CallbackServerContext* context,
                                                         const v1::ListExportsRequest* request,
                                                         v1::ListExportsResponse* response) {
  if (grpc::Status auth = auth_.Check(*context); !auth.ok()) return Refuse(context, auth);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Pages stay well under gRPC's default 4 MiB receive limit: one export's status is bounded by
  // the configuration bound (kMaxConfigBytes) and its figures.
  constexpr uint32_t kMaxPageSize = 100;
  constexpr size_t kMaxPageBytes = 2 << 20;
  uint64_t after = 0;
  if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &after)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "page_token: not a next_page_token of ListExports"));
    return reactor;
  }
  const uint32_t size =
      request->page_size() == 0 ? kMaxPageSize : std::min(request->page_size(), kMaxPageSize);
  ExportPage page = registry_->ListPage(after, size, kMaxPageBytes);
  for (v1::ExportStatus& status : page.exports) *response->add_exports() = std::move(status);
  if (page.next_after != 0) response->set_next_page_token(absl::StrCat(page.next_after));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace rwexport
