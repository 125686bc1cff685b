// The apm configuration read from a k6 script as k6 users write it (the k6 Cloud page's
// example, with real values): unquoted keys, single quotes, trailing commas, comments,
// __ENV.NAME; other expressions reported with their line where the configuration needs them.
#include "lib/config/k6_script.h"

#include <map>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/config/config.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// The k6 Cloud documentation's example script, filled in, with what k6 scripts also carry.
constexpr char kScript[] = R"JS(import http from 'k6/http';
import { check, sleep } from "k6";

const BASE = __ENV.BASE_URL || 'https://test.k6.io';

export let options = {
  vus: Number(__ENV.VUS) || 10,          // not evaluable, and not needed
  stages: [{ duration: '30s', target: 20, }, { duration: `1m`, target: 0 }],
  thresholds: { http_req_duration: ['p(95)<500'], },
  ext: {
    loadimpact: {
      projectID: 3356643,
      apm: [
        {
          provider: "prometheus",
          remoteWriteURL: 'http://127.0.0.1:9090/api/v1/write?tenant=a', // This can include query-string parameters
          credentials: {
            token: __ENV.RW_TOKEN, // Optional
          },
          /* custom metrics
             declared below */
          metrics: ["http_req_sending", 'my_rate', "my_gauge",
                    { sourceMetric: 'http_req_duration{status="500"}', targetMetric: 'k6_errors_duration', keepTags: ['name',], },],
          includeDefaultMetrics: true,
          includeTestRunId: false,
          resampleRate: 0x5,
          labels: { env: __ENV["TEST_ENV"], team: 'checkout' },
        },
      ]
    },
  },
};

export default function () {
  const res = http.get(`${BASE}/`);
  check(res, { 'status is 200': (r) => r.status === 200 });
  sleep(1);
}
)JS";

TEST(K6ScriptTest, ReadsTheApmBlockOfARealisticScript) {
  absl::StatusOr<v1::StartExportRequest> request =
      ParseK6ScriptApm(kScript, "run-1", Env({{"RW_TOKEN", "s3cr3t"}, {"TEST_ENV", "staging"}}));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->test_run_id(), "run-1");
  ASSERT_EQ(request->targets_size(), 1);
  const v1::Target& t = request->targets(0);
  EXPECT_EQ(t.provider(), "prometheus");
  EXPECT_EQ(t.remote_write_url(), "http://127.0.0.1:9090/api/v1/write?tenant=a");
  EXPECT_EQ(t.credentials().token(), "s3cr3t");
  ASSERT_EQ(t.metrics_size(), 4);
  EXPECT_EQ(t.metrics(1).source_metric(), "my_rate");
  EXPECT_EQ(t.metrics(3).source_metric(), "http_req_duration{status=\"500\"}");
  EXPECT_EQ(t.metrics(3).target_metric(), "k6_errors_duration");
  EXPECT_THAT(t.metrics(3).keep_tags(), ElementsAre("name"));
  EXPECT_TRUE(t.include_default_metrics());
  EXPECT_FALSE(t.include_test_run_id());
  EXPECT_EQ(t.resample_rate(), 5u);
  EXPECT_EQ(t.labels().at("env"), "staging");
  EXPECT_EQ(t.labels().at("team"), "checkout");
  // And it validates.
  absl::StatusOr<ExportConfig> config = ValidateStartExport(*request);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->targets[0].outputs[3].base_name, "k6_errors_duration");
}

TEST(K6ScriptTest, AnUnsetEnvVariableIsReportedWithItsLineAndNoValue) {
  absl::StatusOr<v1::StartExportRequest> request =
      ParseK6ScriptApm(kScript, "run-1", Env({{"TEST_ENV", "staging"}}));
  ASSERT_FALSE(request.ok());
  EXPECT_THAT(std::string(request.status().message()),
              StartsWith("line 18: ext.loadimpact.apm[0].credentials.token: __ENV.RW_TOKEN is not "
                         "set in the environment"));
}

