// The agent side of StreamSamples: batches samples and declarations into SampleBatch messages
// (SampleBatchBuilder, also used by AckedStream) on one gRPC stream. Not thread-safe: one
// SampleStream per sending thread.
#ifndef RWEXPORT_LIB_CLIENT_SAMPLE_STREAM_H_
#define RWEXPORT_LIB_CLIENT_SAMPLE_STREAM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "lib/model/metric.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

// Same code, same message.
absl::Status FromGrpcStatus(const grpc::Status& status);

// For a call about an existing export: adds the routing header (kReplicaHeader, the owner
// named by `export_id`; lib/export/ownership.h) so that a router sends it to that replica.
// Nothing for an id that names no owner.
void AddRoutingHeader(grpc::ClientContext* context, absl::string_view export_id);
// Builds one SampleBatch at a time from samples and declarations.
class SampleBatchBuilder {
 public:
  // `expected` sizes the compact columns of a new batch.
  explicit SampleBatchBuilder(size_t expected) : expected_(expected) {}

  void Declare(const std::string& name, MetricType type, ValueKind kind);
  void Add(absl::string_view metric, absl::Span<const std::pair<std::string, std::string>> tags,
           int64_t time_unix_nano, double value);
  void DeclareSeries(uint32_t ref, absl::string_view metric,
                     absl::Span<const std::pair<std::string, std::string>> tags);
  void AddCompact(uint32_t ref, int64_t time_unix_nano, double value);

  // Samples in the batch, of both forms.
  size_t samples() const;
  // No sample and no declaration.
  bool empty() const;
  v1::SampleBatch& batch() { return batch_; }
  // Moves the batch into `into` and starts the next one in `into`'s old batch, cleared (its
  // allocated samples and tags are reused, as SampleStream reuses its batch).
  void TakeInto(v1::SampleBatch* into);

 private:
  size_t expected_;
  v1::SampleBatch batch_;
  // Time of the last compact sample in batch_ (the next one's delta is from it).
  int64_t compact_last_time_ = 0;
};

class SampleStream {
 public:
  // Opens a StreamSamples call for `export_id` (with its routing header). `stub` must outlive
  // the stream.
  SampleStream(v1::ExportService::StubInterface* stub, std::string export_id,
               size_t batch_size = 1000);
  ~SampleStream();

  void Declare(const std::string& name, MetricType type, ValueKind kind);
  void Add(absl::string_view metric, absl::Span<const std::pair<std::string, std::string>> tags,
           int64_t time_unix_nano, double value);

  // Compact mode (see v1::SeriesDeclaration): binds `ref` to (metric, tags) for the later
  // AddCompact calls of this stream; sent with the next batch. `ref` must be below 1048576
  // (StreamIngester::kMaxSeriesRefs); small dense numbers from 0 are cheapest for the server.
  // Declaring a ref again rebinds it for the samples added after.
  void DeclareSeries(uint32_t ref, absl::string_view metric,
                     absl::Span<const std::pair<std::string, std::string>> tags);
  // Compact mode: one sample of the series declared as `ref`. Costs the agent three appends
  // and the server no key lookup. May be mixed freely with Add.
  void AddCompact(uint32_t ref, int64_t time_unix_nano, double value);
  // Sends what is batched. An error means the server ended the call (its status is returned).
  absl::Status Flush();
  // Sends the rest, half-closes, and returns the server's counts.
  absl::StatusOr<v1::StreamSamplesResponse> Finish();

  uint64_t samples_sent() const { return samples_sent_; }
  // Samples added and not sent yet.
  size_t pending() const { return batched(); }

 private:
  absl::Status CallStatus();
  size_t batched() const { return builder_.samples(); }

  grpc::ClientContext context_;
  v1::StreamSamplesResponse response_;
  std::unique_ptr<grpc::ClientWriterInterface<v1::SampleBatch>> writer_;
  std::string export_id_;
  bool first_ = true;
  bool failed_ = false;
  absl::Status failure_;  // why the call ended, once failed_
  bool finished_ = false;
  size_t batch_size_;
  SampleBatchBuilder builder_;
  uint64_t samples_sent_ = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_SAMPLE_STREAM_H_
