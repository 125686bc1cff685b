#include "lib/model/metric.h"

#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;

MetricInfo Info(MetricType type, ValueKind kind) { return MetricInfo{type, kind}; }

TEST(BuiltinMetricTest, KnowsTheK6BuiltinsWithTheirTypeAndKind) {
  EXPECT_EQ(BuiltinMetric("http_req_duration"), Info(MetricType::kTrend, ValueKind::kTime));
  EXPECT_EQ(BuiltinMetric("iteration_duration"), Info(MetricType::kTrend, ValueKind::kTime));
  EXPECT_EQ(BuiltinMetric("data_sent"), Info(MetricType::kCounter, ValueKind::kData));
  EXPECT_EQ(BuiltinMetric("data_received"), Info(MetricType::kCounter, ValueKind::kData));
  EXPECT_EQ(BuiltinMetric("http_reqs"), Info(MetricType::kCounter, ValueKind::kDefault));
  EXPECT_EQ(BuiltinMetric("iterations"), Info(MetricType::kCounter, ValueKind::kDefault));
  EXPECT_EQ(BuiltinMetric("vus"), Info(MetricType::kGauge, ValueKind::kDefault));
  EXPECT_EQ(BuiltinMetric("vus_max"), Info(MetricType::kGauge, ValueKind::kDefault));
  EXPECT_EQ(BuiltinMetric("checks"), Info(MetricType::kRate, ValueKind::kDefault));
  EXPECT_EQ(BuiltinMetric("http_req_failed"), Info(MetricType::kRate, ValueKind::kDefault));
}

TEST(BuiltinMetricTest, UnknownNamesAreNotBuiltins) {
  EXPECT_EQ(BuiltinMetric("checkout_step_duration"), std::nullopt);
  EXPECT_EQ(BuiltinMetric(""), std::nullopt);
  // Names are case-sensitive and exact.
  EXPECT_EQ(BuiltinMetric("VUS"), std::nullopt);
  EXPECT_EQ(BuiltinMetric("http_req_duration "), std::nullopt);
  EXPECT_EQ(BuiltinMetric("k6_http_reqs_total"), std::nullopt);
}

TEST(DefaultMetricNamesTest, AreTheK6CloudDefaultsInExportOrder) {
  EXPECT_THAT(DefaultMetricNames(), ElementsAre("data_sent", "data_received", "http_req_duration",
                                                "http_reqs", "iterations", "vus"));
  // Every default is a builtin.
  for (const std::string& name : DefaultMetricNames()) {
    EXPECT_TRUE(BuiltinMetric(name).has_value()) << name;
  }
}

TEST(MetricTypeNameTest, RoundTrips) {
  for (MetricType type :
       {MetricType::kCounter, MetricType::kGauge, MetricType::kRate, MetricType::kTrend}) {
    EXPECT_EQ(ParseMetricType(MetricTypeName(type)), type);
  }
  EXPECT_EQ(MetricTypeName(MetricType::kTrend), "trend");
  EXPECT_EQ(ParseMetricType("Counter"), std::nullopt);
  EXPECT_EQ(ParseMetricType(""), std::nullopt);
  for (ValueKind kind : {ValueKind::kDefault, ValueKind::kTime, ValueKind::kData}) {
    EXPECT_EQ(ParseValueKind(ValueKindName(kind)), kind);
  }
  EXPECT_EQ(ValueKindName(ValueKind::kTime), "time");
  EXPECT_EQ(ParseValueKind("bytes"), std::nullopt);
}

TEST(IsValidMetricNameTest, FollowsPrometheusRules) {
  EXPECT_TRUE(IsValidMetricName("k6_http_reqs_total"));
  EXPECT_TRUE(IsValidMetricName("a"));
  EXPECT_TRUE(IsValidMetricName("_"));
  EXPECT_TRUE(IsValidMetricName(":"));
  EXPECT_TRUE(IsValidMetricName("__name"));
  EXPECT_TRUE(IsValidMetricName("job:http_reqs:rate5m"));
  EXPECT_TRUE(IsValidMetricName("A9"));

  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9lives"));
  EXPECT_FALSE(IsValidMetricName("my-metric"));
  EXPECT_FALSE(IsValidMetricName("my.metric"));
  EXPECT_FALSE(IsValidMetricName("my metric"));
  EXPECT_FALSE(IsValidMetricName("http_req_duration{status=\"200\"}"));
  EXPECT_FALSE(IsValidMetricName("caf\xc3\xa9"));  // non-ASCII
}

TEST(IsValidLabelNameTest, FollowsPrometheusRules) {
  EXPECT_TRUE(IsValidLabelName("status"));
  EXPECT_TRUE(IsValidLabelName("_"));
  EXPECT_TRUE(IsValidLabelName("_x"));
  EXPECT_TRUE(IsValidLabelName("expected_response"));
  EXPECT_TRUE(IsValidLabelName("Z9_"));

  EXPECT_FALSE(IsValidLabelName(""));
  EXPECT_FALSE(IsValidLabelName("__"));        // reserved prefix
  EXPECT_FALSE(IsValidLabelName("__name__"));  // reserved
  EXPECT_FALSE(IsValidLabelName("1abc"));
  EXPECT_FALSE(IsValidLabelName("a:b"));  // colons are for metric names only
  EXPECT_FALSE(IsValidLabelName("expected-response"));
  EXPECT_FALSE(IsValidLabelName("a.b"));
}

TEST(SanitizeLabelNameTest, TurnsK6TagsIntoLabelNames) {
  EXPECT_EQ(SanitizeLabelName("expected-response"), "expected_response");
  EXPECT_EQ(SanitizeLabelName("1abc"), "_1abc");
  EXPECT_EQ(SanitizeLabelName("__x"), "_x");
  EXPECT_EQ(SanitizeLabelName("a.b"), "a_b");
  EXPECT_EQ(SanitizeLabelName("status"), "status");
  EXPECT_EQ(SanitizeLabelName(""), "");
  EXPECT_EQ(SanitizeLabelName("a b:c"), "a_b_c");
  EXPECT_EQ(SanitizeLabelName("___x"), "_x");
}

TEST(SanitizeLabelNameTest, ResultIsAlwaysValid) {
  for (const char* tag : {"expected-response", "1abc", "__x", "a.b", "-", "--", ".x", "9", "_",
                          "__", "x__y", "caf\xc3\xa9"}) {
    const std::string sanitized = SanitizeLabelName(tag);
    EXPECT_TRUE(IsValidLabelName(sanitized)) << "\"" << tag << "\" -> \"" << sanitized << "\"";
  }
}

}  // namespace
}  // namespace rwexport
