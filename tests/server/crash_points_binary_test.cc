// Issue 12, acceptance 2: rwexport_server with --data_dir killed (SIGKILL, by itself through the
// RWEXPORT_CRASH_AT test hook) at each point between two durable steps of StartExport, of
// StopExport and of acknowledged ingest, and while a target is down; restarted on the same data
// dir without the hook. After the restart the export is in one of the states README "Crash
// safety" documents (absent or running with its id and configuration; running or stopped with
// its figures, never both), and nothing acknowledged is lost: after the final stop a real
// Prometheus (2.42) holds the k6 run's exact counter totals and nothing was dropped.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
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
#include "tests/testing/figures.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(20);

bool Exists(const std::string& path) { return std::ifstream(path).good(); }

class CrashPointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<PrometheusServer*> shared = PrometheusServer::Shared();
    ASSERT_TRUE(shared.ok()) << shared.status();
    prometheus_ = *shared;
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    data_dir_ = TestTempPath("data-" + name_);
    run_ = "crash-" + name_;
    WriteConfig(prometheus_->remote_write_url());
  }

  void WriteConfig(const std::string& url) {
    config_ = TestTempPath("crash-" + name_ + ".json");
    std::ofstream(config_) << "[{\"provider\": \"prometheus\", \"resampleRate\": 1, "
                           << "\"includeTestRunId\": true, \"remoteWriteURL\": \"" << url << "\"}]";
  }

  // rwexport_server on data_dir_, killing itself at `crash_at` (RWEXPORT_CRASH_AT; empty: never).
  // `listen` empty: a free port; else that address (a restart the client resumes against).
  std::unique_ptr<Subprocess> StartServer(const std::string& crash_at,
                                          const std::string& listen = "",
                                          const std::string& lateness = "10m") {
    std::vector<std::string> flags = {"--data_dir=" + data_dir_, "--workers=1",
                                      "--lateness=" + lateness, "--delivery_timeout=10s",
                                      "--max_backoff=500ms"};
    if (!listen.empty()) flags.push_back("--listen=" + listen);
    // The child inherits the variable; no other thread reads the environment meanwhile.
    if (!crash_at.empty()) setenv("RWEXPORT_CRASH_AT", crash_at.c_str(), 1);
    std::unique_ptr<Subprocess> server =
        StartServerProcess(flags, TestTempPath(name_ + ".port"), &server_flag_, kWait);
    unsetenv("RWEXPORT_CRASH_AT");
    if (server != nullptr && !crash_at.empty()) {
      EXPECT_THAT(server->stderr_text(), HasSubstr("RWEXPORT_CRASH_AT=" + crash_at));
    }
    return server;
  }

  std::string Listen() const { return server_flag_.substr(std::string("--server=").size()); }

  // Expects the server to die of SIGKILL at `point` (it kills itself there).
  static void ExpectKilledAt(std::unique_ptr<Subprocess>& server, const std::string& point) {
    absl::StatusOr<int> code = server->Wait(kWait);
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 128 + SIGKILL) << server->stderr_text();
    EXPECT_THAT(server->stderr_text(), HasSubstr("crash point " + point + " reached: SIGKILL"));
    server.reset();
  }

  ProcessResult Cli(std::vector<std::string> args) const { return RunCli(args, server_flag_); }

  std::string StartExport() const {
    const ProcessResult start = Cli({"start", "--config=" + config_, "--test_run_id=" + run_});
    EXPECT_EQ(start.exit_code, 0) << start.err;
    return std::string(absl::StripAsciiWhitespace(start.out));
  }

  // finance-run.json into export `id` through IngestSamples, acknowledged.
  void Replay(const std::string& id) const {
    const ProcessResult replay =
        Cli({"replay", K6TestdataFile("finance-run.json"), "--export_id=" + id});
    EXPECT_EQ(replay.exit_code, 0) << replay.err;
    EXPECT_THAT(replay.out, HasSubstr("server accepted 802, rejected 0"));
  }

  // The running exports' rows of `rwexport ls` (without its header).
  std::vector<std::string> Running() const {
    const ProcessResult ls = Cli({"ls"});
    EXPECT_EQ(ls.exit_code, 0) << ls.err;
    std::vector<std::string> rows = absl::StrSplit(ls.out, '\n', absl::SkipEmpty());
    if (!rows.empty()) rows.erase(rows.begin());
    return rows;
  }

  // A final stop that delivered (or had delivered) everything: the figures of the whole run.
  static void ExpectWholeRunStopped(const ProcessResult& stop) {
    EXPECT_EQ(stop.exit_code, 0) << stop.out << stop.err;
    EXPECT_THAT(stop.out, HasSubstr("samples accepted: 802, rejected: 0"));
    EXPECT_THAT(stop.out, HasSubstr("points dropped 0"));
  }

  void ExpectTotalsInPrometheus() const {
    ExpectFinanceRunTotals(*prometheus_, run_);
    EXPECT_THAT(prometheus_->LogTail(50), Not(HasSubstr("out of order")));
  }

  void StopServer(std::unique_ptr<Subprocess>& server) {
    server->Kill(SIGTERM);
    EXPECT_TRUE(server->Wait(kWait).ok());
    server_stderr_ = server->stderr_text();
  }

  // Waits until export `id`'s target (down) has its windows queued and retried.
  void AwaitRetrying(const std::string& id) const {
    bool retrying = false;
    for (int i = 0; i < 100 && !retrying; ++i) {
      const ProcessResult status = Cli({"status", id});
      retrying = status.out.find("retries 0,") == std::string::npos &&
                 status.out.find("retries ") != std::string::npos;
      if (!retrying) absl::SleepFor(absl::Milliseconds(100));
    }
    ASSERT_TRUE(retrying) << Cli({"status", id}).out;
    EXPECT_THAT(Cli({"status", id, "--json"}).out,
                ContainsRegex("\"pointsPending\": \"[1-9][0-9]*\""));
  }

  // A target URL on a free loopback port where nothing listens (yet), in the export's config.
  int DownTarget() {
    absl::StatusOr<int> port = PickFreePort();
    EXPECT_TRUE(port.ok()) << port.status();
    if (!port.ok()) return 0;
    WriteConfig(absl::StrCat("http://127.0.0.1:", *port, "/api/v1/write"));
    return *port;
  }

  // The rwexport queue files in data_dir_/queue (the targets' durable queues).
  std::vector<std::string> QueueFiles() const {
    std::vector<std::string> out;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(data_dir_ + "/queue", error)) {
      const std::string name = entry.path().filename().string();
      if (name.size() > 8 && name.substr(name.size() - 8) == ".rwspool") out.push_back(name);
    }
    return out;
  }

  PrometheusServer* prometheus_ = nullptr;  // one for the whole binary
  std::string name_;
  std::string data_dir_;
  std::string run_;
  std::string config_;
  std::string server_flag_;
  std::string server_stderr_;  // of the last server StopServer stopped
};

