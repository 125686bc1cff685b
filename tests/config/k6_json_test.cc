#include "lib/config/k6_json.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "lib/config/config.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using rwexport::v1::StartExportRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

StartExportRequest MustParse(absl::string_view json) {
  absl::StatusOr<StartExportRequest> request = ParseK6ApmJson(json, "run-1");
  EXPECT_TRUE(request.ok()) << request.status();
  return request.ok() ? *request : StartExportRequest();
}

// Asserts InvalidArgument whose message starts with `prefix` and contains `want`.
void ExpectError(absl::string_view json, absl::string_view prefix, absl::string_view want) {
  absl::StatusOr<StartExportRequest> request = ParseK6ApmJson(json, "run-1");
  ASSERT_FALSE(request.ok()) << json;
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  std::string message(request.status().message());
  EXPECT_THAT(message, StartsWith(std::string(prefix))) << message;
  EXPECT_THAT(message, HasSubstr(std::string(want))) << message;
}

// The example configuration of the k6 Cloud page (seed/k6-cloud-prometheus-remote-write.md),
// written as JSON: keys quoted, the "..." of the metric list dropped, comments kept.
constexpr absl::string_view kSeedExample = R"json({
  "ext": {
    "loadimpact": {
      "apm": [
        {
          "provider": "prometheus",
          "remoteWriteURL": "<Remote Write URL>", // This can include query-string parameters
          "credentials": {
            "token": "<token>" // Optional
          },
          "metrics": ["http_req_sending", "my_rate", "my_gauge"],
          "includeDefaultMetrics": true,
          "includeTestRunId": false
        }
      ]
    }
  }
})json";

TEST(K6JsonTest, SeedExampleParses) {
  StartExportRequest request = MustParse(kSeedExample);
  EXPECT_EQ(request.test_run_id(), "run-1");
  ASSERT_EQ(request.targets_size(), 1);
  const auto& target = request.targets(0);
  EXPECT_EQ(target.provider(), "prometheus");
  EXPECT_EQ(target.remote_write_url(), "<Remote Write URL>");
  EXPECT_EQ(target.credentials().token(), "<token>");
  ASSERT_EQ(target.metrics_size(), 3);
  EXPECT_EQ(target.metrics(0).source_metric(), "http_req_sending");
  EXPECT_EQ(target.metrics(1).source_metric(), "my_rate");
  EXPECT_EQ(target.metrics(2).source_metric(), "my_gauge");
  EXPECT_TRUE(target.has_include_default_metrics());
  EXPECT_TRUE(target.include_default_metrics());
  EXPECT_FALSE(target.include_test_run_id());
  EXPECT_FALSE(target.has_resample_rate());

  // The placeholder URL is not a URL; validation says so, naming the field.
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              StartsWith("targets[0].remoteWriteURL: must not contain spaces"));
}

TEST(K6JsonTest, SeedExampleWithARealUrlValidates) {
  std::string json(kSeedExample);
  json.replace(json.find("<Remote Write URL>"), 18,
               "https://prometheus.example.com/api/v1/write?tenant=t1");
  absl::StatusOr<ExportConfig> config = ValidateStartExport(MustParse(json));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->targets.size(), 1u);
  const TargetConfig& t = config->targets[0];
  EXPECT_EQ(t.bearer_token, "<token>");
  EXPECT_EQ(t.resample_rate_s, 3);
  EXPECT_FALSE(t.include_test_run_id);
  std::vector<std::string> entries;
  for (const OutputSpec& spec : t.outputs) entries.push_back(spec.entry);
  EXPECT_THAT(entries,
              ElementsAre("http_req_sending", "my_rate", "my_gauge", "data_sent", "data_received",
                          "http_req_duration", "http_reqs", "iterations", "vus"));
  EXPECT_TRUE(t.skipped.empty());
}

