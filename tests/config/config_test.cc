#include "lib/config/config.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/model/trend_stat.h"
#include "rwexport/v1/export.pb.h"
#include "tests/config/config_requests.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::StartsWith;

using rwexport::v1::MetricEntry;
using rwexport::v1::StartExportRequest;
using rwexport::v1::Target;

const std::vector<std::string> kDefaults = {"data_sent", "data_received", "http_req_duration",
                                            "http_reqs", "iterations",    "vus"};

// Asserts InvalidArgument whose message starts with `path` and contains `want`.
void ExpectError(const StartExportRequest& request, absl::string_view path,
                 absl::string_view want) {
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  ASSERT_FALSE(config.ok()) << "expected an error at " << path;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  std::string message(config.status().message());
  EXPECT_THAT(message, StartsWith(absl::StrCat(path, ": "))) << message;
  EXPECT_THAT(message, HasSubstr(std::string(want))) << message;
}

std::vector<std::string> Entries(const TargetConfig& target) {
  std::vector<std::string> out;
  for (const OutputSpec& spec : target.outputs) out.push_back(spec.entry);
  return out;
}

std::vector<std::string> BaseNames(const TargetConfig& target) {
  std::vector<std::string> out;
  for (const OutputSpec& spec : target.outputs) out.push_back(spec.base_name);
  return out;
}

std::vector<std::string> Suffixes(const TargetConfig& target) {
  std::vector<std::string> out;
  for (const TrendStat& stat : target.trend_stats) out.push_back(stat.suffix());
  return out;
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

std::string WriteTempFile(const std::string& name, const std::string& content) {
  std::string path = TempPath(name);
  std::ofstream(path) << content;
  return path;
}

// ---------------------------------------------------------------------------------------------
// Defaults

TEST(ConfigDefaultsTest, MinimalTarget) {
  absl::StatusOr<ExportConfig> config = ValidateStartExport(ValidRequest());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->test_run_id, "run-42");
  ASSERT_EQ(config->targets.size(), 1u);
  const TargetConfig& t = config->targets[0];
  EXPECT_EQ(t.url, "http://127.0.0.1:9090/api/v1/write");
  EXPECT_EQ(t.redacted_url, "http://127.0.0.1:9090/api/v1/write");
  EXPECT_EQ(t.bearer_token, "");
  EXPECT_EQ(t.username, "");
  EXPECT_EQ(t.password, "");
  EXPECT_TRUE(t.headers.empty());
  EXPECT_EQ(t.ca_file, "");
  EXPECT_FALSE(t.insecure_skip_verify);
  EXPECT_EQ(t.timeout, absl::Seconds(10));
  EXPECT_EQ(t.resample_rate_s, 3);
  EXPECT_FALSE(t.include_test_run_id);
  EXPECT_FALSE(t.stale_markers);
  EXPECT_FALSE(t.native_histograms);
  EXPECT_THAT(Suffixes(t), ElementsAre("min", "max", "avg", "med", "p90", "p95", "p99", "count"));
  EXPECT_EQ(Entries(t), kDefaults);
  EXPECT_THAT(BaseNames(t), ElementsAre("k6_data_sent", "k6_data_received", "k6_http_req_duration",
                                        "k6_http_reqs", "k6_iterations", "k6_vus"));
  for (const OutputSpec& spec : t.outputs) {
    EXPECT_EQ(spec.source_metric, spec.entry);
    EXPECT_EQ(spec.selector.metric(), spec.entry);
    EXPECT_FALSE(spec.selector.has_matchers());
    EXPECT_TRUE(spec.keep_tags.empty());
    EXPECT_TRUE(spec.keep_labels.empty());
  }
  EXPECT_TRUE(t.skipped.empty());
}

TEST(ConfigDefaultsTest, ExplicitValuesAreKept) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  target->set_resample_rate(7);
  target->set_timeout_ms(2500);
  target->set_include_test_run_id(true);
  target->set_stale_markers(true);
  target->set_native_histograms(true);
  target->set_include_default_metrics(false);
  AddMetric(target, "my_gauge");
  TargetConfig t = MustValidateTarget(request);
  EXPECT_EQ(t.resample_rate_s, 7);
  EXPECT_EQ(t.timeout, absl::Milliseconds(2500));
  EXPECT_TRUE(t.include_test_run_id);
  EXPECT_TRUE(t.stale_markers);
  EXPECT_TRUE(t.native_histograms);
  EXPECT_THAT(Entries(t), ElementsAre("my_gauge"));
}

TEST(ConfigDefaultsTest, SeveralTargetsAreIndependent) {
  StartExportRequest request = ValidRequest();
  Target* second = request.add_targets();
  second->set_provider("prometheus");
  second->set_remote_write_url("https://mimir.example.com/api/v1/push");
  second->set_resample_rate(1);
  second->set_include_default_metrics(false);
  AddMetric(second, "checks");
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->targets.size(), 2u);
  EXPECT_EQ(config->targets[0].resample_rate_s, 3);
  EXPECT_EQ(config->targets[0].outputs.size(), 6u);
  EXPECT_EQ(config->targets[1].resample_rate_s, 1);
  EXPECT_THAT(Entries(config->targets[1]), ElementsAre("checks"));
}

