// Delivery through the whole server when targets fail: a dead target next to a real
// Prometheus, and credentials as a receiver sees them.
#include <cmath>
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
#include "tests/testing/prometheus.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kWait = absl::Seconds(10);

ExportOptions FastOptions() {
  ExportOptions options;
  options.aggregator.lateness = absl::Milliseconds(300);
  options.sender_defaults.min_backoff = absl::Milliseconds(20);
  options.sender_defaults.max_backoff = absl::Milliseconds(200);
  return options;
}

v1::Target* AddTarget(v1::StartExportRequest* request, const std::string& url) {
  v1::Target* target = request->add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(url);
  target->set_resample_rate(1);
  target->set_include_test_run_id(true);
  target->set_include_default_metrics(false);
  target->add_metrics()->set_source_metric("http_reqs");
  target->add_metrics()->set_source_metric("vus");
  return target;
}

std::string StartExport(v1::ExportService::Stub* stub, const v1::StartExportRequest& request) {
  grpc::ClientContext context;
  v1::StartExportResponse response;
  const grpc::Status status = stub->StartExport(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.export_id();
}

v1::StopExportResponse StopExport(v1::ExportService::Stub* stub, const std::string& id,
                                  absl::Duration delivery_timeout) {
  grpc::ClientContext context;
  v1::StopExportRequest request;
  request.set_export_id(id);
  request.set_delivery_timeout_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(delivery_timeout)));
  v1::StopExportResponse response;
  const grpc::Status status = stub->StopExport(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

// A URL on 127.0.0.1 where nothing listens.
std::string DeadUrl() {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  EXPECT_TRUE(receiver.ok()) << receiver.status();
  if (!receiver.ok()) return "http://127.0.0.1:9/api/v1/write";
  (*receiver)->StopListening();
  return (*receiver)->Url();
}

TEST(DeliveryTest, DeadTargetDoesNotHoldBackALivePrometheus) {
  absl::StatusOr<PrometheusServer*> prometheus = PrometheusServer::Shared();
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  TestServer server(FastOptions());
  std::unique_ptr<v1::ExportService::Stub> stub = server.NewStub();
  const std::string run = "delivery-dead-and-live";
  v1::StartExportRequest request;
  request.set_test_run_id(run);
  AddTarget(&request, DeadUrl());
  AddTarget(&request, (*prometheus)->remote_write_url());
  const std::string id = StartExport(stub.get(), request);
  ASSERT_FALSE(id.empty());

  const std::string selector = absl::StrCat("{test_run_id=\"", run, "\"}");
  auto reqs_total = [&]() -> double {
    absl::StatusOr<std::vector<QueryResult>> result =
        (*prometheus)->Query("k6_http_reqs_total" + selector, absl::Now() + absl::Minutes(1));
    if (!result.ok() || result->size() != 1) return -1;
    return result->front().value;
  };
  // Four windows of real time, five requests each. After each, the live target has the new
  // total within a window and its lateness, while the dead target keeps failing.
  SampleStream stream(stub.get(), id, 100);
  for (int round = 1; round <= 4; ++round) {
    const int64_t now_ns = absl::ToUnixNanos(absl::Now());
    for (int i = 0; i < 5; ++i) stream.Add("http_reqs", {{"name", "home"}}, now_ns, 1);
    stream.Add("vus", {}, now_ns, round);
    ASSERT_TRUE(stream.Flush().ok());
    const absl::Time give_up = absl::Now() + kWait;
    while (reqs_total() != 5 * round && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(50));  // Prometheus tells nobody when it stored a sample
    }
    ASSERT_EQ(reqs_total(), 5 * round) << "window " << round << " late";
  }
  absl::StatusOr<v1::StreamSamplesResponse> streamed = stream.Finish();
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(streamed->accepted(), 24u);

  const absl::Time stop_start = absl::Now();
  const v1::StopExportResponse stopped = StopExport(stub.get(), id, absl::Milliseconds(500));
  EXPECT_LT(absl::Now() - stop_start, absl::Seconds(5));
  ASSERT_EQ(stopped.targets_size(), 2);
  const v1::TargetFigures& dead = stopped.targets(0);
  const v1::TargetFigures& live = stopped.targets(1);

  absl::StatusOr<std::vector<QueryResult>> stored =
      (*prometheus)
          ->Query(absl::StrCat("{__name__=~\"k6_.+\",test_run_id=\"", run, "\"}[1h]"),
                  absl::Now() + absl::Minutes(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(live.points_sent(), stored->size());
  EXPECT_EQ(live.points_dropped(), 0u);
  EXPECT_EQ(live.failures(), 0u);
  EXPECT_EQ(reqs_total(), 20);
  // Two series, one point per window each, at least the four windows streamed.
  EXPECT_GE(live.points_sent(), 8u);

  EXPECT_EQ(dead.points_sent(), 0u);
  EXPECT_EQ(dead.points_dropped(), live.points_sent());  // same series, same windows
  EXPECT_THAT(dead.dropped_by_reason(),
              UnorderedElementsAre(Pair("shutdown_timeout", live.points_sent())));
  EXPECT_GT(dead.failures(), 0u);
  EXPECT_GT(dead.retries(), 0u);
  EXPECT_THAT(dead.last_error(), ::testing::StartsWith("curl: "));
}

TEST(DeliveryTest, BearerTokenAndHeadersReachTheReceiverExactly) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  TestServer server(FastOptions());
  std::unique_ptr<v1::ExportService::Stub> stub = server.NewStub();
  v1::StartExportRequest request;
  request.set_test_run_id("bearer");
  v1::Target* target = AddTarget(&request, (*receiver)->Url("/api/v1/push?tenant=a"));
  target->mutable_credentials()->set_token("t0ken-abc.123_XYZ");
  (*target->mutable_headers())["X-Scope-OrgID"] = "tenant-7";
  const std::string id = StartExport(stub.get(), request);
  ASSERT_FALSE(id.empty());

  SampleStream stream(stub.get(), id);
  const int64_t now_ns = absl::ToUnixNanos(absl::Now());
  for (int i = 0; i < 3; ++i) stream.Add("http_reqs", {}, now_ns, 1);
  ASSERT_TRUE(stream.Finish().ok());
  const v1::StopExportResponse stopped = StopExport(stub.get(), id, kWait);

  ASSERT_EQ(stopped.targets_size(), 1);
  const v1::TargetFigures& figures = stopped.targets(0);
  const std::vector<ReceivedRequest> requests = (*receiver)->Requests();
  ASSERT_FALSE(requests.empty());
  uint64_t samples = 0;
  for (const ReceivedRequest& r : requests) {
    EXPECT_EQ(r.target, "/api/v1/push?tenant=a");
    EXPECT_EQ(r.Header("Authorization"), "Bearer t0ken-abc.123_XYZ");
    EXPECT_EQ(r.Header("X-Scope-OrgID"), "tenant-7");
    ASSERT_TRUE(r.decode_status.ok()) << r.decode_status;
    for (const auto& ts : r.write_request.timeseries()) samples += ts.samples_size();
  }
  EXPECT_EQ(figures.requests(), requests.size());
  EXPECT_EQ(figures.points_sent(), samples);
  EXPECT_EQ(figures.points_dropped(), 0u);
}

}  // namespace
}  // namespace rwexport
