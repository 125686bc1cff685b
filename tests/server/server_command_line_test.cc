// rwexport_server's command line as an operator meets it: --help lists every flag with its
// default and meaning, --version, flags from RWEXPORT_* environment variables (the command line
// and --flagfile win; unknown variables are warned about; bad values stop it), --flagfile.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

std::string ServerBinary() { return RunfilePath("server/rwexport_server"); }

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Sets environment variables for the children started in its scope.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::initializer_list<std::pair<std::string, std::string>> vars)
      : vars_(vars) {
    for (const auto& [name, value] : vars_) setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : vars_) unsetenv(name.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::string>> vars_;
};

// Starts the server with `args`, waits until it listens, stops it with SIGTERM; returns its
// stderr. The port file must be among the flags (command line, environment or flagfile).
std::string RunUntilListening(const std::vector<std::string>& args, const std::string& port_file) {
  std::remove(port_file.c_str());
  absl::StatusOr<std::unique_ptr<Subprocess>> server = Subprocess::Start(ServerBinary(), args);
  EXPECT_TRUE(server.ok());
  if (!server.ok()) return "";
  const bool listening = (*server)->WaitForStderr("rwexport_server listening", absl::Seconds(15));
  EXPECT_TRUE(listening) << (*server)->stderr_text();
  (*server)->Kill(SIGTERM);
  absl::StatusOr<int> code = (*server)->Wait(absl::Seconds(15));
  EXPECT_TRUE(code.ok() && *code == 0) << (*server)->stderr_text();
  return (*server)->stderr_text();
}