TEST(K6ScriptTest, AnExpressionTheConfigurationNeedsIsReportedWithItsLine) {
  const std::string script = R"JS(
export const options = {
  ext: {
    loadimpact: {
      apm: [{
        provider: 'prometheus',
        remoteWriteURL: `${BASE}/api/v1/write`,
      }],
    },
  },
};)JS";
  absl::StatusOr<v1::StartExportRequest> request = ParseK6ScriptApm(script, "r", Env({}));
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(std::string(request.status().message()),
            "line 7: ext.loadimpact.apm[0].remoteWriteURL: cannot evaluate "
            "`${BASE}/api/v1/write`: only literals and __ENV.NAME are read from a k6 script");
}

// A string that is not UTF-8 cannot become JSON: an InvalidArgument naming the line of the raw
// byte; a \u escape of a lone surrogate is refused the same way, without a line.
TEST(K6ScriptTest, AStringThatIsNotUtf8IsRefusedWithItsLine) {
  const std::string script =
      "// caf\xc3\xa9 comments may hold any UTF-8\n"
      "export const options = {ext: {loadimpact: {apm: [{provider: 'prometheus',\n"
      "  remoteWriteURL: 'http://127.0.0.1:1/w',\n"
      "  metrics: ['http_req_\xff\xffsending']}]}}};";
  absl::StatusOr<v1::StartExportRequest> request = ParseK6ScriptApm(script, "r", Env({}));
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(request.status().message()),
            "line 4: options.ext: a string is not valid UTF-8");

  request = ParseK6ScriptApm(
      "export const options = {ext: {loadimpact: {apm: [{provider: 'prometheus',\n"
      "  remoteWriteURL: 'http://127.0.0.1:1/w', metrics: ['a\\ud800']}]}}};",
      "r", Env({}));
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(std::string(request.status().message()), "options.ext: a string is not valid UTF-8");
}

TEST(K6ScriptTest, ASecretExpressionIsNotShown) {
  const std::string script =
      "export const options = {ext: {loadimpact: {apm: [{provider: 'prometheus',\n"
      "  remoteWriteURL: 'http://127.0.0.1:1/w', credentials: {token: 'abc' + 'def'}}]}}};";
  absl::StatusOr<v1::StartExportRequest> request = ParseK6ScriptApm(script, "r", Env({}));
  ASSERT_FALSE(request.ok());
  const std::string message(request.status().message());
  EXPECT_THAT(message, StartsWith("line 2: ext.loadimpact.apm[0].credentials.token: cannot "
                                  "evaluate the expression here"));
  EXPECT_THAT(message, Not(HasSubstr("abc")));
}

TEST(K6ScriptTest, TheDocumentationsPlaceholderSpreadIsReported) {
  // The k6 Cloud page writes `metrics: ["http_req_sending", "my_rate", "my_gauge", ...]`.
  const std::string script = R"JS(export let options = {
  ext: {
    loadimpact: {
      apm: [
        {
          provider: "prometheus",
          remoteWriteURL: "<Remote Write URL>", // This can include query-string parameters
          metrics: ["http_req_sending", "my_rate", "my_gauge", ...],
        },
      ]
    },
  },
};)JS";
  absl::StatusOr<v1::StartExportRequest> request = ParseK6ScriptApm(script, "r", Env({}));
  ASSERT_FALSE(request.ok());
  EXPECT_THAT(std::string(request.status().message()),
              StartsWith("line 8: ext.loadimpact.apm[0].metrics[3]: cannot evaluate ...: "));
}

TEST(K6ScriptTest, ShapeErrorsOfTheApmReaderGainTheLine) {
  const std::string script = R"JS(// TypeScript works too
export const options: Options = {
  ext: { loadimpact: { apm: [{
    provider: 'prometheus',
    remoteWriteURL: 'http://127.0.0.1:1/w',
    resampleRate: 'fast',
  }] } },
};)JS";
  absl::StatusOr<v1::StartExportRequest> request = ParseK6ScriptApm(script, "r", Env({}));
  ASSERT_FALSE(request.ok());
  EXPECT_THAT(std::string(request.status().message()),
              StartsWith("line 6: ext.loadimpact.apm[0].resampleRate: expected an integer"));
}

