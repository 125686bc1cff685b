// The whole path against a real Prometheus: gRPC API -> aggregation -> remote write ->
// Prometheus's TSDB -> PromQL. Prometheus is started by the test on a free loopback port.
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "lib/client/replay.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/test_server.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

class EndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<PrometheusServer*> prometheus = PrometheusServer::Shared();
    ASSERT_TRUE(prometheus.ok()) << prometheus.status();
    prometheus_ = *prometheus;
  }

  void SetUp() override {
    ASSERT_NE(prometheus_, nullptr);
    stub_ = server_.NewStub();
  }

  v1::StartExportRequest Request(const std::string& test_run_id) {
    v1::StartExportRequest request;
    request.set_test_run_id(test_run_id);
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(prometheus_->remote_write_url());
    target->set_include_test_run_id(true);
    return request;
  }

  std::string StartExport(const v1::StartExportRequest& request) {
    absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->export_id() : "";
  }

  v1::StopExportResponse StopExport(const std::string& id) {
    absl::StatusOr<v1::StopExportResponse> stopped = StopExportRpc(*stub_, id);
    EXPECT_TRUE(stopped.ok()) << stopped.status();
    return stopped.ok() ? *stopped : v1::StopExportResponse();
  }

  // The single value of an instant query, evaluated a minute ahead so the newest point is
  // in range whatever window it closed.
  double QueryOne(const std::string& promql) {
    absl::StatusOr<std::vector<QueryResult>> result =
        prometheus_->Query(promql, absl::Now() + absl::Minutes(1));
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return std::nan("");
    EXPECT_EQ(result->size(), 1u) << promql;
    return result->empty() ? std::nan("") : result->front().value;
  }

  static PrometheusServer* prometheus_;
  TestServer server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

PrometheusServer* EndToEndTest::prometheus_ = nullptr;

TEST_F(EndToEndTest, ReplayOfARealK6RunLandsInPrometheusExactly) {
  const std::string run = "finance-replay";
  const std::string id = StartExport(Request(run));
  ASSERT_FALSE(id.empty());

  absl::StatusOr<ReplayResult> replay =
      ReplayK6File(stub_.get(), id, K6TestdataFile("finance-run.json"), ReplayOptions());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->read.samples, 802);
  EXPECT_EQ(replay->read.errors, 0);
  EXPECT_EQ(replay->response.accepted(), 802u);
  EXPECT_EQ(replay->response.rejected(), 0u);

  const v1::StopExportResponse stopped = StopExport(id);
  EXPECT_EQ(stopped.samples_accepted(), 802u);
  ASSERT_EQ(stopped.targets_size(), 1);
  const v1::TargetFigures& figures = stopped.targets(0);
  EXPECT_EQ(figures.points_dropped(), 0u);
  EXPECT_EQ(figures.failures(), 0u);
  EXPECT_GT(figures.points_sent(), 0u);
  // Default metrics: data_sent, data_received, http_req_duration, http_reqs, iterations, vus.
  EXPECT_EQ(figures.series(), 6u);

  const std::string sel = absl::StrCat("{test_run_id=\"", run, "\"}");
  EXPECT_EQ(QueryOne("k6_http_reqs_total" + sel), 60);
  EXPECT_EQ(QueryOne("k6_iterations_total" + sel), 20);
  EXPECT_EQ(QueryOne("k6_data_received_total" + sel), 42039);
  EXPECT_EQ(QueryOne("k6_data_sent_total" + sel), 15980);
  EXPECT_EQ(QueryOne("k6_vus" + sel), 1);
  // Durations arrive in seconds: the run's extremes (8.657042 ms, 218.508 ms) and its 60
  // requests, summed over every window.
  EXPECT_DOUBLE_EQ(QueryOne("min_over_time(k6_http_req_duration_min" + sel + "[1h])"), 0.008657042);
  EXPECT_DOUBLE_EQ(QueryOne("max_over_time(k6_http_req_duration_max" + sel + "[1h])"), 0.218508);
  EXPECT_EQ(QueryOne("sum_over_time(k6_http_req_duration_count" + sel + "[1h])"), 60);
  for (const char* stat : {"avg", "med", "p90", "p95", "p99"}) {
    const double v =
        QueryOne(absl::StrCat("max_over_time(k6_http_req_duration_", stat, sel, "[1h])"));
    EXPECT_GE(v, 0.008657042) << stat;
    EXPECT_LE(v, 0.218508) << stat;
  }
  // What Prometheus holds is exactly what the figures say was sent: one point per window of
  // every series (8 trend statistics + 5 other series).
  absl::StatusOr<std::vector<QueryResult>> stored =
      prometheus_->Query(absl::StrCat("{__name__=~\"k6_.+\",test_run_id=\"", run, "\"}[1h]"),
                         absl::Now() + absl::Minutes(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->size(), figures.points_sent());
}