// ---------------------------------------------------------------------------------------------
// Request-level rules

TEST(ConfigRequestTest, TestRunId) {
  StartExportRequest request = ValidRequest();
  request.set_test_run_id("");
  ExpectError(request, "testRunId", "required");
  request.set_test_run_id(std::string(256, 'r'));
  EXPECT_TRUE(ValidateStartExport(request).ok());
  request.set_test_run_id(std::string(257, 'r'));
  ExpectError(request, "testRunId", "must be at most 256 characters, got 257");
}

TEST(ConfigRequestTest, TargetCount) {
  StartExportRequest request = ValidRequest();
  request.clear_targets();
  ExpectError(request, "targets", "at least one target is required");
  request = ValidRequest();
  for (int i = 1; i < 32; ++i) *request.add_targets() = request.targets(0);
  EXPECT_TRUE(ValidateStartExport(request).ok());
  *request.add_targets() = request.targets(0);
  ExpectError(request, "targets", "at most 32 targets, got 33");
}

TEST(ConfigRequestTest, MetricDeclarations) {
  StartExportRequest request = ValidRequest();
  auto declare = [&request](const std::string& name, v1::MetricType type, v1::ValueKind kind) {
    v1::MetricDeclaration* d = request.add_metric_declarations();
    d->set_name(name);
    d->set_type(type);
    d->set_kind(kind);
  };
  declare("checkout_time", v1::TREND, v1::TIME);
  declare("orders", v1::COUNTER, v1::DEFAULT);
  declare("http_reqs", v1::COUNTER, v1::DEFAULT);  // built in, same type: fine
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->metric_declarations.size(), 3u);
  EXPECT_EQ(config->metric_declarations[0].first, "checkout_time");
  EXPECT_TRUE(
      (config->metric_declarations[0].second == MetricInfo{MetricType::kTrend, ValueKind::kTime}));
  declare("vus", v1::TREND, v1::DEFAULT);
  ExpectError(request, "metricDeclarations[3]", "\"vus\" is k6's built-in gauge, not a trend");
  request.mutable_metric_declarations()->RemoveLast();
  declare("bad-name", v1::GAUGE, v1::DEFAULT);
  ExpectError(request, "metricDeclarations[3]", "\"bad-name\" is not a valid metric name");
  request.mutable_metric_declarations()->RemoveLast();
  declare("untyped", v1::METRIC_TYPE_UNSPECIFIED, v1::DEFAULT);
  ExpectError(request, "metricDeclarations[3]", "type must be counter, gauge, rate or trend");
}

TEST(ConfigRequestTest, ErrorNamesTheTargetIndex) {
  StartExportRequest request = ValidRequest();
  *request.add_targets() = request.targets(0);
  request.mutable_targets(1)->set_resample_rate(11);
  ExpectError(request, "targets[1].resampleRate", "must be an integer from 1 to 10, got 11");
}

TEST(ConfigTargetTest, Provider) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->set_provider("");
  ExpectError(request, "targets[0].provider", "required; expected \"prometheus\"");
  request.mutable_targets(0)->set_provider("datadog");
  ExpectError(request, "targets[0].provider",
              "unsupported provider \"datadog\"; expected \"prometheus\"");
  request.mutable_targets(0)->set_provider("Prometheus");
  EXPECT_TRUE(ValidateStartExport(request).ok());
  request.mutable_targets(0)->set_provider("PROMETHEUS");
  EXPECT_TRUE(ValidateStartExport(request).ok());
}

TEST(ConfigTargetTest, ResampleRate) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->set_resample_rate(0);
  ExpectError(request, "targets[0].resampleRate", "must be an integer from 1 to 10, got 0");
  request.mutable_targets(0)->set_resample_rate(11);
  ExpectError(request, "targets[0].resampleRate", "must be an integer from 1 to 10, got 11");
  request.mutable_targets(0)->set_resample_rate(1);
  EXPECT_EQ(MustValidateTarget(request).resample_rate_s, 1);
  request.mutable_targets(0)->set_resample_rate(10);
  EXPECT_EQ(MustValidateTarget(request).resample_rate_s, 10);
}

TEST(ConfigTargetTest, Timeout) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->set_timeout_ms(1);
  EXPECT_EQ(MustValidateTarget(request).timeout, absl::Milliseconds(1));
  request.mutable_targets(0)->set_timeout_ms(600000);
  EXPECT_EQ(MustValidateTarget(request).timeout, absl::Minutes(10));
  request.mutable_targets(0)->set_timeout_ms(600001);
  ExpectError(request, "targets[0].timeoutMs", "must be from 1 to 600000");
  ExpectError(request, "targets[0].timeoutMs", "got 600001");
}

// ---------------------------------------------------------------------------------------------
// remoteWriteURL

void ExpectUrlError(const std::string& url, absl::string_view want) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->set_remote_write_url(url);
  SCOPED_TRACE(url);
  ExpectError(request, "targets[0].remoteWriteURL", want);
}

