#include "lib/bench/null_sink.h"

#include "absl/strings/str_cat.h"

namespace rwexport {

// One StreamSamples call: reads batches until the client half-closes. Deletes itself when
// gRPC is done with it.
class NullSinkReactor final : public grpc::ServerReadReactor<v1::SampleBatch> {
 public:
  NullSinkReactor(NullSinkService* service, v1::StreamSamplesResponse* response)
      : service_(service), response_(response) {
    StartRead(&batch_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (!export_id_.empty()) service_->AddSamples(export_id_, samples_);
      response_->set_accepted(samples_);
      Finish(grpc::Status::OK);
      return;
    }
    if (export_id_.empty()) {
      if (!service_->Exists(batch_.export_id())) {
        Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                            absl::StrCat("no export with id \"", batch_.export_id(), "\"")));
        return;
      }
      export_id_ = batch_.export_id();
    }
    samples_ += static_cast<uint64_t>(batch_.samples_size()) +
                static_cast<uint64_t>(batch_.compact().refs_size());
    StartRead(&batch_);
  }

  void OnDone() override { delete this; }

 private:
  NullSinkService* const service_;
  v1::StreamSamplesResponse* const response_;
  v1::SampleBatch batch_;
  std::string export_id_;
  uint64_t samples_ = 0;
};

// One IngestSamples call: counts each batch and acknowledges it; reads on while an ack is
// being written (the next ack then covers every batch read meanwhile).
class NullSinkIngestReactor final
    : public grpc::ServerBidiReactor<v1::IngestRequest, v1::IngestAck> {
 public:
  explicit NullSinkIngestReactor(NullSinkService* service) : service_(service) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    MutexLock lock(&mu_);
    if (!ok) {
      reading_ = false;
      if (!export_id_.empty()) service_->AddSamples(export_id_, samples_);
      if (!writing_) Finish(grpc::Status::OK);
      return;
    }
    if (export_id_.empty()) {
      if (!service_->Exists(request_.export_id())) {
        reading_ = false;
        if (!writing_) {
          Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                              absl::StrCat("no export with id \"", request_.export_id(), "\"")));
        }
        return;
      }
      export_id_ = request_.export_id();
    }
    samples_ += static_cast<uint64_t>(request_.batch().samples_size()) +
                static_cast<uint64_t>(request_.batch().compact().refs_size());
    read_through_ = request_.sequence();
    if (!writing_) WriteAck();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    MutexLock lock(&mu_);
    writing_ = false;
    if (ok && ack_.acked_through() < read_through_) {
      WriteAck();
    } else if (!reading_) {
      Finish(grpc::Status::OK);
    }
  }

  void OnDone() override { delete this; }

 private:
  void WriteAck() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writing_ = true;
    ack_.set_acked_through(read_through_);
    ack_.set_window(32);
    ack_.set_accepted(samples_);
    StartWrite(&ack_);
  }

  NullSinkService* const service_;
  v1::IngestRequest request_;
  std::string export_id_;
  uint64_t samples_ = 0;
  Mutex mu_;
  v1::IngestAck ack_ ABSL_GUARDED_BY(mu_);
  uint64_t read_through_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = true;
};

grpc::ServerBidiReactor<v1::IngestRequest, v1::IngestAck>* NullSinkService::IngestSamples(
    grpc::CallbackServerContext* context) {
  return new NullSinkIngestReactor(this);
}

grpc::ServerUnaryReactor* NullSinkService::StartExport(grpc::CallbackServerContext* context,
                                                       const v1::StartExportRequest* request,
                                                       v1::StartExportResponse* response) {
  {
    MutexLock lock(&mu_);
    const std::string id = absl::StrCat("null-", next_id_++);
    samples_by_export_[id] = 0;
    response->set_export_id(id);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerReadReactor<v1::SampleBatch>* NullSinkService::StreamSamples(
    grpc::CallbackServerContext* context, v1::StreamSamplesResponse* response) {
  return new NullSinkReactor(this, response);
}

grpc::ServerUnaryReactor* NullSinkService::StopExport(grpc::CallbackServerContext* context,
                                                      const v1::StopExportRequest* request,
                                                      v1::StopExportResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  MutexLock lock(&mu_);
  auto it = samples_by_export_.find(request->export_id());
  if (it == samples_by_export_.end()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("no export with id \"", request->export_id(), "\"")));
    return reactor;
  }
  response->set_samples_accepted(it->second);
  samples_by_export_.erase(it);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

uint64_t NullSinkService::samples() const {
  MutexLock lock(&mu_);
  return samples_;
}

bool NullSinkService::Exists(const std::string& export_id) const {
  MutexLock lock(&mu_);
  return samples_by_export_.contains(export_id);
}

void NullSinkService::AddSamples(const std::string& export_id, uint64_t samples) {
  MutexLock lock(&mu_);
  samples_ += samples;
  auto it = samples_by_export_.find(export_id);
  if (it != samples_by_export_.end()) it->second += samples;
}

}  // namespace rwexport
