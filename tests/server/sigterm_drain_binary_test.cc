// Issue 12, a graceful stop with --data_dir (SIGTERM: an upgrade, a rolling restart) with the
// real binaries and a real Prometheus (2.42): `rwexport replay` streams a k6 run at its
// recorded pace through IngestSamples; the server is stopped with SIGTERM mid-way, keeps the
// export for its next start (exit 0, the record still in exports/, nothing in stopped/), and is
// started again on the same data dir and port. The replay resumes by itself and finishes; the
// export's figures continue (802 samples in all) and Prometheus ends with the run's exact
// totals, every window once, nothing dropped.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/figures.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

bool Exists(const std::string& path) { return std::ifstream(path).good(); }

class SigtermDrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PrometheusServer>> started = PrometheusServer::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    prometheus_ = *std::move(started);
    data_dir_ = TestTempPath("data-drain");
    config_ = TestTempPath("drain.json");
    std::ofstream(config_) << "[{\"provider\": \"prometheus\", \"resampleRate\": 1, "
                           << "\"includeTestRunId\": true, \"remoteWriteURL\": \""
                           << prometheus_->remote_write_url() << "\"}]";
  }

  // rwexport_server on data_dir_; `listen` empty: a free port (then kept for the restart).
  // `extra`: more flags (later ones win).
  std::unique_ptr<Subprocess> StartServer(const std::string& listen = "",
                                          const std::vector<std::string>& extra = {}) {
    std::vector<std::string> flags = {"--data_dir=" + data_dir_, "--workers=1", "--lateness=2s",
                                      "--delivery_timeout=10s"};
    if (!listen.empty()) flags.push_back("--listen=" + listen);
    flags.insert(flags.end(), extra.begin(), extra.end());
    return StartServerProcess(flags, TestTempPath("drain.port"), &server_flag_, kWait);
  }

  ProcessResult Cli(std::vector<std::string> args) const { return RunCli(args, server_flag_); }

  // Points of the run's series stored so far.
  size_t StoredPoints(const std::string& metric, const std::string& run) const {
    absl::StatusOr<std::vector<QueryResult>> result = prometheus_->Query(
        absl::StrCat(metric, "{test_run_id=\"", run, "\"}[1h]"), absl::Now() + absl::Minutes(1));
    return result.ok() ? result->size() : 0;
  }

  std::unique_ptr<PrometheusServer> prometheus_;
  std::string data_dir_;
  std::string config_;
  std::string server_flag_;
};

TEST_F(SigtermDrainTest, AReplayResumesAcrossAGracefulRestartWithExactTotals) {
  std::unique_ptr<Subprocess> server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string listen = server_flag_.substr(std::string("--server=").size());
  const std::string run = "sigterm-drain";
  const ProcessResult start = Cli({"start", "--config=" + config_, "--test_run_id=" + run});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const std::string id(absl::StripAsciiWhitespace(start.out));

  // The run (1 minute) at its recorded pace, through IngestSamples.
  absl::StatusOr<std::unique_ptr<Subprocess>> replay =
      Subprocess::Start(RunfilePath("client/rwexport"),
                        {"replay", K6TestdataFile("finance-run.json"), "--export_id=" + id,
                         "--pace=recorded", "--resume_timeout=60s", server_flag_});
  ASSERT_TRUE(replay.ok()) << replay.status();

  // Mid-way: some windows are in Prometheus already.
  for (int i = 0; i < 300 && StoredPoints("k6_http_reqs_total", run) < 5; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_GE(StoredPoints("k6_http_reqs_total", run), 5u);
  server->Kill(SIGTERM);
  absl::StatusOr<int> code = server->Wait(kWait);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server->stderr_text();
  EXPECT_THAT(server->stderr_text(), HasSubstr("open streams answered streams=1"));
  EXPECT_THAT(server->stderr_text(),
              ContainsRegex("export kept for the next start export_id=" + id +
                            " test_run_id=sigterm-drain delivered_through_ms=[1-9][0-9]+ "
                            "points_not_delivered=0"));
  EXPECT_THAT(server->stderr_text(), HasSubstr("stopped exports_kept_for_next_start=1"));
  EXPECT_TRUE(Exists(absl::StrCat(data_dir_, "/exports/", id, ".binpb")));
  EXPECT_FALSE(Exists(absl::StrCat(data_dir_, "/stopped/", id, ".binpb")));
  const size_t before_restart = StoredPoints("k6_http_reqs_total", run);

  // Started again on the same port: the export is back, the replay resumes by itself.
  server = StartServer(listen);
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(), HasSubstr("exports_recovered=1 unrecoverable=0"));
  absl::StatusOr<int> replayed = (*replay)->Wait(absl::Seconds(90));
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(*replayed, 0) << (*replay)->stderr_text();
  EXPECT_THAT((*replay)->stderr_text(),
              ContainsRegex("resumed stream .* at batch [0-9]+ after (UNAVAILABLE|CANCELLED)"));
  EXPECT_THAT((*replay)->stdout_text(), HasSubstr("server accepted 802, rejected 0"));

  const ProcessResult status = Cli({"status", id});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, ContainsRegex("recovered: [0-9]+s ago, by a restarted server"));
  EXPECT_THAT(status.out, HasSubstr("samples:   802 accepted"));
  const ProcessResult stop = Cli({"stop", id});
  EXPECT_EQ(stop.exit_code, 0) << stop.out << stop.err;
  EXPECT_THAT(stop.out, HasSubstr("samples accepted: 802, rejected: 0"));
  EXPECT_THAT(stop.out, HasSubstr("points dropped 0"));
  EXPECT_THAT(stop.out, HasSubstr("failures 0"));

  ExpectFinanceRunTotals(*prometheus_, run);
  EXPECT_GT(StoredPoints("k6_http_reqs_total", run), before_restart);
  EXPECT_THAT(prometheus_->LogTail(50), ::testing::Not(HasSubstr("out of order")));
  server->Kill(SIGTERM);
  EXPECT_TRUE(server->Wait(kWait).ok());
}

