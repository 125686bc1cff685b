// The real rwexport binary (//client:rwexport), run as a child process: usage, per-command
// help, one-line errors, and commands against the gRPC server in-process.
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "lib/client/sample_stream.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_server.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

ProcessResult RunCli(const std::vector<std::string>& args) {
  absl::StatusOr<ProcessResult> result = RunProcess(RunfilePath("client/rwexport"), args);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines;
}

// Asserts that `err` is exactly one line, ending in a newline, and returns it.
std::string OneLine(const std::string& err) {
  EXPECT_EQ(Lines(err).size(), 1u) << err;
  EXPECT_FALSE(err.empty() || err.back() != '\n') << err;
  return err.empty() ? "" : err.substr(0, err.size() - 1);
}

std::string WriteFile(const std::string& name, const std::string& content) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
  std::ofstream(path) << content;
  return path;
}

// `bench --data_dir`: the measured server writes every batch to a write-ahead log in a fresh
// subdirectory, which a successful bench removes; every sample sent is accepted.
TEST(CliTest, BenchWithADataDirAcceptsEverySampleAndLeavesTheDirectoryEmpty) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/bench_data_dir");
  ASSERT_TRUE(std::filesystem::create_directory(dir));
  const ProcessResult r =
      RunCli({"bench", "--data_dir=" + dir, "--null_sink=false", "--mode=compact", "--duration=1s",
              "--streams=2", "--server_workers=1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json report = nlohmann::json::parse(r.out);
  ASSERT_EQ(report["phases"].size(), 1u);
  const nlohmann::json& phase = report["phases"][0];
  EXPECT_EQ(phase["server"], "rwexport");
  EXPECT_GT(phase["samplesSent"].get<uint64_t>(), 0u);
  EXPECT_EQ(phase["samplesAccepted"], phase["samplesSent"]);
  EXPECT_EQ(phase["samplesRejected"], 0);
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(CliTest, BenchWithADataDirThatIsNotADirectoryExits1) {
  const ProcessResult r = RunCli({"bench", "--data_dir=/nonexistent/rwexport-bench"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(OneLine(r.err), "rwexport: --data_dir: /nonexistent/rwexport-bench is not a directory");
  EXPECT_THAT(r.out, IsEmpty());
}

TEST(CliTest, NoArgumentsPrintsUsageAndExits2) {
  const ProcessResult r = RunCli({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_THAT(r.err, HasSubstr("Usage: rwexport COMMAND"));
  for (const char* command : {"start", "stop", "replay", "demo"}) {
    EXPECT_THAT(r.err, HasSubstr(absl::StrCat("  ", command, " "))) << command;
  }
}

TEST(CliTest, HelpPrintsUsageOnStdout) {
  const ProcessResult r = RunCli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: rwexport COMMAND"));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST(CliTest, HelpListsEveryFlagWithItsDefault) {
  const ProcessResult r = RunCli({"--help"});
  EXPECT_THAT(r.out, HasSubstr("  --server=127.0.0.1:50051\n      Address of rwexport_server"));
  EXPECT_THAT(r.out, HasSubstr("  --batch_size=1000\n"));
  EXPECT_THAT(r.out, HasSubstr("  --delivery_timeout=30s\n"));
}

TEST(CliTest, VersionPrintsVersionRevisionAndBuildDate) {
  const ProcessResult r = RunCli({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, MatchesRegex("rwexport version [0-9]+\\.[0-9]+\\.[0-9]+ \\(revision "
                                  "([0-9a-f]{12}(-dirty)?|unknown), built [0-9T:-]+Z\\)\n"));
}

TEST(CliTest, UnknownCommandIsOneLineNamingItAndExits2) {
  const ProcessResult r = RunCli({"frobnicate", "--server=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_THAT(OneLine(r.err), StartsWith("rwexport: unknown command \"frobnicate\""));
}

TEST(CliTest, EachCommandHasItsHelp) {
  for (const char* command : {"start", "stop", "replay", "demo"}) {
    const ProcessResult r = RunCli({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_THAT(r.out, StartsWith(absl::StrCat("rwexport ", command, " "))) << command;
    EXPECT_THAT(r.err, IsEmpty()) << command;
  }
  // Each help is about its own command.
  EXPECT_THAT(RunCli({"replay", "--help"}).out, HasSubstr("--keep_timestamps"));
  EXPECT_THAT(RunCli({"stop", "--help"}).out, HasSubstr("--delivery_timeout"));
  EXPECT_THAT(RunCli({"demo", "--help"}).out, HasSubstr("--remote_write_url"));
  EXPECT_THAT(RunCli({"start", "--help"}).out, HasSubstr("--test_run_id"));
}

TEST(CliTest, StartWithoutConfigIsOneLine) {
  const ProcessResult r = RunCli({"start", "--test_run_id=x", "--server=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_EQ(OneLine(r.err), "rwexport: INVALID_ARGUMENT: --config: required");
}

TEST(CliTest, StartWithAnUnreadableConfigIsOneLine) {
  const ProcessResult r = RunCli(
      {"start", "--config=/nonexistent/apm.json", "--test_run_id=x", "--server=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(OneLine(r.err), HasSubstr("/nonexistent/apm.json"));
}

TEST(CliTest, BadFlagValueIsOneLine) {
  const ProcessResult r = RunCli({"replay", "x.json", "--pace=slow", "--export_id=e"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(OneLine(r.err), HasSubstr("--pace"));
  const ProcessResult unknown = RunCli({"start", "--no_such_flag"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(OneLine(unknown.err), HasSubstr("no_such_flag"));
}

TEST(CliTest, ReplayWithoutAnExportIsRefusedBeforeItReads) {
  // Not after waiting up to --idle_timeout for the followed file to appear.
  const ProcessResult r = RunCli({"replay", "/nonexistent/results.json", "--follow"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(OneLine(r.err), "rwexport: INVALID_ARGUMENT: --config (or --export_id): required");
}

TEST(CliTest, StopNeedsExactlyOneArgument) {
  const ProcessResult r = RunCli({"stop", "--server=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(OneLine(r.err), HasSubstr("export id"));
}

class CliServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
  }
  std::string ServerFlag() const { return absl::StrCat("--server=", server_.address()); }

  std::unique_ptr<FakeReceiver> receiver_;
  TestServer server_;
};

TEST_F(CliServerTest, StartWithABadFieldIsOneLineNamingIt) {
  // Refused by the server's validation.
  const std::string range =
      WriteFile("range.json", absl::StrCat(R"([{"provider": "prometheus", "remoteWriteURL": ")",
                                           receiver_->Url(), R"(", "resampleRate": 11}])"));
  ProcessResult r = RunCli({"start", "--config=" + range, "--test_run_id=x", ServerFlag()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_THAT(OneLine(r.err),
              MatchesRegex("rwexport: INVALID_ARGUMENT: .*targets\\[0\\]\\.resampleRate.*"));

  // Refused while reading the file (wrong JSON type).
  const std::string type = WriteFile(
      "type.json", absl::StrCat(R"({"apm": [{"provider": "prometheus", "remoteWriteURL": ")",
                                receiver_->Url(), R"(", "includeTestRunId": "yes"}]})"));
  r = RunCli({"start", "--config=" + type, "--test_run_id=x", ServerFlag()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(OneLine(r.err), HasSubstr("includeTestRunId"));
  EXPECT_EQ(server_.registry().size(), 0u);
}

TEST_F(CliServerTest, StartPrintsTheIdAndStopItsFigures) {
  const std::string config =
      WriteFile("ok.json", absl::StrCat(R"([{"provider": "prometheus", "remoteWriteURL": ")",
                                        receiver_->Url(), R"(", "metrics": ["my-metric"]}])"));
  const ProcessResult started =
      RunCli({"start", "--config=" + config, "--test_run_id=cli", ServerFlag()});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const std::vector<std::string> out = Lines(started.out);
  ASSERT_EQ(out.size(), 1u) << started.out;
  const std::string id = out[0];
  EXPECT_NE(server_.registry().Find(id), nullptr);
  // The skipped entry is listed on stderr.
  EXPECT_THAT(started.err, HasSubstr("skipped metric my-metric"));

  const ProcessResult stopped = RunCli({"stop", id, ServerFlag()});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_THAT(stopped.out, HasSubstr("samples accepted: 0, rejected: 0"));
  EXPECT_THAT(stopped.out, HasSubstr(absl::StrCat("target ", receiver_->Url())));
  EXPECT_EQ(server_.registry().size(), 0u);
}

TEST_F(CliServerTest, StopOfAnUnknownIdIsOneLineWithNotFound) {
  const ProcessResult r = RunCli({"stop", "no-such-export", ServerFlag()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out, IsEmpty());
  const std::string line = OneLine(r.err);
  EXPECT_THAT(line, StartsWith("rwexport: NOT_FOUND: "));
  EXPECT_THAT(line, HasSubstr("no-such-export"));
}

TEST_F(CliServerTest, ReplayWithConfigStartsReplaysAndStops) {
  const std::string config = WriteFile(
      "replay.json", absl::StrCat(R"({"apm": [{"provider": "prometheus", "remoteWriteURL": ")",
                                  receiver_->Url(), R"(", "resampleRate": 1}]})"));
  const ProcessResult r = RunCli({"replay", K6TestdataFile("finance-run.json"),
                                  "--config=" + config, "--test_run_id=cli-replay", ServerFlag()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("16 metrics, 802 samples, 0 malformed lines"));
  EXPECT_THAT(r.out, HasSubstr("server accepted 802, rejected 0"));
  EXPECT_THAT(r.out, HasSubstr("samples accepted: 802, rejected: 0"));
  EXPECT_THAT(r.err, HasSubstr("started export "));
  // The export was stopped and its points delivered.
  EXPECT_EQ(server_.registry().size(), 0u);
  EXPECT_GT(receiver_->RequestCount(), 0u);
}

// Ages carry units ("up 0" read as a count), and both series figures are shown: a trend is
// one aggregation series but 8 exported series (one per default statistic).
TEST_F(CliServerTest, StatusAndLsShowAgesWithUnitsAndBothSeriesCounts) {
  const std::string config =
      WriteFile("series.json",
                absl::StrCat(R"([{"provider": "prometheus", "remoteWriteURL": ")", receiver_->Url(),
                             R"(", "includeDefaultMetrics": false,
                       "metrics": ["http_req_duration", "vus"]}])"));
  const ProcessResult started =
      RunCli({"start", "--config=" + config, "--test_run_id=cli-series", ServerFlag()});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const std::string id = Lines(started.out).at(0);
  {
    auto stub = server_.NewStub();
    SampleStream stream(stub.get(), id);
    const int64_t now = absl::ToUnixNanos(absl::Now());
    stream.Add("http_req_duration", {{"status", "200"}}, now, 120);
    stream.Add("vus", {}, now, 3);
    absl::StatusOr<v1::StreamSamplesResponse> streamed = stream.Finish();
    ASSERT_TRUE(streamed.ok()) << streamed.status();
    ASSERT_EQ(streamed->accepted(), 2u);
  }

  const ProcessResult status = RunCli({"status", id, ServerFlag()});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, MatchesRegex("(.|\n)*state: +running, up [0-9]+s, (.|\n)*"));
  EXPECT_THAT(status.out, HasSubstr("figures: series 9 exported (2 aggregated)"));

  const ProcessResult ls = RunCli({"ls", ServerFlag()});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  const std::vector<std::string> rows = Lines(ls.out);
  ASSERT_EQ(rows.size(), 2u) << ls.out;
  EXPECT_THAT(rows[0], HasSubstr("SERIES EXP/AGG"));
  EXPECT_THAT(rows[1],
              MatchesRegex(absl::StrCat(id, " +cli-series +running +[0-9]+s +[0-9]+ +2 +9/2 .*")));

  const ProcessResult json = RunCli({"status", id, "--json", ServerFlag()});
  EXPECT_THAT(json.out, HasSubstr("\"exportedSeries\": \"9\""));
  const ProcessResult stopped = RunCli({"stop", id, ServerFlag()});
  EXPECT_THAT(stopped.out, HasSubstr(": series 9 exported (2 aggregated), points sent "));
}

TEST_F(CliServerTest, ReplayIntoAnUnknownExportIsOneLine) {
  const ProcessResult r = RunCli(
      {"replay", K6TestdataFile("finance-run.json"), "--export_id=no-such-export", ServerFlag()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(OneLine(r.err), StartsWith("rwexport: NOT_FOUND: "));
}

TEST_F(CliServerTest, StartAndStopJsonShowEffectiveValuesAndNumericCounts) {
  const std::string config =
      WriteFile("json.json", absl::StrCat(R"([{"provider": "prometheus", "remoteWriteURL": ")",
                                          receiver_->Url(), R"(", "timeoutMs": 0}])"));
  const ProcessResult started =
      RunCli({"start", "--json", "--config=" + config, "--test_run_id=json", ServerFlag()});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  const nlohmann::json start = nlohmann::json::parse(started.out, nullptr, false);
  ASSERT_TRUE(start.is_object()) << started.out;
  const std::string id = start.value("exportId", "");
  EXPECT_NE(server_.registry().Find(id), nullptr);
  EXPECT_EQ(start["testRunId"], "json");
  const nlohmann::json& target = start["targets"][0];
  EXPECT_EQ(target["timeoutMs"], 10000);  // 0 in the file means the default
  EXPECT_EQ(target["resampleRate"], 3);
  EXPECT_EQ(target["includeDefaultMetrics"], true);
  EXPECT_EQ(target["exportedMetrics"].size(), 6u);

  const ProcessResult stopped = RunCli({"stop", "--json", id, ServerFlag()});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  const nlohmann::json stop = nlohmann::json::parse(stopped.out, nullptr, false);
  ASSERT_TRUE(stop.is_object()) << stopped.out;
  EXPECT_EQ(stop["exportId"], id);
  EXPECT_TRUE(stop["samplesAccepted"].is_number_unsigned()) << stopped.out;
  EXPECT_EQ(stop["samplesAccepted"], 0);
  EXPECT_TRUE(stop["targets"][0]["pointsSent"].is_number_unsigned()) << stopped.out;
  EXPECT_TRUE(stop["targets"][0]["bytesSent"].is_number_unsigned()) << stopped.out;
  EXPECT_EQ(stop["pointsDropped"], 0);
  EXPECT_EQ(stop["exitCode"], 0);
}

TEST_F(CliServerTest, ReplayToATargetAnswering404ExitsWith3UnlessDropsAreAllowed) {
  receiver_->SetDefault(FakeResponse::WithStatus(404, "no such path"));
  const std::string config =
      WriteFile("404.json", absl::StrCat(R"([{"provider": "prometheus", "remoteWriteURL": ")",
                                         receiver_->Url(), R"(", "resampleRate": 1}])"));
  const std::vector<std::string> replay = {"replay", K6TestdataFile("finance-run.json"),
                                           "--config=" + config, "--test_run_id=404", ServerFlag()};
  ProcessResult r = RunCli(replay);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_THAT(r.out, HasSubstr("dropped http_404: "));
  EXPECT_THAT(r.err, HasSubstr("points dropped (--allow_drops accepts that)"));
  EXPECT_THAT(r.err, Not(HasSubstr("\r")));  // no progress line when stderr is no terminal

  std::vector<std::string> allowed = replay;
  allowed.push_back("--allow_drops");
  allowed.push_back("--json");
  r = RunCli(allowed);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json doc = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << r.out;
  EXPECT_EQ(doc["input"]["samples"], 802);
  EXPECT_EQ(doc["stream"]["accepted"], 802);
  EXPECT_GT(doc["stop"]["pointsDropped"].get<uint64_t>(), 0u);
  EXPECT_EQ(doc["exitCode"], 0);
  EXPECT_EQ(server_.registry().size(), 0u);
}

TEST_F(CliServerTest, ReplayOfMalformedLinesExitsWith4UnlessRejectsAreAllowed) {
  std::ifstream in(K6TestdataFile("finance-run.json"));
  std::string text, line;
  for (int i = 0; i < 30 && std::getline(in, line); ++i) absl::StrAppend(&text, line, "\n");
  absl::StrAppend(&text, "{\"metric\":\"http_reqs\",\"type\":\"Point\",\n");
  const std::string file = WriteFile("malformed.json", text);
  const std::string config =
      WriteFile("m.json", absl::StrCat(R"([{"provider": "prometheus", "remoteWriteURL": ")",
                                       receiver_->Url(), R"("}])"));
  const std::vector<std::string> replay = {"replay", file, "--config=" + config, "--test_run_id=m",
                                           ServerFlag()};
  ProcessResult r = RunCli(replay);
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_THAT(r.err, HasSubstr("malformed.json:31: "));
  EXPECT_THAT(r.err, HasSubstr("1 input lines malformed"));
  std::vector<std::string> allowed = replay;
  allowed.push_back("--allow_rejects");
  EXPECT_EQ(RunCli(allowed).exit_code, 0);
}

TEST_F(CliServerTest, ReplayChecksItsInputBeforeStartingAnExport) {
  const std::string file = WriteFile("empty.json", "\n");
  const std::string config =
      WriteFile("e.json", absl::StrCat(R"([{"provider": "prometheus", "remoteWriteURL": ")",
                                       receiver_->Url(), R"("}])"));
  ProcessResult r = RunCli({"replay", file, "--config=" + config, "--test_run_id=e", ServerFlag()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(OneLine(r.err), HasSubstr("empty.json holds no k6 sample"));
  r = RunCli(
      {"replay", "/nonexistent.json", "--config=" + config, "--test_run_id=e", ServerFlag()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(OneLine(r.err), HasSubstr("not found: /nonexistent.json"));
  EXPECT_EQ(server_.registry().size(), 0u);
  EXPECT_EQ(server_.registry().Find("e"), nullptr);
}

TEST_F(CliServerTest, SigintStopsTheExportReplayStartedPrintsItsFiguresAndExits130) {
  const std::string config =
      WriteFile("sigint.json", absl::StrCat(R"([{"provider": "prometheus", "remoteWriteURL": ")",
                                            receiver_->Url(), R"(", "resampleRate": 1}])"));
  // At the recorded pace the run takes a minute.
  absl::StatusOr<std::unique_ptr<Subprocess>> replay =
      Subprocess::Start(RunfilePath("client/rwexport"),
                        {"replay", K6TestdataFile("finance-run.json"), "--pace=recorded",
                         "--config=" + config, "--test_run_id=sigint", ServerFlag()});
  ASSERT_TRUE(replay.ok()) << replay.status();
  ASSERT_TRUE((*replay)->WaitForStderr("started export ", absl::Seconds(20)))
      << (*replay)->stderr_text();
  const std::string err = (*replay)->stderr_text();
  const std::string id = Lines(err.substr(err.find("started export ") + 15))[0];
  ASSERT_NE(server_.registry().Find(id), nullptr) << id;

  (*replay)->Kill(SIGINT);
  absl::StatusOr<int> code = (*replay)->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 130) << (*replay)->stderr_text();
  EXPECT_THAT((*replay)->stdout_text(), HasSubstr("samples accepted: "));
  EXPECT_THAT((*replay)->stdout_text(), HasSubstr(absl::StrCat("target ", receiver_->Url())));
  EXPECT_THAT((*replay)->stderr_text(), HasSubstr("SIGINT: stopping"));
  auto stub = server_.NewStub();
  EXPECT_EQ(GetExportRpc(*stub, id).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rwexport
