#include "lib/client/acked_stream.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace rwexport {

// One IngestSamples call. `alive`, `answered` and the counts are guarded by AckedStream::mu_.
struct AckedStream::Call {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriterInterface<v1::IngestRequest, v1::IngestAck>> stream;
  std::thread reader;
  bool resumed = false;  // not the stream's first call
  std::string cause;     // why it was opened, when resumed
  bool first_write = true;
  bool alive = true;
  bool answered = false;
  uint64_t accepted = 0;
  uint64_t rejected = 0;
};

namespace {

// UNAVAILABLE: the server is stopping or gone. CANCELLED: this stream never cancels a call
// it still uses, so the server did (gRPC cancels the calls still open when a stopping server
// ends). A call a proxy (HAProxy) cut when the server behind it died: it ends the client's
// stream without trailers (UNKNOWN "No status received") or resets it ("Received RST_STREAM
// with error code 8"); directly connected, the same failure is UNAVAILABLE. Resuming is safe
// in every case: the server drops what it already has.
bool Retryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsCancelled(status) ||
         (absl::IsUnknown(status) && absl::StrContains(status.message(), "No status received")) ||
         absl::StrContains(status.message(), "Received RST_STREAM");
}

std::string Describe(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
}

}  // namespace

std::string RandomStreamId() {
  absl::BitGen gen;
  return absl::StrFormat("s-%016x%016x", absl::Uniform<uint64_t>(gen),
                         absl::Uniform<uint64_t>(gen));
}

AckedStream::AckedStream(v1::ExportService::StubInterface* stub, std::string export_id,
                         AckedStreamOptions options)
    : stub_(stub),
      export_id_(std::move(export_id)),
      options_(std::move(options)),
      builder_(options_.batch_size == 0 ? 1 : options_.batch_size),
      backoff_(options_.initial_backoff),
      window_(std::max<uint32_t>(options_.window, 1)) {
  if (options_.batch_size == 0) options_.batch_size = 1;
  if (options_.stream_id.empty()) options_.stream_id = RandomStreamId();
}

AckedStream::~AckedStream() {
  if (call_ != nullptr) {
    call_->context.TryCancel();
    CloseCall().IgnoreError();
  }
}

void AckedStream::Declare(const std::string& name, MetricType type, ValueKind kind) {
  builder_.Declare(name, type, kind);
}

void AckedStream::Add(absl::string_view metric,
                      absl::Span<const std::pair<std::string, std::string>> tags,
                      int64_t time_unix_nano, double value) {
  builder_.Add(metric, tags, time_unix_nano, value);
  if (builder_.samples() >= options_.batch_size) Flush().IgnoreError();
}

void AckedStream::DeclareSeries(uint32_t ref, absl::string_view metric,
                                absl::Span<const std::pair<std::string, std::string>> tags) {
  builder_.DeclareSeries(ref, metric, tags);
}

void AckedStream::AddCompact(uint32_t ref, int64_t time_unix_nano, double value) {
  builder_.AddCompact(ref, time_unix_nano, value);
  if (builder_.samples() >= options_.batch_size) Flush().IgnoreError();
}

absl::Status AckedStream::Flush() {
  if (!failure_.ok() || builder_.empty()) return failure_;
  const size_t samples = builder_.samples();
  std::shared_ptr<v1::IngestRequest> request = SpareRequest();
  builder_.TakeInto(request->mutable_batch());
  absl::Status sent = Send(std::move(request));
  if (sent.ok()) samples_sent_ += samples;
  return sent;
}

std::shared_ptr<v1::IngestRequest> AckedStream::SpareRequest() {
  {
    MutexLock lock(&mu_);
    while (!spare_.empty()) {
      std::shared_ptr<v1::IngestRequest> spare = std::move(spare_.back());
      spare_.pop_back();
      if (spare.use_count() == 1) return spare;  // else a resend still holds it
    }
  }
  return std::make_shared<v1::IngestRequest>();
}

absl::Status AckedStream::Send(std::shared_ptr<v1::IngestRequest> request) {
  request->set_sequence(next_sequence_++);
  for (const v1::MetricDeclaration& m : request->batch().metrics()) {
    metric_declarations_.push_back(m);
  }
  for (const v1::SeriesDeclaration& d : request->batch().series()) {
    series_declarations_[d.ref()] = d;
  }
  if (!WaitForRoom()) {
    if (absl::Status s = Resume(CloseCall()); !s.ok()) return failure_ = s;
  }
  {
    MutexLock lock(&mu_);
    unacked_.push_back(request);
  }
  if (!Write(*request)) {
    if (absl::Status s = Resume(CloseCall()); !s.ok()) return failure_ = s;
  }
  return absl::OkStatus();
}

bool AckedStream::WaitForRoom() {
  if (call_ == nullptr) return true;
  MutexLock lock(&mu_);
  while (unacked_.size() >= window_ && call_->alive) cv_.Wait(&mu_);
  return unacked_.size() < window_;
}

bool AckedStream::Write(const v1::IngestRequest& request) {
  if (call_ == nullptr) return OpenAndResend(/*cause=*/"");
  if (!call_->first_write) return call_->stream->Write(request);
  call_->first_write = false;
  v1::IngestRequest first = request;
  first.set_export_id(export_id_);
  first.set_stream_id(options_.stream_id);
  if (call_->resumed) {  // series references belong to the call: declare them again
    v1::SampleBatch merged = Declarations();
    merged.MergeFrom(request.batch());
    first.mutable_batch()->Swap(&merged);
  }
  return call_->stream->Write(first);
}

