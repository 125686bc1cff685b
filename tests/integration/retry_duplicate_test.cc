// TEST ONLY, FIX PENDING (issue 13, item 6): a retried request that the target had already
// stored. Tagged `manual` in BUILD.bazel until the sender change lands (the first test fails
// today: the points are counted as dropped http_400 although they are stored).
//
// The target stores the first attempt and drops the connection before answering (here: the
// receiver records it and resets); the retry gets "400 out of order sample", which is what
// Prometheus answers for samples it holds already. Those points were delivered. The same
// answer to a first attempt is a real refusal and stays dropped http_400.
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

constexpr char kOutOfOrder[] = "out of order sample";

class RetryDuplicateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    ExportOptions options;
    options.sender_defaults.min_backoff = absl::Milliseconds(20);
    options.sender_defaults.max_backoff = absl::Milliseconds(100);
    server_ = std::make_unique<TestServer>(options);
    stub_ = server_->NewStub();
  }

  // One export of vus, one sample, stopped: the single point's figures.
  v1::TargetFigures ExportOnePoint() {
    v1::StartExportRequest request;
    request.set_test_run_id("retry");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    target->set_include_default_metrics(false);
    target->add_metrics()->set_source_metric("vus");
    absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
    EXPECT_TRUE(started.ok()) << started.status();
    SampleStream stream(stub_.get(), started->export_id());
    stream.Add("vus", {}, absl::ToUnixNanos(absl::Now()), 5);
    EXPECT_TRUE(stream.Finish().ok());
    absl::StatusOr<v1::StopExportResponse> stopped =
        StopExportRpc(*stub_, started->export_id(), absl::Seconds(10));
    EXPECT_TRUE(stopped.ok()) << stopped.status();
    return stopped.ok() && stopped->targets_size() == 1 ? stopped->targets(0) : v1::TargetFigures();
  }

  std::unique_ptr<FakeReceiver> receiver_;  // outlives the server, which delivers to it
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

TEST_F(RetryDuplicateTest, OutOfOrderAnswerToARetryCountsAsDelivered) {
  FakeResponse reset;
  reset.reset = true;
  receiver_->Push(reset);
  receiver_->Push(FakeResponse::WithStatus(400, kOutOfOrder));
  const v1::TargetFigures figures = ExportOnePoint();
  EXPECT_EQ(receiver_->RequestCount(), 2u);
  EXPECT_EQ(figures.points_sent(), 1u);
  EXPECT_EQ(figures.points_dropped(), 0u);
  EXPECT_TRUE(figures.dropped_by_reason().empty());
}

TEST_F(RetryDuplicateTest, OutOfOrderAnswerToAFirstAttemptIsARealRefusal) {
  receiver_->Push(FakeResponse::WithStatus(400, kOutOfOrder));
  const v1::TargetFigures figures = ExportOnePoint();
  EXPECT_EQ(receiver_->RequestCount(), 1u);
  EXPECT_EQ(figures.points_sent(), 0u);
  EXPECT_EQ(figures.points_dropped(), 1u);
  EXPECT_EQ(figures.dropped_by_reason().at("http_400"), 1u);
}

}  // namespace
}  // namespace rwexport
