// Issue 13, item 1: secrets in a remote-write URL's query string must not leak. Every query
// value is redacted (the values of sig= (Azure SAS), pwd=, jwt=, X-Amz-Credential= were shown
// verbatim when only some parameter names were redacted).
//
// Runs the real binaries: rwexport_server (with --metrics_listen) and the rwexport CLI. Starts
// an export whose URL carries a generated set of query parameters (names of real secrets and
// plain ones), delivers to a receiver in this process, and greps every output
// surface for every value: the server log, `rwexport start`, `status`, `status --json`, `ls`,
// `ls --json` and `stop` output, and /metrics. The parameter names may be shown; no value may.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/subprocess.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(15);

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// Query parameters: names seen in real secrets (SAS signatures, AWS presigned URLs, JWTs,
// passwords) and plain generated ones, each with a value that appears nowhere else.
std::vector<std::pair<std::string, std::string>> GeneratedParams() {
  absl::BitGen gen;
  std::vector<std::string> names = {
      "sig", "pwd", "jwt",  "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Security-Token",
      "sv",  "se",  "code", "access_token",     "api_key",         "s"};
  for (int i = 0; i < 8; ++i) names.push_back(absl::StrFormat("p%c%d", 'a' + i, i));
  std::vector<std::pair<std::string, std::string>> params;
  for (const std::string& name : names) {
    params.emplace_back(name, absl::StrFormat("v%08x%08x", absl::Uniform<uint32_t>(gen),
                                              absl::Uniform<uint32_t>(gen)));
  }
  return params;
}

TEST(QuerySecretsTest, NoQueryValueReachesAnyOutputSurface) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  const auto params = GeneratedParams();
  std::string query;
  for (const auto& [name, value] : params) {
    absl::StrAppend(&query, query.empty() ? "?" : "&", name, "=", value);
  }
  const std::string url = (*receiver)->Url("/api/v1/write" + query);

  const std::string port_file = TempPath("secrets.port");
  std::remove(port_file.c_str());
  absl::StatusOr<std::unique_ptr<Subprocess>> server =
      Subprocess::Start(RunfilePath("server/rwexport_server"),
                        {"--listen=127.0.0.1:0", "--port_file=" + port_file,
                         "--metrics_listen=127.0.0.1:0", "--workers=1", "--delivery_timeout=5s"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitForStderr("rwexport_server listening", kWait));
  std::string port;
  std::getline(std::ifstream(port_file), port);
  const std::string server_flag = "--server=127.0.0.1:" + port;
  const std::string log = (*server)->stderr_text();
  const size_t metrics_at = log.find("port=", log.find("self-metrics served"));
  ASSERT_NE(metrics_at, std::string::npos) << log;
  const std::string metrics_port =
      log.substr(metrics_at + 5, log.find(' ', metrics_at) - metrics_at - 5);

  const std::string config = TempPath("secrets.json");
  std::ofstream(config) << "[{\"provider\": \"prometheus\", \"remoteWriteURL\": \"" << url
                        << "\", \"resampleRate\": 1}]";
  const std::string cli = RunfilePath("client/rwexport");
  std::vector<std::pair<std::string, std::string>> surfaces;  // what, text
  absl::StatusOr<ProcessResult> start =
      RunProcess(cli, {"start", "--config=" + config, "--test_run_id=secrets", server_flag});
  ASSERT_TRUE(start.ok() && start->exit_code == 0) << (start.ok() ? start->err : "");
  const std::string id = std::string(absl::StripAsciiWhitespace(start->out));
  surfaces.emplace_back("start", start->out + start->err);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"status", id}, {"status", id, "--json"}, {"ls"}, {"ls", "--json"}}) {
    std::vector<std::string> full = args;
    full.push_back(server_flag);
    absl::StatusOr<ProcessResult> r = RunProcess(cli, full);
    ASSERT_TRUE(r.ok()) << r.status();
    surfaces.emplace_back(absl::StrJoin(args, " "), r->out + r->err);
  }
  absl::StatusOr<ProcessResult> metrics =
      RunProcess("/usr/bin/curl", {"-s", "http://127.0.0.1:" + metrics_port + "/metrics"});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(metrics->out, HasSubstr("rwexport_export_series"));
  surfaces.emplace_back("/metrics", metrics->out);
  absl::StatusOr<ProcessResult> stop = RunProcess(cli, {"stop", id, server_flag});
  ASSERT_TRUE(stop.ok()) << stop.status();
  surfaces.emplace_back("stop", stop->out + stop->err);
  (*server)->Kill(SIGTERM);
  ASSERT_TRUE((*server)->Wait(kWait).ok());
  surfaces.emplace_back("server log", (*server)->stderr_text());

  for (const auto& [what, text] : surfaces) {
    for (const auto& [name, value] : params) {
      EXPECT_THAT(text, Not(HasSubstr(value))) << what << " shows the value of " << name;
    }
  }
  // The names stay visible, so a reader can tell the URLs apart.
  EXPECT_THAT(surfaces[1].second, HasSubstr("X-Amz-Credential=")) << surfaces[1].second;
}

}  // namespace
}  // namespace rwexport