TEST(K6JsonTest, ThreeDocumentFormsAreEquivalent) {
  constexpr absl::string_view kBlock =
      R"({"provider": "prometheus", "remoteWriteURL": "http://127.0.0.1:9090/api/v1/write",
          "metrics": ["vus"], "resampleRate": 5})";
  StartExportRequest bare = MustParse(absl::StrCat("[", kBlock, "]"));
  StartExportRequest wrapped = MustParse(absl::StrCat(R"({"apm": [)", kBlock, "]}"));
  StartExportRequest options = MustParse(absl::StrCat(
      R"({"vus": 10, "duration": "1m", "thresholds": {"http_req_failed": ["rate<0.01"]},
          "ext": {"loadimpact": {"projectID": 123, "name": "x", "apm": [)",
      kBlock, "]}}}"));
  ASSERT_EQ(bare.targets_size(), 1);
  EXPECT_EQ(bare.targets(0).resample_rate(), 5u);
  EXPECT_TRUE(MessageDifferencer::Equals(bare, wrapped));
  EXPECT_TRUE(MessageDifferencer::Equals(bare, options));
}

TEST(K6JsonTest, MetricTypes) {
  StartExportRequest request = MustParse(R"({
    "apm": [{"provider": "prometheus", "remoteWriteURL": "http://127.0.0.1:9090/api/v1/write"}],
    "metricTypes": {"checkout_time": "trend:time", "orders": "Counter", "payload": "gauge:data"}
  })");
  ASSERT_EQ(request.metric_declarations_size(), 3);
  EXPECT_EQ(request.metric_declarations(0).name(), "checkout_time");
  EXPECT_EQ(request.metric_declarations(0).type(), v1::TREND);
  EXPECT_EQ(request.metric_declarations(0).kind(), v1::TIME);
  EXPECT_EQ(request.metric_declarations(1).type(), v1::COUNTER);
  EXPECT_EQ(request.metric_declarations(1).kind(), v1::DEFAULT);
  EXPECT_EQ(request.metric_declarations(2).kind(), v1::DATA);
  ExpectError(R"({"apm": [], "metricTypes": {"x": "histogram"}})", "metricTypes.x",
              "type \"histogram\" is not counter, gauge, rate or trend");
  ExpectError(R"({"apm": [], "metricTypes": {"x": "trend:ms"}})", "metricTypes.x",
              "kind \"ms\" is not default, time or data");
  ExpectError(R"({"apm": [], "metricTypes": ["x"]})", "metricTypes", "expected an object");
}

TEST(K6JsonTest, MetricTypesFlagSyntax) {
  absl::StatusOr<std::vector<v1::MetricDeclaration>> d =
      ParseMetricTypes("checkout_time:trend:time, orders:counter");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[0].name(), "checkout_time");
  EXPECT_EQ((*d)[1].name(), "orders");
  EXPECT_EQ((*d)[1].type(), v1::COUNTER);
  EXPECT_TRUE(ParseMetricTypes("").ok());
  EXPECT_EQ(ParseMetricTypes("orders").status().message(),
            "\"orders\": expected name:type or name:type:kind");
}

TEST(K6JsonTest, AllFields) {
  StartExportRequest request = MustParse(R"json([
    {
      "provider": "prometheus",
      "remoteWriteURL": "https://mimir.example.com/api/v1/push",
      "credentials": {"username": "alice", "password": "pw"},
      "metrics": [
        "checks",
        {"sourceMetric": "http_req_duration{status=~\"2..\"}", "targetMetric": "ok_duration",
         "keepTags": ["method", "name"]},
        {"sourceMetric": "vus"}
      ],
      "includeDefaultMetrics": false,
      "resampleRate": 1,
      "includeTestRunId": true,
      "headers": {"X-Scope-OrgID": "tenant-1", "X-Other": "v"},
      "tls": {"caFile": "/ca.pem", "certFile": "/c.pem", "keyFile": "/k.pem",
              "insecureSkipVerify": true},
      "timeoutMs": 2500,
      "trendStats": ["p(99.9)", "max"],
      "staleMarkers": true,
      "nativeHistograms": true
    },
    {"provider": "prometheus", "remoteWriteURL": "http://127.0.0.1:1/w"}
  ])json");
  ASSERT_EQ(request.targets_size(), 2);
  const auto& t = request.targets(0);
  EXPECT_EQ(t.credentials().username(), "alice");
  EXPECT_EQ(t.credentials().password(), "pw");
  ASSERT_EQ(t.metrics_size(), 3);
  EXPECT_EQ(t.metrics(0).source_metric(), "checks");
  EXPECT_EQ(t.metrics(1).source_metric(), R"(http_req_duration{status=~"2.."})");
  EXPECT_EQ(t.metrics(1).target_metric(), "ok_duration");
  EXPECT_THAT(t.metrics(1).keep_tags(), ElementsAre("method", "name"));
  EXPECT_EQ(t.metrics(2).source_metric(), "vus");
  EXPECT_TRUE(t.has_include_default_metrics());
  EXPECT_FALSE(t.include_default_metrics());
  EXPECT_EQ(t.resample_rate(), 1u);
  EXPECT_TRUE(t.include_test_run_id());
  EXPECT_THAT(t.headers(),
              UnorderedElementsAre(Pair("X-Scope-OrgID", "tenant-1"), Pair("X-Other", "v")));
  EXPECT_EQ(t.tls().ca_file(), "/ca.pem");
  EXPECT_EQ(t.tls().cert_file(), "/c.pem");
  EXPECT_EQ(t.tls().key_file(), "/k.pem");
  EXPECT_TRUE(t.tls().insecure_skip_verify());
  EXPECT_EQ(t.timeout_ms(), 2500u);
  EXPECT_THAT(t.trend_stats(), ElementsAre("p(99.9)", "max"));
  EXPECT_TRUE(t.stale_markers());
  EXPECT_TRUE(t.native_histograms());

  const auto& second = request.targets(1);
  EXPECT_FALSE(second.has_include_default_metrics());
  EXPECT_FALSE(second.has_resample_rate());
  EXPECT_FALSE(second.has_credentials());
  EXPECT_EQ(second.metrics_size(), 0);
}