void ExpectUrlOk(const std::string& url) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->set_remote_write_url(url);
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  EXPECT_TRUE(config.ok()) << url << ": " << config.status();
}

TEST(ConfigUrlTest, Invalid) {
  ExpectUrlError("", "required");
  ExpectUrlError("127.0.0.1:9090/api/v1/write", "must start with http:// or https://");
  ExpectUrlError("ftp://example.com/write", "unsupported scheme \"ftp\"");
  ExpectUrlError("http:///api/v1/write", "missing host");
  ExpectUrlError("http://user:pw@/write", "missing host");
  ExpectUrlError("http://example.com:0/write", "invalid port \"0\"");
  ExpectUrlError("http://example.com:65536/write", "invalid port \"65536\"");
  ExpectUrlError("http://example.com:/write", "invalid port \"\"");
  ExpectUrlError("http://example.com:90a/write", "invalid port \"90a\"");
  ExpectUrlError("http://exa mple.com/write", "must not contain spaces or control characters");
  ExpectUrlError("http://example.com/write\n", "must not contain spaces or control characters");
  ExpectUrlError("http://example.com/write#x", "must not contain a fragment");
  ExpectUrlError("http://exa<mple.com/", "invalid character \"<\" in the host");
  ExpectUrlError("http://[::1/write", "missing ']'");
  ExpectUrlError("http://[zz::1]/write", "invalid IPv6 address");
}

TEST(ConfigUrlTest, Valid) {
  ExpectUrlOk("http://localhost/api/v1/write");
  ExpectUrlOk("HTTPS://example.com");
  ExpectUrlOk("https://example.com:65535/api/v1/push?tenant=a&x=1");
  ExpectUrlOk("http://127.0.0.1:1/write");
  ExpectUrlOk("http://[::1]:9090/api/v1/write");
  ExpectUrlOk("https://user:secret@example.com/api/v1/write");
  ExpectUrlOk("https://example.com?token=abc");
}

TEST(ConfigUrlTest, RedactedUrlHidesSecrets) {
  EXPECT_EQ(RedactRemoteWriteUrl("https://alice:s3cret@example.com:8443/api/v1/write"),
            "https://alice:REDACTED@example.com:8443/api/v1/write");
  EXPECT_EQ(RedactRemoteWriteUrl("https://alice@example.com/w"), "https://alice@example.com/w");
  EXPECT_EQ(RedactRemoteWriteUrl(
                "https://example.com/w?tenant=a&token=abc&api_key=k&X-Secret=s&Password=p"),
            "https://example.com/w?tenant=REDACTED&token=REDACTED&api_key=REDACTED&"
            "X-Secret=REDACTED&Password=REDACTED");
  EXPECT_EQ(RedactRemoteWriteUrl("https://example.com?access_token=t"),
            "https://example.com?access_token=REDACTED");
  EXPECT_EQ(RedactRemoteWriteUrl("http://example.com/api/v1/write?orgId=1&flag"),
            "http://example.com/api/v1/write?orgId=REDACTED&flag");

  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->set_remote_write_url(
      "https://bob:hunter2@mimir.example.com/api/v1/push?X-Scope-OrgID=t1&auth_token=xyz");
  TargetConfig t = MustValidateTarget(request);
  EXPECT_EQ(t.url,
            "https://bob:hunter2@mimir.example.com/api/v1/push?X-Scope-OrgID=t1&auth_token=xyz");
  EXPECT_EQ(t.redacted_url,
            "https://bob:REDACTED@mimir.example.com/api/v1/"
            "push?X-Scope-OrgID=REDACTED&auth_token=REDACTED");
  EXPECT_THAT(t.redacted_url, Not(HasSubstr("hunter2")));
  EXPECT_THAT(t.redacted_url, Not(HasSubstr("xyz")));
}

// ---------------------------------------------------------------------------------------------
// Credentials

TEST(ConfigCredentialsTest, TokenOrBasic) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->mutable_credentials()->set_token("tok");
  TargetConfig t = MustValidateTarget(request);
  EXPECT_EQ(t.bearer_token, "tok");
  EXPECT_EQ(t.username, "");

  request = ValidRequest();
  request.mutable_targets(0)->mutable_credentials()->set_username("alice");
  request.mutable_targets(0)->mutable_credentials()->set_password("pw");
  t = MustValidateTarget(request);
  EXPECT_EQ(t.bearer_token, "");
  EXPECT_EQ(t.username, "alice");
  EXPECT_EQ(t.password, "pw");
}

