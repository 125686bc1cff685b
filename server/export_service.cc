#include "server/export_service.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/aggregate/aggregator.h"
#include "lib/ingest/stream_ingester.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/common/log.h"

namespace rwexport {
namespace {

// One StreamSamples call. Reads a batch, decodes it, hands it to the export's aggregator, and
// reads the next one while the workers apply it: at most kMaxApplying batches of a stream are
// being applied at once, then the next read waits for one of them (back-pressure). Answers,
// with its counts or an error, only once every batch it took is applied. Deletes itself once gRPC
// is done with it and no batch is still being applied.
class IngestReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  // Enough to keep the workers busy while the next batch is read and routed; each holds its
  // samples' work items (24 bytes a sample) until applied.
  static constexpr int kMaxApplying = 4;

  IngestReactor(ExportRegistry* registry, grpc::ByteBuffer* response)
      : registry_(registry), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or the call ended)
      End(std::nullopt);
      return;
    }
    const int64_t index = batches_read_++;
    absl::Status decoded = DecodeSampleBatch(RequestBytes(), &batch_);
    if (!decoded.ok()) {
      FinishInvalid(index, decoded);
      return;
    }
    if (ingester_ == nullptr) {
      if (batch_.export_id.empty()) {
        End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "export_id: required on the first batch of a stream"));
        return;
      }
      std::shared_ptr<Export> e = registry_->Find(batch_.export_id);
      if (e == nullptr) {
        End(grpc::Status(grpc::StatusCode::NOT_FOUND,
                         absl::StrCat("no export with id \"", batch_.export_id, "\"")));
        return;
      }
      const int max_streams = registry_->options().max_streams_per_export;
      if (!e->StreamOpened(max_streams)) {
        End(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                         absl::StrCat("export \"", batch_.export_id, "\" already has ", max_streams,
                                      " streams (--max_streams_per_export)")));
        return;
      }
      export_id_ = batch_.export_id;
      ingester_ = std::make_unique<StreamIngester>(e->aggregator());
      export_ = std::move(e);
    } else if (!batch_.export_id.empty() && batch_.export_id != export_id_) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("export_id: a stream feeds one export; this stream feeds \"",
                                    export_id_, "\", not \"", batch_.export_id, "\"")));
      return;
    }
    export_->Touch();
    {
      MutexLock lock(&mu_);
      ++applying_;
    }
    absl::Status status = ingester_->Ingest(batch_, [this] { OnApplied(); });
    if (!status.ok()) {
      {
        MutexLock lock(&mu_);
        --applying_;
      }
      if (absl::IsInvalidArgument(status)) {
        FinishInvalid(index, status);
        return;
      }
      End(grpc::Status(
          grpc::StatusCode::ABORTED,
          absl::StrCat("export \"", export_id_, "\" was stopped: ", status.message(), " (",
                       ingester_->accepted(), " samples of this stream were accepted before)")));
      return;
    }
    // The batch's samples are the workers' now: its bytes can take the next one.
    bool read_now;
    {
      MutexLock lock(&mu_);
      read_now = applying_ < kMaxApplying;
      waiting_for_room_ = !read_now;
    }
    if (read_now) ReadNext();
  }

  ~IngestReactor() override {
    if (export_ != nullptr) export_->StreamClosed();
  }

  void OnDone() override {
    bool delete_now;
    {
      MutexLock lock(&mu_);
      grpc_done_ = true;
      delete_now = applying_ == 0;
    }
    if (delete_now) delete this;
  }

 private:
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
        delete_now = applying_ == 0;
      } else if (ending_) {
        finish_now = applying_ == 0;
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
  void End(std::optional<grpc::Status> status) {
    bool now;
    {
      MutexLock lock(&mu_);
      ending_ = true;
      now = applying_ == 0;
      if (!now) end_status_ = std::move(status);
    }
    if (now) Complete(status);  // else the last OnApplied does
  }

  void Complete(const std::optional<grpc::Status>& status) {
    if (status.has_value()) {
      Finish(*status);
    } else {
      FinishWithCounts();
    }
  }

  void ReadNext() {
    request_.Clear();
    slice_ = grpc::Slice();
    StartRead(&request_);
  }

  // The bytes of the batch just read: its only slice when gRPC received it in one (no copy),
  // else its slices copied into buffer_.
  absl::string_view RequestBytes() {
    if (request_.TrySingleSlice(&slice_).ok()) {
      return absl::string_view(reinterpret_cast<const char*>(slice_.begin()), slice_.size());
    }
    buffer_.clear();
    std::vector<grpc::Slice> slices;
    if (request_.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        buffer_.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    return buffer_;
  }

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

  void FinishWithCounts() {
    v1::StreamSamplesResponse response;
    if (ingester_ != nullptr) {
      response.set_accepted(ingester_->accepted());
      response.set_rejected(ingester_->rejected());
      for (const auto& [reason, r] : ingester_->rejections()) {
        v1::Rejection* out = response.add_rejections();
        out->set_reason(reason);
        out->set_count(r.count);
        out->set_example(r.example);
      }
      for (const auto& [reason, r] : ingester_->declaration_errors()) {
        v1::Rejection* out = response.add_declaration_errors();
        out->set_reason(reason);
        out->set_count(r.count);
        out->set_example(r.example);
      }
    }
    grpc::Slice slice(response.SerializeAsString());
    grpc::ByteBuffer serialized(&slice, 1);
    response_->Swap(&serialized);
    Finish(grpc::Status::OK);
  }

  ExportRegistry* const registry_;
  grpc::ByteBuffer* const response_;
  grpc::ByteBuffer request_;
  grpc::Slice slice_;   // request_'s only slice, when it has one
  std::string buffer_;  // request_'s bytes, when it has several slices
  int64_t batches_read_ = 0;
  DecodedBatch batch_;
  std::string export_id_;
  std::unique_ptr<StreamIngester> ingester_;
  std::shared_ptr<Export> export_;
  Mutex mu_;
  int applying_ ABSL_GUARDED_BY(mu_) = 0;  // batches handed to the aggregator, not yet applied
  bool waiting_for_room_ ABSL_GUARDED_BY(mu_) = false;  // the next read waits for OnApplied
  bool ending_ ABSL_GUARDED_BY(mu_) = false;            // End() was called: no more reads
  std::optional<grpc::Status> end_status_ ABSL_GUARDED_BY(mu_);
  bool grpc_done_ ABSL_GUARDED_BY(mu_) = false;
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

ExportServiceImpl::ExportServiceImpl(ExportRegistry* registry, TokenAuthenticator auth)
    : registry_(registry), auth_(std::move(auth)) {}

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
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<v1::StartExportResponse> result = registry_->Start(*request);
  if (result.ok()) {
    *response = *std::move(result);
    reactor->Finish(grpc::Status::OK);
  } else {
    LogWarning("StartExport rejected", {{"test_run_id", request->test_run_id()},
                                        {"error", std::string(result.status().message())}});
    reactor->Finish(ToGrpcStatus(result.status()));
  }
  return reactor;
}

grpc::ServerReadReactor<grpc::ByteBuffer>* ExportServiceImpl::StreamSamples(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  if (grpc::Status auth = auth_.Check(*context); !auth.ok()) return new RefusedStream(auth);
  return new IngestReactor(registry_, response);
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
  std::shared_ptr<Export> e = registry_->Find(request->export_id());
  if (e == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("no export with id \"", request->export_id(), "\"")));
    return reactor;
  }
  *response = e->Status();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ExportServiceImpl::ListExports(grpc::CallbackServerContext* context,
                                                         const v1::ListExportsRequest* request,
                                                         v1::ListExportsResponse* response) {
  if (grpc::Status auth = auth_.Check(*context); !auth.ok()) return Refuse(context, auth);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  for (v1::ExportStatus& status : registry_->List()) *response->add_exports() = std::move(status);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace rwexport