TEST(K6JsonTest, NullMeansNotSet) {
  StartExportRequest request = MustParse(
      R"([{"provider": "prometheus", "remoteWriteURL": "http://127.0.0.1:1/w",
           "includeDefaultMetrics": null, "resampleRate": null, "credentials": null,
           "metrics": [{"sourceMetric": "vus", "targetMetric": null}]}])");
  ASSERT_EQ(request.targets_size(), 1);
  EXPECT_FALSE(request.targets(0).has_include_default_metrics());
  EXPECT_FALSE(request.targets(0).has_resample_rate());
  EXPECT_FALSE(request.targets(0).has_credentials());
  EXPECT_EQ(request.targets(0).metrics(0).target_metric(), "");
}

TEST(K6JsonTest, EmptyApmGivesNoTargets) {
  StartExportRequest request = MustParse("[]");
  EXPECT_EQ(request.targets_size(), 0);
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), StartsWith("targets: "));
}

TEST(K6JsonTest, UnknownFields) {
  ExpectError(R"([{"provider": "prometheus", "remoteWriteUrl": "http://x"}])",
              "apm[0].remoteWriteUrl: ", "unknown field (did you mean remoteWriteURL?)");
  ExpectError(R"([{"remote_write_url": "http://x"}])",
              "apm[0].remote_write_url: ", "did you mean remoteWriteURL?");
  ExpectError(R"([{"resample_rate": 3}])", "apm[0].resample_rate: ", "did you mean resampleRate?");
  ExpectError(R"([{"bogus": 1}])", "apm[0].bogus: ",
              "unknown field; expected one of: provider, remoteWriteURL, credentials");
  ExpectError(R"([{}, {"credentials": {"user": "a"}}])", "apm[1].credentials.user: ",
              "unknown field; expected one of: token, username, password");
  ExpectError(R"([{"metrics": [{"sourceMetric": "vus", "keep_tags": ["a"]}]}])",
              "apm[0].metrics[0].keep_tags: ", "did you mean keepTags?");
  ExpectError(R"([{"tls": {"CAFile": "/x"}}])", "apm[0].tls.CAFile: ", "did you mean caFile?");
  ExpectError(R"({"ext": {"loadimpact": {"apm": [{"Provider": "prometheus"}]}}})",
              "ext.loadimpact.apm[0].Provider: ", "did you mean provider?");
}

TEST(K6JsonTest, WrongTypes) {
  ExpectError(R"([{"provider": 1}])", "apm[0].provider: ", "expected a string, got 1");
  ExpectError(R"([{"remoteWriteURL": ["http://x"]}])",
              "apm[0].remoteWriteURL: ", "expected a string, got an array");
  ExpectError(R"([{"resampleRate": "3"}])",
              "apm[0].resampleRate: ", "expected an integer, got a string");
  ExpectError(R"([{"includeDefaultMetrics": "true"}])",
              "apm[0].includeDefaultMetrics: ", "expected true or false, got a string");
  ExpectError(R"([{"includeTestRunId": 1}])",
              "apm[0].includeTestRunId: ", "expected true or false, got 1");
  ExpectError(R"([{"metrics": "vus"}])", "apm[0].metrics: ", "expected an array, got a string");
  ExpectError(R"([{"metrics": ["vus", 42]}])",
              "apm[0].metrics[1]: ", "expected a metric name or an object, got 42");
  ExpectError(R"([{"metrics": [{"sourceMetric": "vus", "keepTags": "status"}]}])",
              "apm[0].metrics[0].keepTags: ", "expected an array of strings, got a string");
  ExpectError(R"([{"metrics": [{"sourceMetric": "vus", "keepTags": ["a", 1]}]}])",
              "apm[0].metrics[0].keepTags[1]: ", "expected a string, got 1");
  ExpectError(R"([{"credentials": "token"}])",
              "apm[0].credentials: ", "expected an object, got a string");
  ExpectError(R"([{"credentials": {"token": 123456}}])", "apm[0].credentials.token: ",
              "expected a string, got a number");  // A numeric secret is not echoed.
  ExpectError(R"([{"headers": {"X-A": 1}}])", "apm[0].headers[\"X-A\"]: ", "expected a string");
  ExpectError(R"([{"headers": ["X-A"]}])", "apm[0].headers: ", "expected an object of strings");
  ExpectError(R"([{"tls": {"insecureSkipVerify": "yes"}}])",
              "apm[0].tls.insecureSkipVerify: ", "expected true or false");
  ExpectError(R"j([{"trendStats": "p(95)"}])j",
              "apm[0].trendStats: ", "expected an array of strings");
  ExpectError(R"([{"staleMarkers": 0}])", "apm[0].staleMarkers: ", "expected true or false");
  ExpectError(R"([{"nativeHistograms": {}}])",
              "apm[0].nativeHistograms: ", "expected true or false, got an object");
  ExpectError(R"(["prometheus"])", "apm[0]: ", "expected an object, got a string");
}

