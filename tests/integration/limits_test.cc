// Each limit hit: a clear status, and the other exports keep working.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
  }

  void StartServer(ExportOptions options, int max_message_bytes = 0) {
    server_ = std::make_unique<TestServer>(options, 2, max_message_bytes);
    stub_ = server_->NewStub();
  }

  grpc::Status Start(const std::string& run, std::string* id) {
    v1::StartExportRequest request;
    request.set_test_run_id(run);
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    target->set_include_test_run_id(true);
    target->set_resample_rate(1);
    grpc::ClientContext context;
    v1::StartExportResponse response;
    grpc::Status status = stub_->StartExport(&context, request, &response);
    *id = response.export_id();
    return status;
  }

  v1::StopExportResponse Stop(const std::string& id) {
    grpc::ClientContext context;
    v1::StopExportRequest request;
    request.set_export_id(id);
    v1::StopExportResponse response;
    EXPECT_TRUE(stub_->StopExport(&context, request, &response).ok());
    return response;
  }

  // Streams `n` http_reqs samples into `id` on a stream of its own.
  absl::StatusOr<v1::StreamSamplesResponse> Stream(const std::string& id, int n) {
    SampleStream stream(stub_.get(), id);
    const int64_t now = absl::ToUnixNanos(absl::Now());
    for (int i = 0; i < n; ++i) stream.Add("http_reqs", {}, now, 1);
    return stream.Finish();
  }

  std::unique_ptr<FakeReceiver> receiver_;  // outlives the server, which delivers to it
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

TEST_F(LimitsTest, MaxExports) {
  ExportOptions options;
  options.max_exports = 2;
  StartServer(options);
  std::string a, b, c;
  ASSERT_TRUE(Start("a", &a).ok());
  ASSERT_TRUE(Start("b", &b).ok());
  grpc::Status third = Start("c", &c);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.error_message(), HasSubstr("too many exports running (2)"));
  // The running exports are unaffected.
  absl::StatusOr<v1::StreamSamplesResponse> streamed = Stream(a, 10);
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(streamed->accepted(), 10u);
  EXPECT_EQ(Stop(a).samples_accepted(), 10u);
  // A slot is free again.
  EXPECT_TRUE(Start("c", &c).ok());
}

TEST_F(LimitsTest, MaxStreamsPerExport) {
  ExportOptions options;
  options.max_streams_per_export = 2;
  StartServer(options);
  std::string id, other;
  ASSERT_TRUE(Start("streams", &id).ok());
  ASSERT_TRUE(Start("other", &other).ok());
  const int64_t now = absl::ToUnixNanos(absl::Now());
  SampleStream first(stub_.get(), id), second(stub_.get(), id), third(stub_.get(), id);
  first.Add("http_reqs", {}, now, 1);
  second.Add("http_reqs", {}, now, 1);
  ASSERT_TRUE(first.Flush().ok());
  ASSERT_TRUE(second.Flush().ok());
  // Wait (bounded) until the server counts both streams.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  v1::ExportStatus status;
  do {
    grpc::ClientContext context;
    v1::GetExportRequest get;
    get.set_export_id(id);
    ASSERT_TRUE(stub_->GetExport(&context, get, &status).ok());
  } while (status.active_streams() < 2 && absl::Now() < deadline);
  ASSERT_EQ(status.active_streams(), 2u);

  third.Add("http_reqs", {}, now, 1);
  absl::StatusOr<v1::StreamSamplesResponse> refused = third.Finish();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("already has 2 streams"));
  // The open streams and other exports go on.
  ASSERT_TRUE(Stream(other, 3).ok());
  ASSERT_TRUE(first.Finish().ok());
  ASSERT_TRUE(second.Finish().ok());
  EXPECT_EQ(Stop(id).samples_accepted(), 2u);
  EXPECT_EQ(Stop(other).samples_accepted(), 3u);
}

