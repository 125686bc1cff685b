// What k6 users expect from k6's own remote-write output, checked in a real Prometheus: static
// labels and the test-run label's name (Grafana's k6 dashboards filter on `testid`), "*" for
// every metric, and a selector entry that can no longer hide a default metric.
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Tags = std::vector<std::pair<std::string, std::string>>;

class ParityTest : public ::testing::Test {
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

  v1::StartExportRequest Request(const std::string& run) {
    v1::StartExportRequest request;
    request.set_test_run_id(run);
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(prometheus_->remote_write_url());
    target->set_resample_rate(1);
    return request;
  }

  v1::StartExportResponse Start(const v1::StartExportRequest& request) {
    absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? *started : v1::StartExportResponse();
  }

  // Streams `add`'s samples into `id`, stops the export and checks that all was delivered.
  template <class Add>
  void StreamAndStop(const std::string& id, Add add) {
    SampleStream stream(stub_.get(), id);
    add(stream, absl::ToUnixNanos(absl::Now() - absl::Seconds(5)));
    absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->rejected(), 0u);
    absl::StatusOr<v1::StopExportResponse> stopped = StopExportRpc(*stub_, id);
    ASSERT_TRUE(stopped.ok()) << stopped.status();
    ASSERT_EQ(stopped->targets_size(), 1);
    EXPECT_EQ(stopped->targets(0).points_dropped(), 0u);
    EXPECT_GT(stopped->targets(0).points_sent(), 0u);
  }

  std::vector<QueryResult> Query(const std::string& promql) {
    absl::StatusOr<std::vector<QueryResult>> result =
        prometheus_->Query(promql, absl::Now() + absl::Minutes(1));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : std::vector<QueryResult>();
  }

  double QueryOne(const std::string& promql) {
    const std::vector<QueryResult> result = Query(promql);
    EXPECT_EQ(result.size(), 1u) << promql;
    return result.empty() ? std::nan("") : result.front().value;
  }

  // The names of the series stored for `selector`.
  std::set<std::string> Names(const std::string& selector) {
    std::set<std::string> names;
    for (const QueryResult& r : Query(selector)) names.insert(r.labels.at("__name__"));
    return names;
  }

  static PrometheusServer* prometheus_;
  TestServer server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

PrometheusServer* ParityTest::prometheus_ = nullptr;

// Items 1 and 7: static labels on every series, the run id under `testid`.
TEST_F(ParityTest, StaticLabelsAndTheTestidLabelOfGrafanasK6Dashboards) {
  const std::string run = "parity-labels";
  v1::StartExportRequest request = Request(run);
  v1::Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  target->set_include_test_run_id(true);
  target->set_test_run_id_label("testid");
  (*target->mutable_labels())["env"] = "staging";
  (*target->mutable_labels())["team"] = "checkout";
  v1::MetricEntry* reqs = target->add_metrics();
  reqs->set_source_metric("http_reqs");
  reqs->add_keep_tags("name");
  target->add_metrics()->set_source_metric("vus");
  const std::string id = Start(request).export_id();
  ASSERT_FALSE(id.empty());

  StreamAndStop(id, [](SampleStream& s, int64_t t) {
    for (int i = 0; i < 3; ++i) s.Add("http_reqs", Tags{{"name", "home"}}, t + i, 1);
    for (int i = 0; i < 2; ++i) s.Add("http_reqs", Tags{{"name", "login"}}, t + i, 1);
    s.Add("vus", {}, t, 7);
  });

  const std::vector<QueryResult> reqs_stored =
      Query(absl::StrCat("k6_http_reqs_total{testid=\"", run, "\"}"));
  ASSERT_EQ(reqs_stored.size(), 2u);
  for (const QueryResult& r : reqs_stored) {
    EXPECT_EQ(r.labels, (PromLabels{{"__name__", "k6_http_reqs_total"},
                                    {"env", "staging"},
                                    {"name", r.labels.at("name")},
                                    {"team", "checkout"},
                                    {"testid", run}}));
    EXPECT_EQ(r.value, r.labels.at("name") == "home" ? 3 : 2);
  }
  // A query as Grafana's k6 dashboards write it.
  EXPECT_EQ(QueryOne(absl::StrCat("sum(k6_http_reqs_total{testid=~\"", run, "\"})")), 5);
  EXPECT_EQ(
      QueryOne(absl::StrCat("k6_vus{testid=\"", run, "\",env=\"staging\",team=\"checkout\"}")), 7);
  EXPECT_THAT(Query(absl::StrCat("{test_run_id=\"", run, "\"}")), IsEmpty());
}