TEST_F(CrashPointsTest, StartExportRecordedButNotAnsweredComesBackRunning) {
  std::unique_ptr<Subprocess> server = StartServer("start_export.after_record");
  ASSERT_NE(server, nullptr);
  const ProcessResult start = Cli({"start", "--config=" + config_, "--test_run_id=" + run_});
  EXPECT_NE(start.exit_code, 0);
  EXPECT_EQ(start.out, "");
  ASSERT_NO_FATAL_FAILURE(ExpectKilledAt(server, "start_export.after_record"));

  // Documented: no export, or a running one the client never heard of. The record was durable:
  // running, with the run's test run id and configuration.
  server = StartServer("");
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(), HasSubstr("exports_recovered=1 unrecoverable=0"));
  const std::vector<std::string> rows = Running();
  ASSERT_THAT(rows, SizeIs(1));
  EXPECT_THAT(rows[0], ContainsRegex(" " + run_ + " +running "));
  const std::string id = rows[0].substr(0, rows[0].find(' '));
  const ProcessResult status = Cli({"status", id});
  EXPECT_THAT(status.out, HasSubstr("test run:  " + run_ + "\n"));
  EXPECT_THAT(status.out, HasSubstr("target 0:  " + prometheus_->remote_write_url()));
  EXPECT_THAT(status.out, HasSubstr("resampleRate 1s"));
  // It works like any export.
  Replay(id);
  ExpectWholeRunStopped(Cli({"stop", id}));
  ExpectTotalsInPrometheus();
  EXPECT_THAT(Running(), SizeIs(0));
  StopServer(server);
}