TEST_F(LimitsTest, IdleExportIsStoppedAndItsDataDelivered) {
  ExportOptions options;
  options.idle_timeout = absl::Milliseconds(300);
  options.tick_interval = absl::Milliseconds(20);
  StartServer(options);
  std::string id;
  ASSERT_TRUE(Start("idle", &id).ok());
  ASSERT_TRUE(Stream(id, 7).ok());
  // Nobody streams or stops: the export stops itself with the same flush as StopExport.
  ASSERT_TRUE(receiver_->WaitForRequests(1, absl::Seconds(10)));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (server_->registry().size() > 0 && absl::Now() < deadline) {
    receiver_->WaitForRequests(receiver_->RequestCount() + 1, absl::Milliseconds(50));
  }
  EXPECT_EQ(server_->registry().size(), 0u);
  double total = 0;
  for (const ReceivedRequest& r : receiver_->Requests()) {
    for (const auto& ts : r.write_request.timeseries()) {
      for (const auto& label : ts.labels()) {
        if (label.name() == "__name__" && label.value() == "k6_http_reqs_total") {
          total = ts.samples(ts.samples_size() - 1).value();
        }
      }
    }
  }
  EXPECT_EQ(total, 7);
  grpc::ClientContext context;
  v1::GetExportRequest get;
  get.set_export_id(id);
  v1::ExportStatus status;
  EXPECT_EQ(stub_->GetExport(&context, get, &status).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(LimitsTest, OversizedMessageIsRefusedAndOthersGoOn) {
  StartServer(ExportOptions(), /*max_message_bytes=*/64 * 1024);
  std::string id;
  ASSERT_TRUE(Start("big", &id).ok());
  SampleStream big(stub_.get(), id, /*batch_size=*/100000);
  const int64_t now = absl::ToUnixNanos(absl::Now());
  const std::vector<std::pair<std::string, std::string>> tags = {{"url", std::string(200, 'u')}};
  for (int i = 0; i < 2000; ++i) big.Add("http_reqs", tags, now, 1);
  absl::StatusOr<v1::StreamSamplesResponse> refused = big.Finish();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  // The same export still takes batches of a reasonable size.
  absl::StatusOr<v1::StreamSamplesResponse> ok = Stream(id, 100);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(Stop(id).samples_accepted(), 100u);
}

TEST_F(LimitsTest, SeriesLimitRefusesNewSeriesAndKeepsExistingOnes) {
  ExportOptions options;
  options.aggregator.max_series_per_target = 3;
  StartServer(options);
  std::string id, other;
  v1::StartExportRequest request;
  request.set_test_run_id("cardinality");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(receiver_->Url());
  target->set_include_default_metrics(false);
  v1::MetricEntry* by_url = target->add_metrics();
  by_url->set_source_metric("http_reqs");
  by_url->add_keep_tags("url");
  grpc::ClientContext context;
  v1::StartExportResponse started;
  ASSERT_TRUE(stub_->StartExport(&context, request, &started).ok());
  id = started.export_id();
  ASSERT_TRUE(Start("other", &other).ok());

  SampleStream stream(stub_.get(), id);
  const int64_t now = absl::ToUnixNanos(absl::Now());
  for (int round = 0; round < 2; ++round) {
    for (int u = 0; u < 5; ++u) stream.Add("http_reqs", {{"url", absl::StrCat("/u", u)}}, now, 1);
  }
  absl::StatusOr<v1::StreamSamplesResponse> streamed = stream.Finish();
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  // Three URLs got a series; the samples of the other two are rejected, with the limit named.
  EXPECT_EQ(streamed->accepted(), 6u);
  EXPECT_EQ(streamed->rejected(), 4u);
  ASSERT_EQ(streamed->rejections_size(), 1);
  EXPECT_EQ(streamed->rejections(0).reason(), "series_limit");
  EXPECT_THAT(streamed->rejections(0).example(), HasSubstr("max_series_per_target"));

  // Other exports are unaffected.
  absl::StatusOr<v1::StreamSamplesResponse> elsewhere = Stream(other, 4);
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_EQ(elsewhere->accepted(), 4u);

  const v1::StopExportResponse stopped = Stop(id);
  ASSERT_EQ(stopped.targets_size(), 1);
  EXPECT_EQ(stopped.targets(0).series(), 3u);
  EXPECT_EQ(stopped.targets(0).series_refused(), 2u);
  EXPECT_EQ(stopped.samples_accepted(), 6u);
  EXPECT_EQ(stopped.samples_rejected(), 4u);
  EXPECT_EQ(Stop(other).samples_accepted(), 4u);
}

TEST_F(LimitsTest, SeriesLimitPerExportCountsEveryTarget) {
  ExportOptions options;
  options.aggregator.max_series_per_target = 0;  // no per-target limit
  options.aggregator.max_series_per_export = 4;
  StartServer(options);
  // Two targets, each exporting http_reqs by url: every url makes one series per target.
  v1::StartExportRequest request;
  request.set_test_run_id("export-cardinality");
  for (int t = 0; t < 2; ++t) {
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    target->set_include_default_metrics(false);
    v1::MetricEntry* by_url = target->add_metrics();
    by_url->set_source_metric("http_reqs");
    by_url->add_keep_tags("url");
  }
  grpc::ClientContext context;
  v1::StartExportResponse started;
  ASSERT_TRUE(stub_->StartExport(&context, request, &started).ok());

  SampleStream stream(stub_.get(), started.export_id());
  const int64_t now = absl::ToUnixNanos(absl::Now());
  for (int u = 0; u < 3; ++u) stream.Add("http_reqs", {{"url", absl::StrCat("/u", u)}}, now, 1);
  absl::StatusOr<v1::StreamSamplesResponse> streamed = stream.Finish();
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  // /u0 and /u1 get a series on both targets (4 in all); /u2 gets none and is rejected.
  EXPECT_EQ(streamed->accepted(), 2u);
  ASSERT_EQ(streamed->rejections_size(), 1);
  EXPECT_EQ(streamed->rejections(0).reason(), "series_limit");
  EXPECT_THAT(streamed->rejections(0).example(), HasSubstr("max_series_per_export"));
  const v1::StopExportResponse stopped = Stop(started.export_id());
  ASSERT_EQ(stopped.targets_size(), 2);
  EXPECT_EQ(stopped.targets(0).series() + stopped.targets(1).series(), 4u);
  EXPECT_EQ(stopped.targets(0).series_refused() + stopped.targets(1).series_refused(), 2u);
}

}  // namespace
}  // namespace rwexport