v1::SampleBatch AckedStream::Declarations() const {
  v1::SampleBatch batch;
  for (const v1::MetricDeclaration& m : metric_declarations_) *batch.add_metrics() = m;
  for (const auto& [ref, d] : series_declarations_) *batch.add_series() = d;
  return batch;
}

bool AckedStream::OpenAndResend(const std::string& cause) {
  call_ = std::make_unique<Call>();
  call_->resumed = calls_opened_++ > 0;
  call_->cause = cause;
  AddRoutingHeader(&call_->context, export_id_);  // a fleet's router sends it to the owner
  call_->stream = stub_->IngestSamples(&call_->context);
  call_->reader = std::thread([this, call = call_.get()] { ReadAcks(call); });
  std::deque<std::shared_ptr<v1::IngestRequest>> resend;
  {
    MutexLock lock(&mu_);
    resend = unacked_;
  }
  for (const auto& request : resend) {
    if (!Write(*request)) return false;
  }
  return true;
}

void AckedStream::ReadAcks(Call* call) {
  v1::IngestAck ack;
  while (call->stream->Read(&ack)) {
    std::string line;
    {
      MutexLock lock(&mu_);
      if (!call->answered && call->resumed && !call->cause.empty()) {
        line = absl::StrCat("resumed stream ", options_.stream_id, " at batch ",
                            ack.acked_through() + 1, " after ", call->cause);
      }
      call->answered = true;
      if (ack.window() > 0) window_ = ack.window();
      acked_through_ = std::max(acked_through_, ack.acked_through());
      while (!unacked_.empty() && unacked_.front()->sequence() <= acked_through_) {
        if (spare_.size() < window_) spare_.push_back(std::move(unacked_.front()));
        unacked_.pop_front();
      }
      call->accepted = ack.accepted();
      call->rejected = ack.rejected();
      stream_accepted_ = std::max(stream_accepted_, ack.stream_accepted());
      stream_rejected_ = std::max(stream_rejected_, ack.stream_rejected());
      for (const v1::Rejection& r : ack.rejections()) {
        v1::Rejection& sum = rejections_[{0, r.reason()}];
        sum.set_reason(r.reason());
        sum.set_count(sum.count() + r.count());
        if (sum.example().empty()) sum.set_example(r.example());
      }
      for (const v1::Rejection& r : ack.declaration_errors()) {
        v1::Rejection& sum = rejections_[{1, r.reason()}];
        sum.set_reason(r.reason());
        sum.set_count(sum.count() + r.count());
        if (sum.example().empty()) sum.set_example(r.example());
      }
      cv_.SignalAll();
    }
    if (!line.empty() && options_.on_resume) options_.on_resume(line);
  }
  MutexLock lock(&mu_);
  call->alive = false;
  cv_.SignalAll();
}

absl::Status AckedStream::CloseCall() {
  if (call_ == nullptr) return absl::OkStatus();
  call_->reader.join();
  const grpc::Status status = call_->stream->Finish();
  {
    MutexLock lock(&mu_);
    accepted_ += call_->accepted;
    rejected_ += call_->rejected;
  }
  call_.reset();
  return FromGrpcStatus(status);
}

absl::Status AckedStream::Resume(absl::Status status) {
  const absl::Time started = absl::Now();
  absl::BitGen gen;
  for (;;) {
    if (status.ok()) status = absl::UnavailableError("the server ended the call early");
    if (!Retryable(status)) return status;
    const std::string cause = Describe(status);
    const absl::Duration left = options_.resume_timeout - (absl::Now() - started);
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "gave up resuming stream ", options_.stream_id, " after ",
          absl::FormatDuration(options_.resume_timeout), " without progress; last error: ", cause));
    }
    absl::SleepFor(std::min(left, backoff_ * absl::Uniform(gen, 0.5, 1.0)));
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    ++resumes_;
    if (OpenAndResend(cause)) {
      // Resumed once the server answers the new call (or nothing is waiting for an answer).
      MutexLock lock(&mu_);
      while (!call_->answered && call_->alive && !unacked_.empty()) cv_.Wait(&mu_);
      if (call_->answered || (call_->alive && unacked_.empty())) {
        backoff_ = options_.initial_backoff;
        return absl::OkStatus();
      }
    }
    status = CloseCall();
  }
}

absl::StatusOr<v1::StreamSamplesResponse> AckedStream::Finish() {
  if (absl::Status flushed = Flush(); !flushed.ok()) return flushed;
  while (call_ != nullptr) {
    call_->stream->WritesDone();
    absl::Status status = CloseCall();
    bool all_acked;
    {
      MutexLock lock(&mu_);
      all_acked = unacked_.empty();
    }
    // Every batch acknowledged: a lost final answer loses nothing but the last call's counts.
    if (all_acked && (status.ok() || Retryable(status))) break;
    if (absl::Status s = Resume(status); !s.ok()) return failure_ = s;
  }
  v1::StreamSamplesResponse response;
  MutexLock lock(&mu_);
  // The server's counts over the whole stream include batches whose ack a broken call lost
  // (a server that does not send them: the calls' sums).
  const bool stream_counted = stream_accepted_ + stream_rejected_ > 0;
  response.set_accepted(stream_counted ? stream_accepted_ : accepted_);
  response.set_rejected(stream_counted ? stream_rejected_ : rejected_);
  for (const auto& [key, r] : rejections_) {
    *(key.first == 0 ? response.add_rejections() : response.add_declaration_errors()) = r;
  }
  return response;
}

}  // namespace rwexport