TEST_F(CrashPointsTest, StopExportBeforeItsStoppedRecordLeavesItRunning) {
  std::unique_ptr<Subprocess> server = StartServer("stop_export.before_stopped_record");
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport();
  Replay(id);
  const ProcessResult stop = Cli({"stop", id});
  EXPECT_NE(stop.exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(ExpectKilledAt(server, "stop_export.before_stopped_record"));
  // The stop had delivered every window before the kill.
  ExpectFinanceRunTotals(*prometheus_, run_);
  EXPECT_FALSE(Exists(absl::StrCat(data_dir_, "/stopped/", id, ".binpb")));

  // Running (not stopped): its figures rebuilt from the log, and a stop works.
  server = StartServer("");
  ASSERT_NE(server, nullptr);
  const std::vector<std::string> rows = Running();
  ASSERT_THAT(rows, SizeIs(1));
  EXPECT_THAT(rows[0], ContainsRegex("^" + id + " +" + run_ + " +running "));
  const ProcessResult status = Cli({"status", id});
  EXPECT_THAT(status.out, HasSubstr("samples:   802 accepted"));
  const ProcessResult again = Cli({"stop", id});
  ExpectWholeRunStopped(again);
  // Everything had been delivered: nothing is sent again (Prometheus would refuse older
  // windows as out of order); the points the crashed process delivered count as sent.
  EXPECT_THAT(again.out, ContainsRegex("points sent [1-9][0-9]*, requests 0,"));
  EXPECT_THAT(again.out, HasSubstr("points dropped 0"));
  ExpectTotalsInPrometheus();
  // A retried stop answers the same.
  EXPECT_EQ(Cli({"stop", id}).out, again.out);
  StopServer(server);
}

TEST_F(CrashPointsTest, StopExportAfterItsStoppedRecordLeavesItStopped) {
  std::unique_ptr<Subprocess> server = StartServer("stop_export.after_stopped_record");
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport();
  Replay(id);
  EXPECT_NE(Cli({"stop", id}).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(ExpectKilledAt(server, "stop_export.after_stopped_record"));
  // Both records on disk: the crash came between writing the one and removing the other.
  EXPECT_TRUE(Exists(absl::StrCat(data_dir_, "/stopped/", id, ".binpb")));
  EXPECT_TRUE(Exists(absl::StrCat(data_dir_, "/exports/", id, ".binpb")));

  server = StartServer("");
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(), HasSubstr("exports_recovered=0 unrecoverable=0 "
                                               "corrupt_files=0 stopped_kept=1"));
  EXPECT_FALSE(Exists(absl::StrCat(data_dir_, "/exports/", id, ".binpb")));
  EXPECT_THAT(Running(), SizeIs(0));  // never both
  EXPECT_THAT(Cli({"status", id}).err, HasSubstr("NOT_FOUND"));
  const ProcessResult retry = Cli({"stop", id});
  ExpectWholeRunStopped(retry);
  EXPECT_THAT(retry.out, Not(HasSubstr("points sent 0,")));
  ExpectTotalsInPrometheus();
  StopServer(server);
}

TEST_F(CrashPointsTest, StopExportAfterItsRunningRecordWasRemovedLeavesItStopped) {
  std::unique_ptr<Subprocess> server = StartServer("stop_export.after_running_removed");
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport();
  Replay(id);
  EXPECT_NE(Cli({"stop", id}).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(ExpectKilledAt(server, "stop_export.after_running_removed"));

  server = StartServer("");
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(), HasSubstr("exports_recovered=0 unrecoverable=0 "
                                               "corrupt_files=0 stopped_kept=1"));
  EXPECT_THAT(Running(), SizeIs(0));
  const ProcessResult retry = Cli({"stop", id});
  ExpectWholeRunStopped(retry);
  EXPECT_EQ(Cli({"stop", id}).out, retry.out);
  ExpectTotalsInPrometheus();
  StopServer(server);
}

TEST_F(CrashPointsTest, ABatchDurableButNotAcknowledgedIsResentAndCountedOnce) {
  // No window closes before the stop (lateness 10m): what is checked here is the log and the
  // acknowledgements. (Windows delivered in the last tick before a kill are sent again after
  // it: README "What is not exact yet".)
  std::unique_ptr<Subprocess> server = StartServer("wal.after_sync");
  ASSERT_NE(server, nullptr);
  const std::string listen = Listen();
  const std::string id = StartExport();
  // The first batch made durable kills the server before its ack; the replay resumes against
  // the restarted server by itself.
  absl::StatusOr<std::unique_ptr<Subprocess>> replay =
      Subprocess::Start(RunfilePath("client/rwexport"),
                        {"replay", K6TestdataFile("finance-run.json"), "--export_id=" + id,
                         "--batch_size=100", "--resume_timeout=60s", server_flag_});
  ASSERT_TRUE(replay.ok()) << replay.status();
  ASSERT_NO_FATAL_FAILURE(ExpectKilledAt(server, "wal.after_sync"));

  server = StartServer("", listen);
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(), ContainsRegex("wal replayed exports=1 batches=[1-9]"));
  absl::StatusOr<int> replayed = (*replay)->Wait(absl::Seconds(60));
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(*replayed, 0) << (*replay)->stderr_text();
  EXPECT_THAT((*replay)->stderr_text(), HasSubstr("resumed stream"));
  const ProcessResult json = Cli({"status", id, "--json"});
  EXPECT_THAT(json.out, ContainsRegex("\"duplicateBatches\": \"[1-9][0-9]*\""));
  ExpectWholeRunStopped(Cli({"stop", id}));
  ExpectTotalsInPrometheus();
  StopServer(server);
}

