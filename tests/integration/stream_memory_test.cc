// What compact streams keep per declared series, as the server counts it over its open streams
// (ExportStatus.stream_retained_bytes; issue 16: at most 200 bytes per declared series per
// stream), measured with two IngestSamples streams of the real server in-process.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/k6_declarations.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using Stream = grpc::ClientReaderWriter<v1::IngestRequest, v1::IngestAck>;

constexpr uint32_t kSeries = 10000;
constexpr uint32_t kBatch = 1000;  // compact samples per batch, as `rwexport bench` sends them
constexpr uint64_t kBatches = kSeries / kBatch;

// Batch `seq` (1-based) of stream `stream_id`: the first declares every series (http_reqs with
// k6's six tags, about 250 bytes each) and carries ids; each carries kBatch compact samples,
// together one per series.
v1::IngestRequest MakeRequest(const std::string& export_id, const std::string& stream_id,
                              uint64_t seq) {
  v1::IngestRequest request;
  request.set_sequence(seq);
  v1::SampleBatch* batch = request.mutable_batch();
  if (seq == 1) {
    request.set_export_id(export_id);
    request.set_stream_id(stream_id);
    for (uint32_t ref = 0; ref < kSeries; ++ref) AddK6Declaration(ref, batch);
  }
  const int64_t now = absl::ToUnixNanos(absl::Now());
  v1::CompactSamples* compact = batch->mutable_compact();
  for (uint32_t k = 0; k < kBatch; ++k) {
    compact->add_refs(static_cast<uint32_t>(seq - 1) * kBatch + k);
    compact->add_time_unix_nano_delta(k == 0 ? now : 0);
    compact->add_values(1);
  }
  return request;
}

// One open IngestSamples call that has sent every batch and had them all acknowledged.
struct OpenCall {
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream;
};

class StreamMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    TestServerOptions options;
    options.ingest.window = 4;  // an ack after every batch (one per quarter window)
    server_ = std::make_unique<TestServer>(options);
    stub_ = server_->NewStub();
    v1::StartExportRequest request;
    request.set_test_run_id("run-1");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    grpc::ClientContext context;
    v1::StartExportResponse response;
    ASSERT_TRUE(stub_->StartExport(&context, request, &response).ok());
    id_ = response.export_id();
  }

  // Opens a call, sends every batch and waits for their acknowledgement (an acknowledged
  // batch has been applied, and the stream's figure reported after it).
  void SendAll(OpenCall* call, const std::string& stream_id) {
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    call->stream = stub_->IngestSamples(&call->context);
    for (uint64_t seq = 1; seq <= kBatches; ++seq) {
      ASSERT_TRUE(call->stream->Write(MakeRequest(id_, stream_id, seq)));
    }
    v1::IngestAck ack;
    while (ack.acked_through() < kBatches) ASSERT_TRUE(call->stream->Read(&ack));
  }

  v1::ExportStatus Status() {
    grpc::ClientContext context;
    v1::GetExportRequest request;
    request.set_export_id(id_);
    v1::ExportStatus status;
    EXPECT_TRUE(stub_->GetExport(&context, request, &status).ok());
    return status;
  }

  std::unique_ptr<FakeReceiver> receiver_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
  std::string id_;
};

TEST_F(StreamMemoryTest, TwoStreamsKeepAtMost200BytesPerDeclaredSeriesEach) {
  OpenCall first, second;
  SendAll(&first, "agent-1");
  SendAll(&second, "agent-2");
  const v1::ExportStatus open = Status();
  EXPECT_EQ(open.active_streams(), 2u);
  EXPECT_EQ(open.samples_accepted(), 2 * kSeries);
  const double per_series = static_cast<double>(open.stream_retained_bytes()) / (2 * kSeries);
  RecordProperty("bytes_per_declared_series_per_stream", static_cast<int>(per_series));
  // A declared series' record and route (about 80 bytes); its tags are dropped once sampled.
  EXPECT_GE(per_series, 64);
  EXPECT_LE(per_series, 200);

  for (OpenCall* call : {&first, &second}) {
    ASSERT_TRUE(call->stream->WritesDone());
    v1::IngestAck ack;
    while (call->stream->Read(&ack)) {
    }
    ASSERT_TRUE(call->stream->Finish().ok());
  }
  // Streams that ended keep nothing (each uncounts itself as gRPC releases its call).
  v1::ExportStatus closed = Status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((closed.active_streams() > 0 || closed.stream_retained_bytes() > 0) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    closed = Status();
  }
  EXPECT_EQ(closed.active_streams(), 0u);
  EXPECT_EQ(closed.stream_retained_bytes(), 0u);
}

}  // namespace
}  // namespace rwexport
