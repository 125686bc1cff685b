// Issue 12 (the data directory and the durable registry), with the real binaries:
// rwexport_server with --data_dir is SIGKILLed and restarted with the same flags; the rwexport
// CLI looks at what came back. Also: a second server on the same data directory, and a
// SIGKILL right after StopExport answered.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"

namespace rwexport {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(15);

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

class CrashRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    data_dir_ = TempPath(
        absl::StrCat("data-", ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    config_ = TempPath("crash.json");
    std::ofstream(config_) << "[{\"provider\": \"prometheus\", \"resampleRate\": 1, "
                           << "\"includeDefaultMetrics\": false, \"metrics\": [\"http_reqs\"], "
                           << "\"remoteWriteURL\": \"" << receiver_->Url() << "\"}]";
  }

  // The server's flags, the same at every start (but --listen and --port_file).
  std::vector<std::string> ServerFlags() const {
    return {"--data_dir=" + data_dir_, "--workers=1", "--lateness=0s", "--delivery_timeout=3s",
            "--metrics_listen=127.0.0.1:0"};
  }

  // Starts rwexport_server and waits until it listens; sets server_flag_.
  std::unique_ptr<Subprocess> StartServer() {
    std::unique_ptr<Subprocess> server =
        StartServerProcess(ServerFlags(), TempPath("crash.port"), &server_flag_, kWait);
    if (server == nullptr) return nullptr;
    const std::string log = server->stderr_text();
    const size_t at = log.find("port=", log.find("self-metrics served")) + 5;
    metrics_port_ = log.substr(at, log.find(' ', at) - at);
    return server;
  }

  static void Crash(std::unique_ptr<Subprocess>& server) { SigkillServer(server, kWait); }

  ProcessResult Cli(std::vector<std::string> args) const { return RunCli(args, server_flag_); }

  std::string StartExport(const std::string& run) const {
    const ProcessResult r = Cli({"start", "--config=" + config_, "--test_run_id=" + run});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  std::unique_ptr<FakeReceiver> receiver_;
  std::string data_dir_;
  std::string config_;
  std::string server_flag_;
  std::string metrics_port_;
};

TEST_F(CrashRecoveryTest, AnExportComesBackAfterSigkillMarkedRecovered) {
  std::unique_ptr<Subprocess> server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport("crash-run");
  ASSERT_THAT(id, SizeIs(32));
  ASSERT_NO_FATAL_FAILURE(Crash(server));

  server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(),
              HasSubstr(absl::StrCat("export recovered from the data dir export_id=", id,
                                     " test_run_id=crash-run sequence=1")));
  const ProcessResult status = Cli({"status", id});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("test run:  crash-run\n"));
  EXPECT_THAT(status.out, ContainsRegex("recovered: [0-9]+s ago, by a restarted server"));
  const ProcessResult ls = Cli({"ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  const std::vector<std::string> rows = absl::StrSplit(ls.out, '\n', absl::SkipEmpty());
  ASSERT_THAT(rows, SizeIs(2)) << ls.out;
  EXPECT_THAT(rows[0], HasSubstr("RECOVERED"));
  EXPECT_THAT(rows[1],
              ContainsRegex(absl::StrCat("^", id, " +crash-run +running .* [0-9]+s ago$")));
  absl::StatusOr<ProcessResult> metrics =
      RunProcess("/usr/bin/curl", {"-s", "http://127.0.0.1:" + metrics_port_ + "/metrics"});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(metrics->out, HasSubstr("\nrwexport_exports_recovered_total 1\n"));
  EXPECT_THAT(metrics->out, HasSubstr("\nrwexport_data_dir_records_set_aside_total 0\n"));
  const ProcessResult json = Cli({"status", id, "--json"});
  EXPECT_THAT(json.out, ContainsRegex("\"recoveredUnixMs\": \"[1-9][0-9]{12}\""));
  EXPECT_THAT(json.out, HasSubstr("\"testRunId\": \"crash-run\""));

  // It works: a sample replayed into it reaches the target.
  const std::string samples = TempPath("crash.jsonl");
  std::ofstream(samples) << absl::StrCat(
      R"({"metric":"http_reqs","type":"Point","data":{"time":")",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() - absl::Seconds(5), absl::UTCTimeZone()),
      R"(","value":1,"tags":{}}})", "\n");
  const ProcessResult replay = Cli({"replay", samples, "--export_id=" + id, "--keep_timestamps"});
  EXPECT_EQ(replay.exit_code, 0) << replay.err;
  const ProcessResult stop = Cli({"stop", id});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_THAT(stop.out, HasSubstr("samples accepted: 1, rejected: 0"));
  EXPECT_THAT(stop.out, HasSubstr("points sent 1,"));
  server->Kill(SIGTERM);
  EXPECT_TRUE(server->Wait(kWait).ok());
}

TEST_F(CrashRecoveryTest, ASecondServerOnTheSameDataDirExitsWithOneLine) {
  std::unique_ptr<Subprocess> server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport("locked");
  absl::StatusOr<ProcessResult> second =
      RunProcess(RunfilePath("server/rwexport_server"),
                 {"--listen=127.0.0.1:0", "--port_file=" + TempPath("second.port"),
                  "--data_dir=" + data_dir_, "--workers=1"});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->exit_code, 3);
  EXPECT_EQ(second->err,
            absl::StrCat("rwexport_server: data dir ", data_dir_,
                         " is in use by another rwexport_server (pid ", server->pid(), ")\n"));
  EXPECT_EQ(second->out, "");
  // The first one keeps serving, its export untouched.
  const ProcessResult status = Cli({"status", id});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("test run:  locked\n"));
  EXPECT_THAT(status.out, Not(HasSubstr("recovered")));
  server->Kill(SIGTERM);
  EXPECT_TRUE(server->Wait(kWait).ok());
}

TEST_F(CrashRecoveryTest, SigkillRightAfterStopAnsweredKeepsTheExportStoppedAndItsFigures) {
  std::unique_ptr<Subprocess> server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport("stopped-run");
  const ProcessResult first = Cli({"stop", id, "--json"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_THAT(first.out, HasSubstr(absl::StrCat("\"exportId\": \"", id, "\"")));
  ASSERT_NO_FATAL_FAILURE(Crash(server));

  server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(), HasSubstr("exports_recovered=0 unrecoverable=0 "
                                               "corrupt_files=0 stopped_kept=1"));
  const ProcessResult ls = Cli({"ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_THAT(std::vector<std::string>(absl::StrSplit(ls.out, '\n', absl::SkipEmpty())),
              SizeIs(1))
      << ls.out;  // the header only
  const ProcessResult status = Cli({"status", id});
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_THAT(status.err, HasSubstr("NOT_FOUND"));
  const ProcessResult retry = Cli({"stop", id, "--json"});
  EXPECT_EQ(retry.exit_code, 0) << retry.err;
  EXPECT_EQ(retry.out, first.out);
  server->Kill(SIGTERM);
  EXPECT_TRUE(server->Wait(kWait).ok());
}

}  // namespace
}  // namespace rwexport