TEST_F(SigtermDrainTest, WhileItDrainsNewCallsAreRefusedAndItIsNotReady) {
  // The only target is down: the drain waits for it until the delivery timeout (3 s).
  absl::StatusOr<int> closed = PickFreePort();
  ASSERT_TRUE(closed.ok()) << closed.status();
  std::ofstream(config_) << "[{\"provider\": \"prometheus\", \"resampleRate\": 1, "
                         << "\"remoteWriteURL\": \"http://127.0.0.1:" << *closed
                         << "/api/v1/write\"}]";
  std::unique_ptr<Subprocess> server =
      StartServer("", {"--delivery_timeout=3s", "--lateness=1s", "--metrics_listen=127.0.0.1:0"});
  ASSERT_NE(server, nullptr);
  const std::string log = server->stderr_text();
  const size_t at = log.find("self-metrics served address=127.0.0.1:0 port=");
  ASSERT_NE(at, std::string::npos) << log;
  const size_t begin = log.find("port=", at) + 5;
  const std::string ready_url = absl::StrCat(
      "http://127.0.0.1:", log.substr(begin, log.find(' ', begin) - begin), "/-/ready");
  const ProcessResult start = Cli({"start", "--config=" + config_, "--test_run_id=drain-refuse"});
  ASSERT_EQ(start.exit_code, 0) << start.err;
  const std::string id(absl::StripAsciiWhitespace(start.out));
  const ProcessResult replay =
      Cli({"replay", K6TestdataFile("finance-run.json"), "--export_id=" + id});
  ASSERT_EQ(replay.exit_code, 0) << replay.err;

  server->Kill(SIGTERM);
  ASSERT_TRUE(server->WaitForStderr("shutting down signal=SIGTERM", kWait));
  const ProcessResult refused =
      Cli({"start", "--config=" + config_, "--test_run_id=drain-refused"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(refused.err,
              HasSubstr("keeps its exports for its next start; retry when it is back"));
  const ProcessResult stop = Cli({"stop", id});
  EXPECT_NE(stop.exit_code, 0);
  EXPECT_THAT(stop.err, HasSubstr("keeps its exports for its next start"));
  absl::StatusOr<ProcessResult> ready =
      RunProcess("/usr/bin/curl", {"-s", "-o", "/dev/null", "-w", "%{http_code}", ready_url});
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(ready->out, "503");

  absl::StatusOr<int> code = server->Wait(kWait);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  // The target is down: its points are not delivered, but they are in its durable queue, so
  // the delivery mark covers them (the next start delivers them from there).
  EXPECT_THAT(server->stderr_text(),
              ContainsRegex("export kept for the next start export_id=" + id +
                            " test_run_id=drain-refuse delivered_through_ms=[1-9][0-9]* "
                            "points_not_delivered=[1-9][0-9]*"));
  EXPECT_THAT(server->stderr_text(),
              HasSubstr("remote-write target's undelivered points stay in its queue on disk"));
  EXPECT_TRUE(Exists(absl::StrCat(data_dir_, "/exports/", id, ".binpb")));
  EXPECT_FALSE(Exists(absl::StrCat(data_dir_, "/stopped/", id, ".binpb")));
}

}  // namespace
}  // namespace rwexport