TEST_F(EndToEndTest, ManyStreamsIntoOneExport) {
  const std::string run = "four-agents";
  const std::string id = StartExport(Request(run));
  const absl::Time now = absl::Now();
  std::vector<std::thread> agents;
  std::vector<absl::Status> results(4);
  for (int i = 0; i < 4; ++i) {
    agents.emplace_back([&, i] {
      auto stub = server_.NewStub();
      ReplayOptions options;
      options.now = now;  // the four agents ran side by side
      options.batch_size = 50;
      absl::StatusOr<ReplayResult> r =
          ReplayK6File(stub.get(), id, K6TestdataFile("finance-run.json"), options);
      results[i] = r.status();
    });
  }
  for (std::thread& t : agents) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  const v1::StopExportResponse stopped = StopExport(id);
  EXPECT_EQ(stopped.samples_accepted(), 4u * 802);
  const std::string sel = absl::StrCat("{test_run_id=\"", run, "\"}");
  EXPECT_EQ(QueryOne("k6_http_reqs_total" + sel), 240);
  EXPECT_EQ(QueryOne("k6_data_received_total" + sel), 4 * 42039);
  EXPECT_EQ(QueryOne("sum_over_time(k6_http_req_duration_count" + sel + "[1h])"), 240);
}

// --- Errors at the API --------------------------------------------------------------------

struct BadConfig {
  const char* what;
  std::function<void(v1::StartExportRequest*)> mutate;
  const char* field;
};

class InvalidConfigTest : public EndToEndTest, public ::testing::WithParamInterface<BadConfig> {};

TEST_P(InvalidConfigTest, IsInvalidArgumentNamingTheField) {
  v1::StartExportRequest request = Request("bad");
  GetParam().mutate(&request);
  grpc::ClientContext context;
  v1::StartExportResponse response;
  grpc::Status status = stub_->StartExport(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << GetParam().what;
  EXPECT_THAT(status.error_message(), HasSubstr(GetParam().field)) << GetParam().what;
  EXPECT_EQ(server_.registry().size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, InvalidConfigTest,
    ::testing::Values(
        BadConfig{"wrong provider",
                  [](v1::StartExportRequest* r) { r->mutable_targets(0)->set_provider("datadog"); },
                  "targets[0].provider"},
        BadConfig{
            "missing URL",
            [](v1::StartExportRequest* r) { r->mutable_targets(0)->clear_remote_write_url(); },
            "targets[0].remoteWriteURL"},
        BadConfig{"malformed URL",
                  [](v1::StartExportRequest* r) {
                    r->mutable_targets(0)->set_remote_write_url("ftp://127.0.0.1/write");
                  },
                  "targets[0].remoteWriteURL"},
        BadConfig{"resampleRate 0",
                  [](v1::StartExportRequest* r) { r->mutable_targets(0)->set_resample_rate(0); },
                  "targets[0].resampleRate"},
        BadConfig{"resampleRate 11",
                  [](v1::StartExportRequest* r) { r->mutable_targets(0)->set_resample_rate(11); },
                  "targets[0].resampleRate"},
        BadConfig{"token and basic auth",
                  [](v1::StartExportRequest* r) {
                    v1::Credentials* c = r->mutable_targets(0)->mutable_credentials();
                    c->set_token("t");
                    c->set_username("u");
                    c->set_password("p");
                  },
                  "targets[0].credentials"},
        BadConfig{"bad selector",
                  [](v1::StartExportRequest* r) {
                    r->mutable_targets(0)->add_metrics()->set_source_metric(
                        "http_req_duration{status=~\"2(..\"}");
                  },
                  "targets[0].metrics[0].sourceMetric"},
        BadConfig{"no test run id", [](v1::StartExportRequest* r) { r->clear_test_run_id(); },
                  "testRunId"}),
    [](const ::testing::TestParamInfo<BadConfig>& info) {
      std::string name = info.param.what;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

TEST_F(EndToEndTest, BadMetricNameIsSkippedAndReported) {
  v1::StartExportRequest request = Request("skips");
  request.mutable_targets(0)->add_metrics()->set_source_metric("my-metric");
  request.mutable_targets(0)->add_metrics()->set_source_metric("my_metric");
  grpc::ClientContext context;
  v1::StartExportResponse response;
  ASSERT_TRUE(stub_->StartExport(&context, request, &response).ok());
  ASSERT_EQ(response.targets_size(), 1);
  ASSERT_EQ(response.targets(0).skipped_metrics_size(), 1);
  EXPECT_EQ(response.targets(0).skipped_metrics(0).entry(), "my-metric");
  EXPECT_THAT(response.targets(0).skipped_metrics(0).reason(), HasSubstr("name"));
  EXPECT_THAT(response.targets(0).exported_metrics(), ::testing::Contains("my_metric"));
  StopExport(response.export_id());
}

TEST_F(EndToEndTest, StreamingToAnUnknownExportIsNotFound) {
  SampleStream stream(stub_.get(), "no-such-export");
  stream.Add("vus", {}, absl::ToUnixNanos(absl::Now()), 1);
  absl::StatusOr<v1::StreamSamplesResponse> result = stream.Finish();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(), HasSubstr("no-such-export"));

  grpc::ClientContext context;
  v1::StopExportRequest stop;
  stop.set_export_id("no-such-export");
  v1::StopExportResponse response;
  EXPECT_EQ(stub_->StopExport(&context, stop, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(EndToEndTest, StreamWithoutExportIdIsInvalidArgument) {
  SampleStream stream(stub_.get(), "");
  stream.Add("vus", {}, absl::ToUnixNanos(absl::Now()), 1);
  absl::StatusOr<v1::StreamSamplesResponse> result = stream.Finish();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("export_id"));
}

}  // namespace
}  // namespace rwexport