// `credentials: {}` and `{"token": ""}` (the same request once in proto3) used to be taken as
// "no authentication", and a blank token was sent as "Bearer   ".
TEST(ConfigCredentialsTest, EmptyOrBlankCredentialsAreRefused) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->mutable_credentials();
  ExpectError(request, "targets[0].credentials", "empty: set token, or username and password");
  request.mutable_targets(0)->mutable_credentials()->set_token("");
  ExpectError(request, "targets[0].credentials", "empty");
  for (const std::string token : {" ", "   "}) {
    SCOPED_TRACE(absl::CHexEscape(token));
    request.mutable_targets(0)->mutable_credentials()->set_token(token);
    ExpectError(request, "targets[0].credentials.token", "blank");
  }
  request.mutable_targets(0)->mutable_credentials()->set_token(" tok");
  ExpectError(request, "targets[0].credentials.token", "must not begin or end with whitespace");
  request.mutable_targets(0)->mutable_credentials()->set_token("tok ");
  ExpectError(request, "targets[0].credentials.token", "must not begin or end with whitespace");
  request.mutable_targets(0)->mutable_credentials()->Clear();
  request.mutable_targets(0)->mutable_credentials()->set_username("  ");
  request.mutable_targets(0)->mutable_credentials()->set_password("pw");
  ExpectError(request, "targets[0].credentials.username", "blank");
  // The empty password was refused already; it still is.
  request.mutable_targets(0)->mutable_credentials()->set_username("alice");
  request.mutable_targets(0)->mutable_credentials()->set_password("");
  ExpectError(request, "targets[0].credentials.password", "required");
}

TEST(ConfigCredentialsTest, Errors) {
  StartExportRequest request = ValidRequest();
  auto* c = request.mutable_targets(0)->mutable_credentials();
  c->set_token("tok");
  c->set_username("alice");
  c->set_password("pw");
  ExpectError(request, "targets[0].credentials",
              "set either token or username and password, not both");
  c->clear_password();
  ExpectError(request, "targets[0].credentials", "not both");
  c->clear_username();
  c->set_password("pw");
  ExpectError(request, "targets[0].credentials", "not both");

  c->Clear();
  c->set_username("alice");
  ExpectError(request, "targets[0].credentials.password",
              "required when credentials.username is set");
  c->Clear();
  c->set_password("pw");
  ExpectError(request, "targets[0].credentials.username",
              "required when credentials.password is set");
  c->Clear();
  c->set_username("al:ice");
  c->set_password("pw");
  ExpectError(request, "targets[0].credentials.username", "must not contain ':'");
  c->Clear();
  c->set_token("tok\r\nX-Evil: 1");
  ExpectError(request, "targets[0].credentials.token", "must not contain control characters");

  request = ValidRequest();
  request.mutable_targets(0)->set_remote_write_url("https://u:p@example.com/w");
  request.mutable_targets(0)->mutable_credentials()->set_token("tok");
  ExpectError(request, "targets[0].credentials", "remoteWriteURL already carries user info");
}

TEST(ConfigCredentialsTest, SecretsAreNotEchoedInErrors) {
  StartExportRequest request = ValidRequest();
  auto* c = request.mutable_targets(0)->mutable_credentials();
  c->set_token("supersecret");
  c->set_username("alice");
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), Not(HasSubstr("supersecret")));
}

// ---------------------------------------------------------------------------------------------
// Headers

TEST(ConfigHeadersTest, ValidHeadersAreSortedByName) {
  StartExportRequest request = ValidRequest();
  auto* headers = request.mutable_targets(0)->mutable_headers();
  (*headers)["X-Scope-OrgID"] = "tenant-1";
  (*headers)["Accept"] = "*/*";
  (*headers)["x-custom_!#$%&'*+.^`|~"] = "ok";
  TargetConfig t = MustValidateTarget(request);
  EXPECT_THAT(t.headers, ElementsAre(Pair("Accept", "*/*"), Pair("X-Scope-OrgID", "tenant-1"),
                                     Pair("x-custom_!#$%&'*+.^`|~", "ok")));
}

TEST(ConfigHeadersTest, Errors) {
  auto expect = [](const std::string& name, const std::string& value, absl::string_view path,
                   absl::string_view want) {
    StartExportRequest request = ValidRequest();
    (*request.mutable_targets(0)->mutable_headers())[name] = value;
    SCOPED_TRACE(name);
    ExpectError(request, path, want);
  };
  expect("Bad Name", "v", "targets[0].headers[\"Bad Name\"]", "invalid header name");
  expect("X:Y", "v", "targets[0].headers[\"X:Y\"]", "invalid header name");
  expect("", "v", "targets[0].headers", "empty header name");
  expect("content-type", "text/plain", "targets[0].headers[\"content-type\"]", "cannot be set");
  expect("Content-Encoding", "gzip", "targets[0].headers[\"Content-Encoding\"]", "cannot be set");
  expect("x-prometheus-remote-write-version", "2.0",
         "targets[0].headers[\"x-prometheus-remote-write-version\"]", "cannot be set");
  expect("AUTHORIZATION", "Bearer x", "targets[0].headers[\"AUTHORIZATION\"]", "use credentials");
  expect("Content-Length", "1", "targets[0].headers[\"Content-Length\"]", "cannot be set");
  expect("host", "h", "targets[0].headers[\"host\"]", "cannot be set");
  expect("User-Agent", "me", "targets[0].headers[\"User-Agent\"]", "cannot be set");
  expect("X-A", "a\r\nInjected: 1", "targets[0].headers[\"X-A\"]",
         "value must not contain CR, LF or NUL");

  StartExportRequest request = ValidRequest();
  (*request.mutable_targets(0)->mutable_headers())["X-Tenant"] = "a";
  (*request.mutable_targets(0)->mutable_headers())["x-tenant"] = "b";
  ExpectError(request, "targets[0].headers[\"x-tenant\"]", "duplicate of header \"X-Tenant\"");
}