TEST(K6ScriptTest, ScriptsWithoutOptionsOrWithBrokenSyntaxAreClearErrors) {
  EXPECT_THAT(
      std::string(ParseK6ScriptApm("// export const options = {}\nconst x = 1;", "r", Env({}))
                      .status()
                      .message()),
      HasSubstr("no `export const options = {...}`"));
  EXPECT_THAT(std::string(ParseK6ScriptApm("export const options = { ext: { loadimpact: {\n"
                                           "  apm: [{ provider: 'prometheus }] } } };",
                                           "r", Env({}))
                              .status()
                              .message()),
              StartsWith("line 2: unterminated string"));
  EXPECT_THAT(std::string(ParseK6ScriptApm("export const options = makeOptions();", "r", Env({}))
                              .status()
                              .message()),
              StartsWith("line 1: options: cannot evaluate makeOptions(): "));
  EXPECT_THAT(
      std::string(
          ParseK6ScriptApm("export const options = { vus: 1 };", "r", Env({})).status().message()),
      HasSubstr("options.ext.loadimpact.apm: not found"));
}

TEST(K6ScriptTest, SigV4AndTestRunIdLabelAreRead) {
  const std::string script = R"JS(export const options = {
  ext: { loadimpact: { apm: [{
    provider: 'prometheus',
    remoteWriteURL: 'https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write',
    sigv4: { region: 'eu-west-1', accessKey: __ENV.AWS_ACCESS_KEY_ID,
             secretKey: __ENV.AWS_SECRET_ACCESS_KEY, sessionToken: __ENV.AWS_SESSION_TOKEN },
    includeTestRunId: true,
    testRunIdLabel: 'testid',
  }] } },
};)JS";
  absl::StatusOr<v1::StartExportRequest> request =
      ParseK6ScriptApm(script, "r",
                       Env({{"AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"},
                            {"AWS_SECRET_ACCESS_KEY", "secret/key"},
                            {"AWS_SESSION_TOKEN", "token=="}}));
  ASSERT_TRUE(request.ok()) << request.status();
  const v1::Target& t = request->targets(0);
  EXPECT_EQ(t.sigv4().region(), "eu-west-1");
  EXPECT_EQ(t.sigv4().access_key(), "AKIDEXAMPLE");
  EXPECT_EQ(t.sigv4().secret_key(), "secret/key");
  EXPECT_EQ(t.sigv4().session_token(), "token==");
  EXPECT_EQ(t.test_run_id_label(), "testid");
  absl::StatusOr<ExportConfig> config = ValidateStartExport(*request);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->targets[0].sigv4->service, "aps");

  // A misspelt key inside sigv4 is named, with its line; the secret is not shown.
  const std::string typo = R"JS(export const options = { ext: { loadimpact: { apm: [{
  provider: 'prometheus', remoteWriteURL: 'http://127.0.0.1:1/w',
  sigv4: { region: 'eu-west-1', secret_key: 'wJalrXUtnFEMI' },
}] } } };)JS";
  request = ParseK6ScriptApm(typo, "r", Env({}));
  ASSERT_FALSE(request.ok());
  const std::string message(request.status().message());
  EXPECT_THAT(message, StartsWith("line 3: ext.loadimpact.apm[0].sigv4.secret_key: unknown field "
                                  "(did you mean secretKey?)"));
  EXPECT_THAT(message, Not(HasSubstr("wJalr")));
}

TEST(K6ScriptTest, ScriptPathsAreToldByTheirExtension) {
  EXPECT_TRUE(IsK6ScriptPath("load/test.js"));
  EXPECT_TRUE(IsK6ScriptPath("test.MJS"));
  EXPECT_TRUE(IsK6ScriptPath("test.ts"));
  EXPECT_FALSE(IsK6ScriptPath("apm.json"));
  EXPECT_FALSE(IsK6ScriptPath("apm.json5"));
}

}  // namespace
}  // namespace rwexport
