// Issue 13, items 1 and 2: target secrets must not leak. Both tests failed before the fix:
//   1. the values of query parameters such as sig= (Azure SAS), pwd=, jwt= and
//      X-Amz-Credential= are shown verbatim;
//   2. a target whose error body echoes `Authorization: Basic <base64(user:password)>` gets
//      the base64 credentials into the log, last_error, status and stop output.
//
// Runs the real binaries: rwexport_server (with --metrics_listen) and the rwexport CLI, with
// a receiver in this process, and greps every output surface for every secret: the server
// log, `rwexport start`, `status`, `status --json`, `ls`, `ls --json` and `stop` output, and
// /metrics.
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
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
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

// What one export showed: (surface, text) pairs.
using Surfaces = std::vector<std::pair<std::string, std::string>>;

// Runs rwexport_server and exports to the target block `target_json` (a JSON object without
// its braces, e.g. "\"remoteWriteURL\": \"...\""): start, a one-sample replay, status (after a
// request reached `receiver`), ls, /metrics, stop; returns every surface, the server log last.
Surfaces ExportAndCollectSurfaces(FakeReceiver& receiver, const std::string& target_json) {
  Surfaces surfaces;
  const std::string port_file = TempPath("secrets.port");
  std::remove(port_file.c_str());
  absl::StatusOr<std::unique_ptr<Subprocess>> server = Subprocess::Start(
      RunfilePath("server/rwexport_server"),
      {"--listen=127.0.0.1:0", "--port_file=" + port_file, "--metrics_listen=127.0.0.1:0",
       "--workers=1", "--lateness=0s", "--delivery_timeout=2s"});
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok() || !(*server)->WaitForStderr("rwexport_server listening", kWait)) {
    ADD_FAILURE() << "the server did not start";
    return surfaces;
  }
  std::string port;
  std::getline(std::ifstream(port_file), port);
  const std::string server_flag = "--server=127.0.0.1:" + port;
  const std::string log = (*server)->stderr_text();
  const size_t metrics_at = log.find("port=", log.find("self-metrics served"));
  const std::string metrics_port =
      log.substr(metrics_at + 5, log.find(' ', metrics_at) - metrics_at - 5);

  const std::string config = TempPath("secrets.json");
  std::ofstream(config) << "[{\"provider\": \"prometheus\", \"resampleRate\": 1, " << target_json
                        << "}]";
  const std::string samples = TempPath("secrets.jsonl");
  std::ofstream(samples) << absl::StrCat(
      R"({"metric":"vus","type":"Point","data":{"time":")",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() - absl::Seconds(5), absl::UTCTimeZone()),
      R"(","value":3,"tags":{}}})", "\n");
  const std::string cli = RunfilePath("client/rwexport");
  auto run = [&](std::vector<std::string> args) {
    const std::string what = absl::StrJoin(args, " ");
    args.push_back(server_flag);
    absl::StatusOr<ProcessResult> r = RunProcess(cli, args);
    EXPECT_TRUE(r.ok()) << what << ": " << r.status();
    if (r.ok()) surfaces.emplace_back(what, r->out + r->err);
    return r.ok() ? r->out : "";
  };
  const std::string id = std::string(
      absl::StripAsciiWhitespace(run({"start", "--config=" + config, "--test_run_id=secrets"})));
  run({"replay", samples, "--export_id=" + id, "--keep_timestamps"});
  EXPECT_TRUE(receiver.WaitForRequests(1, kWait));
  absl::SleepFor(absl::Milliseconds(200));  // the answer is recorded after the request arrives
  run({"status", id});
  run({"status", id, "--json"});
  run({"ls"});
  run({"ls", "--json"});
  absl::StatusOr<ProcessResult> metrics =
      RunProcess("/usr/bin/curl", {"-s", "http://127.0.0.1:" + metrics_port + "/metrics"});
  EXPECT_TRUE(metrics.ok()) << metrics.status();
  if (metrics.ok()) surfaces.emplace_back("/metrics", metrics->out);
  run({"stop", id});
  (*server)->Kill(SIGTERM);
  EXPECT_TRUE((*server)->Wait(kWait).ok());
  surfaces.emplace_back("server log", (*server)->stderr_text());
  return surfaces;
}

void ExpectNowhere(const Surfaces& surfaces, const std::string& secret, const std::string& name) {
  for (const auto& [what, text] : surfaces) {
    EXPECT_THAT(text, Not(HasSubstr(secret))) << what << " shows " << name;
  }
}

// Item 1: query parameters with names seen in real secrets (SAS signatures, AWS presigned
// URLs, JWTs, passwords) and plain generated ones, each with a value that appears nowhere
// else. The names may be shown; no value may.
TEST(SecretsTest, NoQueryValueReachesAnyOutputSurface) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  absl::BitGen gen;
  std::vector<std::string> names = {
      "sig", "pwd", "jwt",  "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Security-Token",
      "sv",  "se",  "code", "access_token",     "api_key",         "s"};
  for (int i = 0; i < 8; ++i) names.push_back(absl::StrFormat("p%c%d", 'a' + i, i));
  std::vector<std::pair<std::string, std::string>> params;
  std::string query;
  for (const std::string& name : names) {
    params.emplace_back(name, absl::StrFormat("v%08x%08x", absl::Uniform<uint32_t>(gen),
                                              absl::Uniform<uint32_t>(gen)));
    absl::StrAppend(&query, query.empty() ? "?" : "&", name, "=", params.back().second);
  }
  const Surfaces surfaces = ExportAndCollectSurfaces(
      **receiver,
      absl::StrCat("\"remoteWriteURL\": \"", (*receiver)->Url("/api/v1/write" + query), "\""));
  ASSERT_GT(surfaces.size(), 5u);
  for (const auto& [name, value] : params) ExpectNowhere(surfaces, value, "the value of " + name);
  // The names stay visible, so a reader can tell the URLs apart.
  EXPECT_THAT(surfaces[2].second, HasSubstr("X-Amz-Credential=")) << surfaces[2].second;
}

// Item 2: a target that refuses the request and echoes its Authorization header.
TEST(SecretsTest, EchoedBasicCredentialsAreScrubbed) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  const std::string user = "loader";
  const std::string password = "pw-5e1f0c9a";
  const std::string basic = absl::Base64Escape(user + ":" + password);
  (*receiver)->SetDefault(FakeResponse::WithStatus(
      400, absl::StrCat("bad request; you sent Authorization: Basic ", basic)));
  const Surfaces surfaces = ExportAndCollectSurfaces(
      **receiver, absl::StrCat("\"remoteWriteURL\": \"", (*receiver)->Url(),
                               "\", \"credentials\": {\"username\": \"", user,
                               "\", \"password\": \"", password, "\"}"));
  ASSERT_GT(surfaces.size(), 5u);
  // The target's answer did reach the figures (so the test sees what it is about).
  EXPECT_THAT(surfaces[surfaces.size() - 2].second, HasSubstr("last error: HTTP 400"))
      << surfaces[surfaces.size() - 2].first;
  ExpectNowhere(surfaces, basic, "the base64 user:password");
  ExpectNowhere(surfaces, password, "the password");
}

}  // namespace
}  // namespace rwexport