// ---------------------------------------------------------------------------------------------
// TLS

TEST(ConfigTlsTest, ReadableFilesAreAccepted) {
  std::string ca = WriteTempFile("ca.pem", "ca");
  std::string cert = WriteTempFile("cert.pem", "cert");
  std::string key = WriteTempFile("key.pem", "key");
  StartExportRequest request = ValidRequest();
  auto* tls = request.mutable_targets(0)->mutable_tls();
  tls->set_ca_file(ca);
  tls->set_cert_file(cert);
  tls->set_key_file(key);
  tls->set_insecure_skip_verify(true);
  TargetConfig t = MustValidateTarget(request);
  EXPECT_EQ(t.ca_file, ca);
  EXPECT_EQ(t.cert_file, cert);
  EXPECT_EQ(t.key_file, key);
  EXPECT_TRUE(t.insecure_skip_verify);
}

TEST(ConfigTlsTest, Errors) {
  std::string cert = WriteTempFile("cert2.pem", "cert");
  std::string missing = TempPath("no-such-file.pem");

  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->mutable_tls()->set_ca_file(missing);
  ExpectError(request, "targets[0].tls.caFile",
              absl::StrCat("cannot read \"", missing, "\": No such file or directory"));

  request = ValidRequest();
  request.mutable_targets(0)->mutable_tls()->set_ca_file(TempPath(""));
  ExpectError(request, "targets[0].tls.caFile", "is a directory");

  request = ValidRequest();
  request.mutable_targets(0)->mutable_tls()->set_cert_file(cert);
  ExpectError(request, "targets[0].tls.keyFile", "required when tls.certFile is set");

  request = ValidRequest();
  request.mutable_targets(0)->mutable_tls()->set_key_file(cert);
  ExpectError(request, "targets[0].tls.certFile", "required when tls.keyFile is set");

  request = ValidRequest();
  request.mutable_targets(0)->mutable_tls()->set_cert_file(cert);
  request.mutable_targets(0)->mutable_tls()->set_key_file(missing);
  ExpectError(request, "targets[0].tls.keyFile", "No such file or directory");
}

// ---------------------------------------------------------------------------------------------
// Trend statistics

TEST(ConfigTrendStatsTest, ParsedInOrderWithoutDuplicates) {
  StartExportRequest request = ValidRequest();
  for (const char* s : {"p(99.9)", "avg", "p(95)", "avg", "p(95.0)", "med", "count"}) {
    request.mutable_targets(0)->add_trend_stats(s);
  }
  TargetConfig t = MustValidateTarget(request);
  EXPECT_THAT(Suffixes(t), ElementsAre("p999", "avg", "p95", "med", "count"));
}

TEST(ConfigTrendStatsTest, InvalidEntryIsNamed) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->add_trend_stats("min");
  request.mutable_targets(0)->add_trend_stats("p(101)");
  ExpectError(request, "targets[0].trendStats[1]", "p(101)");
  request.mutable_targets(0)->set_trend_stats(1, "mean");
  ExpectError(request, "targets[0].trendStats[1]", "mean");
}

// ---------------------------------------------------------------------------------------------
// Metric entries

TEST(ConfigMetricsTest, UserEntriesFirstThenDefaults) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  AddMetric(target, "http_req_sending");
  AddMetric(target, "my_rate");
  AddMetric(target, "my_gauge");
  TargetConfig t = MustValidateTarget(request);
  std::vector<std::string> want = {"http_req_sending", "my_rate", "my_gauge"};
  want.insert(want.end(), kDefaults.begin(), kDefaults.end());
  EXPECT_EQ(Entries(t), want);
  EXPECT_EQ(t.outputs[1].base_name, "k6_my_rate");
  EXPECT_TRUE(t.skipped.empty());
}

TEST(ConfigMetricsTest, IncludeDefaultMetricsFalse) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->set_include_default_metrics(false);
  AddMetric(request.mutable_targets(0), "vus_max");
  EXPECT_THAT(Entries(MustValidateTarget(request)), ElementsAre("vus_max"));
}

// An export that can export nothing is refused instead of started.
TEST(ConfigMetricsTest, NothingToExportIsAnError) {
  StartExportRequest request = ValidRequest();
  request.mutable_targets(0)->set_include_default_metrics(false);
  ExpectError(request, "targets[0].metrics",
              "nothing to export: includeDefaultMetrics is false and no metric entry is given");
  AddMetric(request.mutable_targets(0), "my-metric");
  ExpectError(request, "targets[0].metrics",
              "nothing to export: includeDefaultMetrics is false and every metric entry was "
              "skipped (\"my-metric\": metric name \"my-metric\" does not follow");
  AddMetric(request.mutable_targets(0), "my_metric");
  EXPECT_THAT(Entries(MustValidateTarget(request)), ElementsAre("my_metric"));
  // With the defaults there is always something.
  request.mutable_targets(0)->clear_metrics();
  request.mutable_targets(0)->set_include_default_metrics(true);
  EXPECT_EQ(MustValidateTarget(request).outputs.size(), kDefaults.size());
}