TEST(K6JsonTest, Integers) {
  ExpectError(R"([{"resampleRate": 3.5}])",
              "apm[0].resampleRate: ", "expected an integer, got 3.5");
  ExpectError(R"([{"resampleRate": -1}])",
              "apm[0].resampleRate: ", "must be an integer from 1 to 10, got -1");
  ExpectError(R"([{"resampleRate": 4294967296}])",
              "apm[0].resampleRate: ", "must be an integer from 1 to 10, got 4294967296");
  ExpectError(R"([{"timeoutMs": -5}])", "apm[0].timeoutMs: ", "got -5");
}

TEST(K6JsonTest, IntegralFloatsAreIntegers) {
  StartExportRequest request = MustParse(R"([{"resampleRate": 3.0, "timeoutMs": 1e3}])");
  ASSERT_EQ(request.targets_size(), 1);
  EXPECT_EQ(request.targets(0).resample_rate(), 3u);
  EXPECT_EQ(request.targets(0).timeout_ms(), 1000u);
}

TEST(K6JsonTest, OutOfRangeIntegerIsCaughtByValidation) {
  StartExportRequest request = MustParse(
      R"([{"provider": "prometheus", "remoteWriteURL": "http://127.0.0.1:1/w",
           "resampleRate": 11}])");
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            "targets[0].resampleRate: must be an integer from 1 to 10, got 11");
}

TEST(K6JsonTest, InvalidJsonReportsPosition) {
  // The parser reports the last character it read: the offending token "x" spans columns
  // 20..22 of line 2.
  ExpectError("[{\"provider\": \"prometheus\",\n  \"remoteWriteURL\" \"x\"}]",
              "invalid JSON: parse error at line 2, column 22", "expected ':'");
  ExpectError("", "invalid JSON: ", "unexpected end of input");
  ExpectError("[{\"provider\": \"prometheus\"}", "invalid JSON: parse error at line 1", "");
}

// The two mistakes JavaScript habits bring: named, at their own line and column (1-based), not at
// the token after them where the parser gives up.
TEST(K6JsonTest, TrailingCommaAndSingleQuotesAreNamedWhereTheyAre) {
  ExpectError("[{\"provider\": \"prometheus\",\n  \"resampleRate\": 3,\n}]",
              "invalid JSON: parse error at line 2, column 20: trailing comma before '}' (JSON "
              "does not allow trailing commas; remove it)",
              "");
  ExpectError("[{\"metrics\": [\"vus\", \"checks\",  ]}]",
              "invalid JSON: parse error at line 1, column 30: trailing comma before ']'", "");
  // Comments between the comma and the bracket do not hide it.
  ExpectError("[{\"provider\": \"prometheus\", // last\n /* c */ }]",
              "invalid JSON: parse error at line 1, column 27: trailing comma before '}'", "");
  ExpectError("[{\"provider\": 'prometheus'}]",
              "invalid JSON: parse error at line 1, column 15: single-quoted string (JSON strings "
              "use double quotes: \"...\")",
              "");
  ExpectError("[\n  {'provider': \"prometheus\"}]",
              "invalid JSON: parse error at line 2, column 4: single-quoted string", "");
  // Commas and quotes inside strings and comments are not mistakes: the parser's own message.
  ExpectError("[{\"provider\": \"a,}'\" /* ,} ' */ \"x\"}]", "invalid JSON: parse error at line 1",
              "expected '}'");
}

TEST(K6JsonTest, DocumentShape) {
  ExpectError(R"("apm")", "expected the apm array", "got a string");
  ExpectError(R"({"vus": 10})", "no apm configuration", "ext.loadimpact.apm");
  ExpectError(R"({"ext": {"other": {}}})", "ext.loadimpact: ", "not found");
  ExpectError(R"({"ext": {"loadimpact": {"projectID": 1}}})", "ext.loadimpact.apm: ", "not found");
  ExpectError(R"({"ext": []})", "ext: ", "expected an object, got an array");
  ExpectError(R"({"apm": {"provider": "prometheus"}})",
              "apm: ", "expected an array, got an object");
}

}  // namespace
}  // namespace rwexport
