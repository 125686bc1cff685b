// The metrics listener's endpoints over real HTTP: /metrics from the collectables,
// /-/healthy, /-/ready following the callback, the page at /, 404 elsewhere.
#include "lib/metrics/http_server.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "tests/testing/http_get.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

class OneGauge : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::ClientMetric m;
    m.gauge.value = 42;
    m.label = {{"kind", "test"}};
    return {{"test_gauge", "A gauge.", prometheus::MetricType::Gauge, {m}}};
  }
};

TEST(MetricsHttpServerTest, Endpoints) {
  std::atomic<bool> ready{false};
  MetricsHttpServer::Handlers handlers;
  handlers.collectables = {std::make_shared<OneGauge>()};
  handlers.ready = [&ready] { return ready.load(); };
  handlers.page = [] { return std::string("<!DOCTYPE html><p>page</p>"); };
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start("127.0.0.1:0", std::move(handlers));
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  HttpAnswer metrics = HttpGet(port, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE test_gauge gauge\ntest_gauge{kind=\"test\"} 42\n"));

  EXPECT_EQ(HttpGet(port, "/-/healthy").status, 200);
  HttpAnswer not_ready = HttpGet(port, "/-/ready");
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(not_ready.body, "rwexport is not ready.\n");
  ready = true;
  HttpAnswer is_ready = HttpGet(port, "/-/ready");
  EXPECT_EQ(is_ready.status, 200);
  EXPECT_EQ(is_ready.body, "rwexport is Ready.\n");

  HttpAnswer page = HttpGet(port, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(page.body, "<!DOCTYPE html><p>page</p>");
  EXPECT_EQ(HttpGet(port, "/index.html").status, 404);
  EXPECT_EQ(HttpGet(port, "/-/nope").status, 404);
}

TEST(MetricsHttpServerTest, BusyPortIsAClearError) {
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> first =
      MetricsHttpServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> second =
      MetricsHttpServer::Start(absl::StrCat("127.0.0.1:", (*first)->port()), {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("--metrics_listen=127.0.0.1:"));
}

}  // namespace
}  // namespace rwexport