TEST(ConfigMetricsTest, ExactDuplicatesAppearOnce) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  AddMetric(target, "checks", "", {"check", "group"});
  AddMetric(target, "checks", "", {"group", "check", "group"});  // Same set of tags.
  AddMetric(target, "vus");
  AddMetric(target, "vus");
  TargetConfig t = MustValidateTarget(request);
  EXPECT_THAT(Entries(t), ElementsAre("checks", "vus"));
  EXPECT_THAT(t.outputs[0].keep_tags, ElementsAre("check", "group"));
  EXPECT_TRUE(t.skipped.empty());
}

TEST(ConfigMetricsTest, UserEntryOfADefaultMetricReplacesTheDefault) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  AddMetric(target, "vus");                                // Exact duplicate of a default.
  AddMetric(target, "http_req_duration", "", {"status"});  // Same exported name.
  TargetConfig t = MustValidateTarget(request);
  EXPECT_THAT(Entries(t), ElementsAre("vus", "http_req_duration", "data_sent", "data_received",
                                      "http_reqs", "iterations"));
  EXPECT_THAT(t.outputs[1].keep_tags, ElementsAre("status"));
  EXPECT_TRUE(t.skipped.empty());
}

TEST(ConfigMetricsTest, SelectorAndTargetMetric) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  AddMetric(target, R"(http_req_duration{status=~"2..",method!="OPTIONS"})", "http_ok_duration");
  AddMetric(target, R"(http_req_duration{status=~"5.."})", "http_error_duration");
  TargetConfig t = MustValidateTarget(request);
  ASSERT_EQ(t.outputs.size(), 2u);
  EXPECT_EQ(t.outputs[0].entry, R"(http_req_duration{status=~"2..",method!="OPTIONS"})");
  EXPECT_EQ(t.outputs[0].source_metric, "http_req_duration");
  EXPECT_EQ(t.outputs[0].base_name, "http_ok_duration");
  EXPECT_EQ(t.outputs[1].base_name, "http_error_duration");
  std::vector<std::pair<std::string, std::string>> tags = {{"status", "200"}, {"method", "GET"}};
  EXPECT_TRUE(t.outputs[0].selector.Matches(tags));
  EXPECT_FALSE(t.outputs[1].selector.Matches(tags));
  EXPECT_TRUE(t.skipped.empty());
}

TEST(ConfigMetricsTest, BaseNameCollisionSkipsTheLaterEntry) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  AddMetric(target, R"(http_reqs{status="200"})", "k6_http_reqs");
  AddMetric(target, R"(http_reqs{status="500"})", "k6_http_reqs");
  AddMetric(target, "my_counter", "k6_http_reqs");
  TargetConfig t = MustValidateTarget(request);
  EXPECT_THAT(Entries(t), ElementsAre(R"(http_reqs{status="200"})"));
  ASSERT_EQ(t.skipped.size(), 2u);
  EXPECT_EQ(t.skipped[0].entry, R"(http_reqs{status="500"})");
  EXPECT_THAT(t.skipped[0].reason, HasSubstr("exported name \"k6_http_reqs\" is already used"));
  EXPECT_THAT(t.skipped[0].reason, HasSubstr("set targetMetric"));
  EXPECT_EQ(t.skipped[1].entry, "my_counter");
  EXPECT_THAT(t.skipped[1].reason, HasSubstr("set targetMetric"));
}

TEST(ConfigMetricsTest, NonConformingNamesAreSkippedNotErrors) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  AddMetric(target, "my-metric");
  AddMetric(target, "1st_metric");
  AddMetric(target, "good_metric", "bad.name");
  AddMetric(target, "");
  AddMetric(target, R"({status="200"})");
  AddMetric(target, "good_metric");
  TargetConfig t = MustValidateTarget(request);
  EXPECT_THAT(Entries(t), ElementsAre("good_metric"));
  ASSERT_EQ(t.skipped.size(), 5u);
  EXPECT_EQ(t.skipped[0].entry, "my-metric");
  EXPECT_THAT(t.skipped[0].reason,
              HasSubstr("metric name \"my-metric\" does not follow Prometheus naming rules"));
  EXPECT_EQ(t.skipped[1].entry, "1st_metric");
  EXPECT_THAT(t.skipped[1].reason, HasSubstr("does not follow Prometheus naming rules"));
  EXPECT_EQ(t.skipped[2].entry, "good_metric");
  EXPECT_THAT(t.skipped[2].reason,
              HasSubstr("targetMetric \"bad.name\" does not follow Prometheus naming rules"));
  EXPECT_EQ(t.skipped[3].entry, "");
  EXPECT_EQ(t.skipped[3].reason, "empty sourceMetric");
  EXPECT_EQ(t.skipped[4].entry, R"({status="200"})");
  EXPECT_THAT(t.skipped[4].reason, HasSubstr("no metric name"));
}