// Item 2: "*" exports every metric the test sends, built-in and declared, with the per-type
// naming, beside entries that keep tags or rename.
TEST_F(ParityTest, StarExportsEveryMetricOfTheTest) {
  const std::string run = "parity-star";
  v1::StartExportRequest request = Request(run);
  v1::Target* target = request.mutable_targets(0);
  target->set_include_test_run_id(true);
  target->add_metrics()->set_source_metric("*");
  v1::MetricEntry* duration = target->add_metrics();
  duration->set_source_metric("http_req_duration");
  duration->add_keep_tags("name");
  v1::MetricEntry* checks = target->add_metrics();
  checks->set_source_metric("checks");
  checks->set_target_metric("login_checks");
  const v1::StartExportResponse started = Start(request);
  ASSERT_EQ(started.targets_size(), 1);
  EXPECT_THAT(started.targets(0).exported_metrics(),
              ElementsAre("*", "http_req_duration", "checks"));
  EXPECT_THAT(started.targets(0).skipped_metrics(), IsEmpty());

  StreamAndStop(started.export_id(), [](SampleStream& s, int64_t t) {
    s.Declare("cart_items", MetricType::kCounter, ValueKind::kDefault);
    s.Declare("queue_depth", MetricType::kGauge, ValueKind::kDefault);
    s.Declare("login_ok", MetricType::kRate, ValueKind::kDefault);
    s.Declare("think_time", MetricType::kTrend, ValueKind::kTime);
    s.Add("http_reqs", Tags{{"name", "home"}}, t, 1);
    s.Add("http_req_duration", Tags{{"name", "home"}}, t, 120);
    s.Add("vus", {}, t, 3);
    s.Add("checks", Tags{{"check", "ok"}}, t, 1);
    s.Add("checks", Tags{{"check", "ok"}}, t, 0);
    s.Add("cart_items", {}, t, 4);
    s.Add("cart_items", {}, t + 1, 5);
    s.Add("queue_depth", {}, t, 12);
    s.Add("login_ok", {}, t, 1);
    s.Add("think_time", {}, t, 1500);
  });

  const std::string sel = absl::StrCat("{test_run_id=\"", run, "\"}");
  std::set<std::string> names = Names(sel);
  EXPECT_EQ(names, (std::set<std::string>{"k6_cart_items_total",      "k6_checks_rate",
                                          "k6_http_req_duration_avg", "k6_http_req_duration_count",
                                          "k6_http_req_duration_max", "k6_http_req_duration_med",
                                          "k6_http_req_duration_min", "k6_http_req_duration_p90",
                                          "k6_http_req_duration_p95", "k6_http_req_duration_p99",
                                          "k6_http_reqs_total",       "k6_login_ok_rate",
                                          "k6_queue_depth",           "k6_think_time_avg",
                                          "k6_think_time_count",      "k6_think_time_max",
                                          "k6_think_time_med",        "k6_think_time_min",
                                          "k6_think_time_p90",        "k6_think_time_p95",
                                          "k6_think_time_p99",        "k6_vus",
                                          "login_checks_rate"}));
  EXPECT_EQ(QueryOne("k6_cart_items_total" + sel), 9);
  EXPECT_EQ(QueryOne("k6_queue_depth" + sel), 12);
  EXPECT_EQ(QueryOne("k6_checks_rate" + sel), 0.5);
  EXPECT_EQ(QueryOne("login_checks_rate" + sel), 0.5);
  EXPECT_EQ(QueryOne("k6_think_time_max" + sel), 1.5);
  // http_req_duration came from the entry keeping `name`, not from "*" (no unlabelled copy).
  const std::vector<QueryResult> duration_count =
      Query(absl::StrCat("k6_http_req_duration_count", sel));
  ASSERT_EQ(duration_count.size(), 1u);
  EXPECT_EQ(duration_count[0].labels.at("name"), "home");
}