TEST_F(CrashPointsTest, SigkillWhileTheTargetIsDownDeliversEverythingOnceItIsUp) {
  // The target's port is closed until after the kill; then a real Prometheus listens there.
  const int port = DownTarget();
  ASSERT_NE(port, 0);
  std::unique_ptr<Subprocess> server = StartServer("", "", "1s");
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport();
  Replay(id);
  // Windows close after 1 s and are retried against the closed port.
  ASSERT_NO_FATAL_FAILURE(AwaitRetrying(id));
  ASSERT_NO_FATAL_FAILURE(SigkillServer(server, kWait));
  // The queued points are in the target's durable queue (written before they were sent).
  EXPECT_THAT(QueueFiles(), Not(IsEmpty()));

  PrometheusServer::Options options;
  options.port = port;
  absl::StatusOr<std::unique_ptr<PrometheusServer>> target = PrometheusServer::Start(options);
  ASSERT_TRUE(target.ok()) << target.status();
  server = StartServer("", "", "1s");
  ASSERT_NE(server, nullptr);
  const ProcessResult stop = Cli({"stop", id});
  ExpectWholeRunStopped(stop);
  EXPECT_THAT(stop.out, HasSubstr("failures 0"));
  // No point twice: Prometheus refused nothing as out of order or duplicate.
  EXPECT_THAT(stop.out, Not(HasSubstr("already stored")));
  EXPECT_THAT(stop.out, Not(HasSubstr("duplicate on retry")));
  ExpectFinanceRunTotals(**target, run_);
  EXPECT_THAT((*target)->LogTail(50), Not(HasSubstr("out of order")));
  EXPECT_THAT(QueueFiles(), IsEmpty());  // removed once delivered
  StopServer(server);
  // The restart delivered the crashed process's queue (not a replay of the log).
  EXPECT_THAT(server_stderr_, ContainsRegex("export recovered from the data dir .*"
                                            "queued_points_recovered=[1-9][0-9]*"));
  EXPECT_THAT(server_stderr_, HasSubstr("remote-write target resumes its queue from disk"));
  const size_t at = server_stderr_.find("queued_points_recovered=");
  if (at != std::string::npos) {
    std::printf("queue recovered after the SIGKILL: %s\n",
                server_stderr_.substr(at, server_stderr_.find_first_of(" \n", at) - at).c_str());
  }
}