TEST(ServerCommandLineTest, HelpListsEveryFlagWithDefaultAndMeaning) {
  absl::StatusOr<ProcessResult> r = RunProcess(ServerBinary(), {"--help"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_THAT(r->out, HasSubstr("  --listen=127.0.0.1:50051\n      gRPC listen address"));
  for (const char* flag : {"--auth_token_file=\n",
                           "--delivery_timeout=30s\n",
                           "--idle_timeout=1h\n",
                           "--lateness=2s\n",
                           "--log_level=info\n",
                           "--max_backoff=10s\n",
                           "--max_bytes_per_request=4194304\n",
                           "--max_exports=1000\n",
                           "--max_in_flight_per_target=4\n",
                           "--max_message_bytes=67108864\n",
                           "--max_points_per_request=5000\n",
                           "--max_queued_points=2000000\n",
                           "--max_sample_age=1h\n",
                           "--max_series_per_export=250000\n",
                           "--max_series_per_target=100000\n",
                           "--max_streams_per_export=256\n",
                           "--metrics_listen=\n",
                           "--min_backoff=100ms\n",
                           "--port_file=\n",
                           "--replica_id=\n",
                           "--spool_dir=\n",
                           "--spool_max_bytes=1073741824\n",
                           "--tls_cert_file=\n",
                           "--tls_client_ca_file=\n",
                           "--tls_key_file=\n",
                           "--workers=0\n",
                           "--flagfile=FILE\n"}) {
    EXPECT_THAT(r->out, HasSubstr(absl::StrCat("  ", flag))) << flag;
  }
  EXPECT_THAT(r->out, HasSubstr("RWEXPORT_<FLAG_IN_CAPITALS>"));
  EXPECT_THAT(r->out, Not(HasSubstr("No flags matched")));
}

TEST(ServerCommandLineTest, VersionPrintsVersionRevisionAndBuildDate) {
  absl::StatusOr<ProcessResult> r = RunProcess(ServerBinary(), {"--version"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_THAT(r->out, MatchesRegex("rwexport_server version [0-9]+\\.[0-9]+\\.[0-9]+ \\(revision "
                                   "([0-9a-f]{12}(-dirty)?|unknown), built [0-9T:-]+Z\\)\n"));
}

TEST(ServerCommandLineTest, EnvironmentSetsFlagsAndUnknownVariablesAreWarnedAbout) {
  const std::string port_file = TempPath("env.port");
  ScopedEnv env({{"RWEXPORT_LISTEN", "127.0.0.1:0"},
                 {"RWEXPORT_PORT_FILE", port_file},
                 {"RWEXPORT_WORKERS", "1"},
                 {"RWEXPORT_LISTN", "typo"}});
  const std::string err = RunUntilListening({}, port_file);
  EXPECT_THAT(ReadFile(port_file), MatchesRegex("[1-9][0-9]*\n"));
  EXPECT_THAT(err, HasSubstr("workers=1"));
  EXPECT_THAT(err, HasSubstr("rwexport_server: warning: environment variable RWEXPORT_LISTN "
                             "names no flag; ignored\n"));
}

TEST(ServerCommandLineTest, CommandLineAndFlagfileWinOverTheEnvironment) {
  const std::string port_file = TempPath("flagfile.port");
  const std::string flagfile = TempPath("rwexport.flags");
  std::ofstream(flagfile) << "# a comment\n\n--workers=2\n--port_file=" << port_file << "\n";
  ScopedEnv env({{"RWEXPORT_LISTEN", "not-an-address"},
                 {"RWEXPORT_WORKERS", "1"},
                 {"RWEXPORT_PORT_FILE", TempPath("unused.port")}});
  const std::string err =
      RunUntilListening({"--flagfile=" + flagfile, "--listen=127.0.0.1:0"}, port_file);
  EXPECT_THAT(ReadFile(port_file), MatchesRegex("[1-9][0-9]*\n"));
  EXPECT_THAT(err, HasSubstr("workers=2"));
  EXPECT_THAT(err, Not(HasSubstr("warning")));
}

TEST(ServerCommandLineTest, BadEnvironmentValueIsOneLineAndExit2) {
  ScopedEnv env({{"RWEXPORT_MAX_EXPORTS", "lots"}});
  absl::StatusOr<ProcessResult> r = RunProcess(ServerBinary(), {"--listen=127.0.0.1:0"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_THAT(r->err, MatchesRegex("rwexport_server: environment variable RWEXPORT_MAX_EXPORTS "
                                   "\\(--max_exports\\): [^\n]*\n"));
}

TEST(ServerCommandLineTest, ReplicaIdFromTheEnvironmentAndABadOneIsExit2) {
  const std::string port_file = TempPath("replica.port");
  {
    // As the Kubernetes StatefulSet sets it: the pod's name.
    ScopedEnv env({{"RWEXPORT_REPLICA_ID", "rwexport-2"}});
    const std::string err =
        RunUntilListening({"--listen=127.0.0.1:0", "--port_file=" + port_file}, port_file);
    EXPECT_THAT(err, HasSubstr(" replica_id=rwexport-2 "));
  }
  absl::StatusOr<ProcessResult> r =
      RunProcess(ServerBinary(), {"--listen=127.0.0.1:0", "--replica_id=r 0"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_EQ(r->err,
            "rwexport_server: --replica_id: replica id \"r 0\": character 2 is not a letter, "
            "digit, '.', '_' or '-'\n");
}

TEST(ServerCommandLineTest, ADeliveryMarkIntervalOutOfRangeIsExit2) {
  for (const char* value : {"0s", "-1s", "2h"}) {
    SCOPED_TRACE(value);
    absl::StatusOr<ProcessResult> r = RunProcess(
        ServerBinary(), {"--listen=127.0.0.1:0", absl::StrCat("--delivery_mark_interval=", value)});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 2);
    EXPECT_EQ(r->err,
              "rwexport_server: --delivery_mark_interval: must be more than 0 and at most 1h\n");
  }
}

// With --data_dir the targets' durable queues are the spool (<data_dir>/queue).
TEST(ServerCommandLineTest, SpoolDirWithDataDirIsExit2) {
  absl::StatusOr<ProcessResult> r =
      RunProcess(ServerBinary(), {"--listen=127.0.0.1:0", "--data_dir=" + TempPath("data-spool"),
                                  "--spool_dir=" + TempPath("spool")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_EQ(r->err,
            "rwexport_server: --spool_dir: not used with --data_dir (the target queues are in "
            "<data_dir>/queue)\n");
}

}  // namespace
}  // namespace rwexport