// Item 6: a selector entry without its own name is skipped (the default stays); with one it
// is exported beside the default; an entry exporting the same series replaces the default,
// and the answer says so.
TEST_F(ParityTest, ASelectorNoLongerHidesTheDefaultLatency) {
  const std::string run = "parity-selector";
  v1::StartExportRequest request = Request(run);
  v1::Target* target = request.mutable_targets(0);
  target->set_include_test_run_id(true);
  target->add_metrics()->set_source_metric("http_req_duration{status=\"500\"}");
  v1::MetricEntry* errors = target->add_metrics();
  errors->set_source_metric("http_req_duration{status=\"500\"}");
  errors->set_target_metric("k6_error_duration");
  const v1::StartExportResponse started = Start(request);
  ASSERT_EQ(started.targets_size(), 1);
  ASSERT_EQ(started.targets(0).skipped_metrics_size(), 1);
  EXPECT_THAT(started.targets(0).skipped_metrics(0).reason(), HasSubstr("set targetMetric"));
  EXPECT_THAT(started.targets(0).replaced_defaults(), IsEmpty());

  auto requests = [](SampleStream& s, int64_t t) {
    for (int i = 0; i < 3; ++i) s.Add("http_req_duration", Tags{{"status", "200"}}, t + i, 100);
    for (int i = 0; i < 2; ++i) s.Add("http_req_duration", Tags{{"status", "500"}}, t + i, 900);
  };
  StreamAndStop(started.export_id(), requests);
  const std::string sel = absl::StrCat("{test_run_id=\"", run, "\"}");
  EXPECT_EQ(QueryOne("sum_over_time(k6_http_req_duration_count" + sel + "[1h])"), 5);
  EXPECT_EQ(QueryOne("sum_over_time(k6_error_duration_count" + sel + "[1h])"), 2);
  EXPECT_EQ(QueryOne("max_over_time(k6_error_duration_min" + sel + "[1h])"), 0.9);

  // The same series with a tag kept replaces the default, and is listed as doing so.
  const std::string run2 = "parity-replaced";
  v1::StartExportRequest request2 = Request(run2);
  request2.mutable_targets(0)->set_include_test_run_id(true);
  v1::MetricEntry* by_status = request2.mutable_targets(0)->add_metrics();
  by_status->set_source_metric("http_req_duration");
  by_status->add_keep_tags("status");
  const v1::StartExportResponse started2 = Start(request2);
  ASSERT_EQ(started2.targets(0).replaced_defaults_size(), 1);
  EXPECT_EQ(started2.targets(0).replaced_defaults(0).metric(), "http_req_duration");
  EXPECT_EQ(started2.targets(0).replaced_defaults(0).entry(), "http_req_duration");
  StreamAndStop(started2.export_id(), requests);
  const std::vector<QueryResult> counts = Query(
      absl::StrCat("sum_over_time(k6_http_req_duration_count{test_run_id=\"", run2, "\"}[1h])"));
  ASSERT_EQ(counts.size(), 2u);
  for (const QueryResult& r : counts) {
    EXPECT_EQ(r.value, r.labels.at("status") == "200" ? 3 : 2);
  }
}

}  // namespace
}  // namespace rwexport
