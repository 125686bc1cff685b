#include "lib/client/sample_stream.h"

#include <algorithm>
#include <utility>

#include "lib/export/ownership.h"

namespace rwexport {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

void AddRoutingHeader(grpc::ClientContext* context, absl::string_view export_id) {
  const std::string owner = ExportIdOwner(export_id);
  if (!owner.empty()) context->AddMetadata(std::string(kReplicaHeader), owner);
}

SampleStream::SampleStream(v1::ExportService::StubInterface* stub, std::string export_id,
                           size_t batch_size)
    : export_id_(std::move(export_id)),
      batch_size_(batch_size == 0 ? 1 : batch_size),
      builder_(batch_size_) {
  AddRoutingHeader(&context_, export_id_);
  writer_ = stub->StreamSamples(&context_, &response_);
}

SampleStream::~SampleStream() {
  if (!finished_) {
    context_.TryCancel();
    writer_->Finish().ok();
  }
}

void SampleBatchBuilder::Declare(const std::string& name, MetricType type, ValueKind kind) {
  v1::MetricDeclaration* d = batch_.add_metrics();
  d->set_name(name);
  d->set_type(static_cast<v1::MetricType>(static_cast<int>(type) + 1));
  d->set_kind(static_cast<v1::ValueKind>(kind));
}

void SampleBatchBuilder::Add(absl::string_view metric,
                             absl::Span<const std::pair<std::string, std::string>> tags,
                             int64_t time_unix_nano, double value) {
  v1::Sample* s = batch_.add_samples();
  s->set_metric(std::string(metric));
  for (const auto& [key, val] : tags) {
    v1::Tag* t = s->add_tags();
    t->set_key(key);
    t->set_value(val);
  }
  s->set_time_unix_nano(time_unix_nano);
  s->set_value(value);
}

void SampleBatchBuilder::DeclareSeries(uint32_t ref, absl::string_view metric,
                                       absl::Span<const std::pair<std::string, std::string>> tags) {
  v1::SeriesDeclaration* d = batch_.add_series();
  d->set_ref(ref);
  d->set_metric(std::string(metric));
  for (const auto& [key, val] : tags) {
    v1::Tag* t = d->add_tags();
    t->set_key(key);
    t->set_value(val);
  }
}

void SampleBatchBuilder::AddCompact(uint32_t ref, int64_t time_unix_nano, double value) {
  v1::CompactSamples* compact = batch_.mutable_compact();
  if (compact->refs_size() == 0) {  // a new batch: size its columns once
    const int expected = static_cast<int>(std::min<size_t>(expected_, 1 << 16));
    compact->mutable_refs()->Reserve(expected);
    compact->mutable_time_unix_nano_delta()->Reserve(expected);
    compact->mutable_values()->Reserve(expected);
  }
  // The first time of a batch is absolute, later ones are deltas (wrapping, never UB).
  const int64_t delta = compact->refs_size() == 0
                            ? time_unix_nano
                            : static_cast<int64_t>(static_cast<uint64_t>(time_unix_nano) -
                                                   static_cast<uint64_t>(compact_last_time_));
  compact->add_refs(ref);
  compact->add_time_unix_nano_delta(delta);
  compact->add_values(value);
  compact_last_time_ = time_unix_nano;
}

size_t SampleBatchBuilder::samples() const {
  return static_cast<size_t>(batch_.samples_size()) +
         static_cast<size_t>(batch_.compact().refs_size());
}

bool SampleBatchBuilder::empty() const {
  return samples() == 0 && batch_.metrics_size() == 0 && batch_.series_size() == 0;
}

void SampleBatchBuilder::TakeInto(v1::SampleBatch* into) {
  into->Clear();
  into->Swap(&batch_);
}

void SampleStream::Declare(const std::string& name, MetricType type, ValueKind kind) {
  builder_.Declare(name, type, kind);
}

void SampleStream::Add(absl::string_view metric,
                       absl::Span<const std::pair<std::string, std::string>> tags,
                       int64_t time_unix_nano, double value) {
  builder_.Add(metric, tags, time_unix_nano, value);
  if (batched() >= batch_size_) Flush().IgnoreError();
}

void SampleStream::DeclareSeries(uint32_t ref, absl::string_view metric,
                                 absl::Span<const std::pair<std::string, std::string>> tags) {
  builder_.DeclareSeries(ref, metric, tags);
}

void SampleStream::AddCompact(uint32_t ref, int64_t time_unix_nano, double value) {
  builder_.AddCompact(ref, time_unix_nano, value);
  if (batched() >= batch_size_) Flush().IgnoreError();
}

absl::Status SampleStream::CallStatus() {
  finished_ = true;
  return FromGrpcStatus(writer_->Finish());
}

absl::Status SampleStream::Flush() {
  if (failed_) return failure_;
  if (builder_.empty() && !first_) return absl::OkStatus();
  if (first_) builder_.batch().set_export_id(export_id_);
  first_ = false;
  const size_t n = batched();
  if (!writer_->Write(builder_.batch())) {
    failed_ = true;
    failure_ = CallStatus();
    if (failure_.ok()) failure_ = absl::UnavailableError("the server closed the stream");
    return failure_;
  }
  samples_sent_ += n;
  builder_.batch().Clear();
  return absl::OkStatus();
}

absl::StatusOr<v1::StreamSamplesResponse> SampleStream::Finish() {
  absl::Status flushed = Flush();
  if (!flushed.ok()) return flushed;
  writer_->WritesDone();
  absl::Status status = CallStatus();
  if (!status.ok()) return status;
  return response_;
}

}  // namespace rwexport