// A StopExport whose delivery deadline passes with the target down counts the queued points as
// dropped (shutdown_timeout) but keeps their queue files until its stopped record is written:
// killed before that record, the restart finds the export running and the files, and delivers
// them.
TEST_F(CrashPointsTest, StopPastItsDeadlineKilledBeforeItsStoppedRecordKeepsTheQueue) {
  const int port = DownTarget();
  ASSERT_NE(port, 0);
  std::unique_ptr<Subprocess> server = StartServer("stop_export.before_stopped_record", "", "1s");
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport();
  Replay(id);
  ASSERT_NO_FATAL_FAILURE(AwaitRetrying(id));
  EXPECT_NE(Cli({"stop", id, "--delivery_timeout=1s"}).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(ExpectKilledAt(server, "stop_export.before_stopped_record"));
  EXPECT_THAT(QueueFiles(), Not(IsEmpty()));  // dropped at the deadline, not deleted yet
  EXPECT_FALSE(Exists(absl::StrCat(data_dir_, "/stopped/", id, ".binpb")));

  PrometheusServer::Options options;
  options.port = port;
  absl::StatusOr<std::unique_ptr<PrometheusServer>> target = PrometheusServer::Start(options);
  ASSERT_TRUE(target.ok()) << target.status();
  server = StartServer("", "", "1s");
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(), HasSubstr("exports_recovered=1 unrecoverable=0"));
  EXPECT_THAT(Running(), SizeIs(1));
  const ProcessResult stop = Cli({"stop", id});
  ExpectWholeRunStopped(stop);
  // Every window delivered once, from the queue files (the replay suppressed them).
  EXPECT_THAT(stop.out, Not(HasSubstr("already stored")));
  ExpectFinanceRunTotals(**target, run_);
  EXPECT_THAT((*target)->LogTail(50), Not(HasSubstr("out of order")));
  EXPECT_THAT(QueueFiles(), IsEmpty());
  StopServer(server);
  EXPECT_THAT(server_stderr_, HasSubstr("remote-write target resumes its queue from disk"));
  EXPECT_THAT(server_stderr_, ContainsRegex("export recovered from the data dir .*"
                                            "queued_points_recovered=[1-9][0-9]*"));
  // The target was down until the kill: every point the stop counts as sent was delivered by
  // the restarted process (none only counted, its window suppressed with its file gone).
  auto figure = [this](const std::string& line, const std::string& name) {
    const size_t at = server_stderr_.find(line);
    if (at == std::string::npos) return std::string("missing");
    const size_t value = server_stderr_.find(name + "=", at) + name.size() + 1;
    return server_stderr_.substr(value, server_stderr_.find_first_of(" \n", value) - value);
  };
  const std::string delivered = figure("remote-write target removed", "points_sent");
  EXPECT_THAT(delivered, ContainsRegex("^[1-9][0-9]*$"));
  EXPECT_EQ(figure("export stopped", "points_sent"), delivered);
}

// Killed after its stopped record (the running one removed) but before the queue files of the
// points dropped at the deadline were deleted: the restart finds the export stopped, with
// figures that count every point as dropped (the retried StopExport answers them), and deletes
// the files (no export's any more).
TEST_F(CrashPointsTest, StopPastItsDeadlineKilledAfterItsStoppedRecordCountsTheDrops) {
  ASSERT_NE(DownTarget(), 0);
  std::unique_ptr<Subprocess> server = StartServer("stop_export.after_running_removed", "", "1s");
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport();
  Replay(id);
  ASSERT_NO_FATAL_FAILURE(AwaitRetrying(id));
  EXPECT_NE(Cli({"stop", id, "--delivery_timeout=1s"}).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(ExpectKilledAt(server, "stop_export.after_running_removed"));
  EXPECT_THAT(QueueFiles(), Not(IsEmpty()));  // the kill came before their deletion

  server = StartServer("", "", "1s");
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->stderr_text(), HasSubstr("exports_recovered=0 unrecoverable=0 "
                                               "corrupt_files=0 stopped_kept=1"));
  // The files' points, deleted at start: exactly those the figures count as dropped.
  const std::string log = server->stderr_text();
  const std::string deleted = "queued remote-write batches of exports no longer running deleted ";
  const size_t line = log.find(deleted);
  ASSERT_NE(line, std::string::npos) << log;
  const size_t at = log.find("points=", line);
  ASSERT_NE(at, std::string::npos) << log;
  const std::string points = log.substr(at + 7, log.find_first_of(" \n", at) - at - 7);
  EXPECT_THAT(points, ContainsRegex("^[1-9][0-9]*$"));
  EXPECT_THAT(QueueFiles(), IsEmpty());
  EXPECT_THAT(Running(), SizeIs(0));
  const ProcessResult retry = Cli({"stop", id, "--allow_drops"});
  EXPECT_EQ(retry.exit_code, 0) << retry.out << retry.err;
  EXPECT_THAT(retry.out, HasSubstr("samples accepted: 802, rejected: 0"));
  EXPECT_THAT(retry.out, HasSubstr("points sent 0, "));
  EXPECT_THAT(retry.out, HasSubstr(absl::StrCat("points dropped ", points, ",")));
  EXPECT_THAT(retry.out, HasSubstr(absl::StrCat("dropped shutdown_timeout: ", points, "\n")));
  std::printf("points dropped at the deadline, their files deleted at the restart: %s\n",
              points.c_str());
  StopServer(server);
}

}  // namespace
}  // namespace rwexport