TEST(ConfigMetricsTest, BadSelectorFailsTheExport) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  AddMetric(target, "vus");
  AddMetric(target, "checks");
  AddMetric(target, R"(http_req_duration{status=~"2(.."})");
  ExpectError(request, "targets[0].metrics[2].sourceMetric",
              "invalid regex \"2(..\" for tag status: missing )");
  target->mutable_metrics(2)->set_source_metric(R"(http_req_duration{status=~"2..)");
  ExpectError(request, "targets[0].metrics[2].sourceMetric", "unterminated string at offset 26");
  target->mutable_metrics(2)->set_source_metric(R"(http_req_duration{status=="200"})");
  ExpectError(request, "targets[0].metrics[2].sourceMetric", "unknown operator");
}

TEST(ConfigMetricsTest, KeepTags) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  AddMetric(target, "http_req_duration", "",
            {"status", "tls.version", "expected_response", "status", "1st", "__meta"});
  TargetConfig t = MustValidateTarget(request);
  ASSERT_EQ(t.outputs.size(), 1u);
  EXPECT_THAT(t.outputs[0].keep_tags,
              ElementsAre("status", "tls.version", "expected_response", "1st", "__meta"));
  EXPECT_THAT(t.outputs[0].keep_labels,
              ElementsAre("status", "tls_version", "expected_response", "_1st", "_meta"));
}

TEST(ConfigMetricsTest, EmptyKeepTagIsAnError) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  AddMetric(target, "vus");
  AddMetric(target, "http_reqs", "", {"status", ""});
  ExpectError(request, "targets[0].metrics[1].keepTags[1]", "must not be empty");
}

TEST(ConfigMetricsTest, KeepTagLabelProblemsSkipTheEntry) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  target->set_include_test_run_id(true);
  AddMetric(target, "http_reqs", "", {"status", "test_run_id"});
  AddMetric(target, "checks", "", {"a.b", "a_b"});
  AddMetric(target, "vus", "", {"-"});  // Sanitised to "_", a valid label.
  AddMetric(target, "iterations", "", {"scenario"});
  TargetConfig t = MustValidateTarget(request);
  EXPECT_THAT(Entries(t), ElementsAre("vus", "iterations"));
  EXPECT_THAT(t.outputs[0].keep_labels, ElementsAre("_"));
  ASSERT_EQ(t.skipped.size(), 2u);
  EXPECT_EQ(t.skipped[0].entry, "http_reqs");
  EXPECT_THAT(t.skipped[0].reason, HasSubstr("keepTags \"test_run_id\""));
  EXPECT_THAT(t.skipped[0].reason, HasSubstr("includeTestRunId"));
  EXPECT_EQ(t.skipped[1].entry, "checks");
  EXPECT_THAT(t.skipped[1].reason, HasSubstr("keepTags \"a.b\" and \"a_b\" both become label "
                                             "\"a_b\""));
}

TEST(ConfigMetricsTest, TestRunIdTagIsFineWithoutIncludeTestRunId) {
  StartExportRequest request = ValidRequest();
  Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  AddMetric(target, "http_reqs", "", {"test_run_id"});
  TargetConfig t = MustValidateTarget(request);
  ASSERT_EQ(t.outputs.size(), 1u);
  EXPECT_THAT(t.outputs[0].keep_labels, ElementsAre("test_run_id"));
}

TEST(ConfigMetricsTest, TooManyEntries) {
  StartExportRequest request = ValidRequest();
  for (int i = 0; i < 1001; ++i) AddMetric(request.mutable_targets(0), absl::StrCat("m", i));
  ExpectError(request, "targets[0].metrics", "at most 1000 entries, got 1001");
}

// ---------------------------------------------------------------------------------------------
// Bounds: every name and value is bounded, and no error message grows with the request.

// Each case: a request one past a bound is refused at the right field; at the bound it passes.
TEST(ConfigBoundsTest, EveryNameAndValueIsBounded) {
  struct Case {
    std::string name;
    std::function<void(StartExportRequest*, size_t)> set;  // sets the value's size
    size_t max;
    std::string path;
  };
  auto target = [](StartExportRequest* r) { return r->mutable_targets(0); };
  const std::vector<Case> cases = {
      {"url",
       [&](StartExportRequest* r, size_t n) {
         const std::string base = "http://127.0.0.1:9090/w?x=";
         target(r)->set_remote_write_url(base + std::string(n - base.size(), 'a'));
       },
       kMaxUrlLength, "targets[0].remoteWriteURL"},
      {"sourceMetric",
       [&](StartExportRequest* r, size_t n) {
         AddMetric(target(r), "m" + std::string(n - 1, 'a'));
       },
       kMaxSourceMetricLength, "targets[0].metrics[0].sourceMetric"},
      {"targetMetric",
       [&](StartExportRequest* r, size_t n) {
         AddMetric(target(r), "vus", "t" + std::string(n - 1, 'a'));
       },
       kMaxNameLength, "targets[0].metrics[0].targetMetric"},
      {"keepTags name",
       [&](StartExportRequest* r, size_t n) {
         AddMetric(target(r), "vus", "", {std::string(n, 'a')});
       },
       kMaxNameLength, "targets[0].metrics[0].keepTags[0]"},
      {"keepTags count",
       [&](StartExportRequest* r, size_t n) {
         MetricEntry* e = AddMetric(target(r), "vus");
         for (size_t i = 0; i < n; ++i) e->add_keep_tags(absl::StrCat("t", i));
       },
       kMaxKeepTags, "targets[0].metrics[0].keepTags"},
      {"header name",
       [&](StartExportRequest* r, size_t n) {
         (*target(r)->mutable_headers())[std::string(n, 'X')] = "v";
       },
       kMaxNameLength, "targets[0].headers[\"XXXX"},
      {"header value",
       [&](StartExportRequest* r, size_t n) {
         (*target(r)->mutable_headers())["X-Scope-OrgID"] = std::string(n, 'v');
       },
       kMaxHeaderValueLength, "targets[0].headers[\"X-Scope-OrgID\"]"},
      {"header count",
       [&](StartExportRequest* r, size_t n) {
         for (size_t i = 0; i < n; ++i)
           (*target(r)->mutable_headers())[absl::StrCat("X-", i)] = "v";
       },
       kMaxHeaders, "targets[0].headers"},
      {"token",
       [&](StartExportRequest* r, size_t n) {
         target(r)->mutable_credentials()->set_token(std::string(n, 't'));
       },
       kMaxTokenLength, "targets[0].credentials.token"},
      {"username",
       [&](StartExportRequest* r, size_t n) {
         target(r)->mutable_credentials()->set_username(std::string(n, 'u'));
         target(r)->mutable_credentials()->set_password("pw");
       },
       kMaxNameLength, "targets[0].credentials.username"},
      {"password",
       [&](StartExportRequest* r, size_t n) {
         target(r)->mutable_credentials()->set_username("alice");
         target(r)->mutable_credentials()->set_password(std::string(n, 'p'));
       },
       kMaxPasswordLength, "targets[0].credentials.password"},
      {"trendStats count",
       [&](StartExportRequest* r, size_t n) {
         for (size_t i = 0; i < n; ++i) target(r)->add_trend_stats(absl::StrCat("p(", i + 1, ")"));
       },
       kMaxTrendStats, "targets[0].trendStats"},
      {"trendStats length",
       [&](StartExportRequest* r, size_t n) {
         target(r)->add_trend_stats("p(9" + std::string(n - 4, '9') + ")");
       },
       kMaxTrendStatLength, "targets[0].trendStats[0]"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    StartExportRequest request = ValidRequest();
    c.set(&request, c.max);
    absl::StatusOr<ExportConfig> at_bound = ValidateStartExport(request);
    // A value at its bound may still be refused for what it is (e.g. a 32-character trend
    // statistic that is no number), never for its size.
    if (!at_bound.ok()) {
      EXPECT_THAT(std::string(at_bound.status().message()), Not(HasSubstr("at most")));
    }
    request = ValidRequest();
    c.set(&request, c.max + 1);
    absl::StatusOr<ExportConfig> past = ValidateStartExport(request);
    ASSERT_FALSE(past.ok());
    EXPECT_EQ(past.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(past.status().message());
    EXPECT_THAT(message, StartsWith(c.path)) << message;
    EXPECT_THAT(message, HasSubstr(absl::StrCat("at most ", c.max))) << message;
    EXPECT_LT(message.size(), 300u) << message;
  }
}

// The hostile test's case: a 5,000,000-character metric name. Refused, with a short message.
TEST(ConfigBoundsTest, HugeValuesGiveShortErrors) {
  StartExportRequest request = ValidRequest();
  AddMetric(request.mutable_targets(0), std::string(5'000'000, 'm'));
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            "the configuration is 5000071 bytes encoded; at most 1048576");

  // Under the whole-request bound, a long value is named by its field, not echoed.
  request = ValidRequest();
  AddMetric(request.mutable_targets(0), std::string(500'000, 'm'));
  ExpectError(request, "targets[0].metrics[0].sourceMetric", "at most 1024 characters, got 500000");
  request = ValidRequest();
  request.mutable_targets(0)->set_provider(std::string(100'000, 'p'));
  config = ValidateStartExport(request);
  ASSERT_FALSE(config.ok());
  EXPECT_LT(config.status().message().size(), 300u) << config.status().message();
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("(100000 characters)"));
}

// Skipped entries are reported back; their reasons stay short too.
TEST(ConfigBoundsTest, SkipReasonsAreShort) {
  StartExportRequest request = ValidRequest();
  AddMetric(request.mutable_targets(0), std::string(1000, '-'));
  TargetConfig t = MustValidateTarget(request);
  ASSERT_EQ(t.skipped.size(), 1u);
  EXPECT_LT(t.skipped[0].reason.size(), 300u) << t.skipped[0].reason;
}

}  // namespace
}  // namespace rwexport
