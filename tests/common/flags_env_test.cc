#include "lib/common/flags_env.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, test_workers, 3, "Worker threads of the test; 0 means one per core.");
ABSL_FLAG(absl::Duration, test_timeout, absl::Seconds(30), "How long the test waits.");
ABSL_FLAG(std::string, test_listen, "127.0.0.1:50051",
          "A listen address, with a help text long enough that it has to be wrapped onto a "
          "second line by the help printer, which keeps lines short.");

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const FlagsSetup kSetup{"flags_env_test", "usage", {"tests/common/"}, "RWEXPORT_"};

absl::Status Apply(std::vector<std::string> env, std::vector<std::string>* unknown) {
  std::vector<char*> pointers;
  for (std::string& e : env) pointers.push_back(e.data());
  pointers.push_back(nullptr);
  return ApplyFlagsFromEnvironment(kSetup, pointers.data(), unknown);
}

TEST(FlagsEnvTest, VariablesSetFlagsAndUnknownOnesAreReported) {
  std::vector<std::string> unknown;
  ASSERT_TRUE(Apply({"PATH=/usr/bin", "RWEXPORT_TEST_WORKERS=7", "RWEXPORT_TEST_TIMEOUT=1m30s",
                     "RWEXPORT_TEST_LISTN=0.0.0.0:1", "RWEXPORT_test_listen=lower",
                     "RWEXPORT_FLAGFILE=/etc/x", "OTHER_TEST_WORKERS=9", "RWEXPORT_TESTDATA=/data"},
                    &unknown)
                  .ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_test_workers), 7);
  EXPECT_EQ(absl::GetFlag(FLAGS_test_timeout), absl::Seconds(90));
  // Lower case is not the documented spelling; absl's own flags are not the program's.
  EXPECT_EQ(absl::GetFlag(FLAGS_test_listen), "127.0.0.1:50051");
  EXPECT_THAT(unknown,
              ElementsAre("RWEXPORT_TEST_LISTN", "RWEXPORT_test_listen", "RWEXPORT_FLAGFILE"));
}

TEST(FlagsEnvTest, BadValueNamesTheVariableAndTheFlag) {
  std::vector<std::string> unknown;
  absl::Status status = Apply({"RWEXPORT_TEST_WORKERS=many"}, &unknown);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("environment variable RWEXPORT_TEST_WORKERS (--test_workers)"));
}

TEST(FlagsEnvTest, TheCommandLineWins) {
  std::vector<std::string> unknown;
  ASSERT_TRUE(Apply({"RWEXPORT_TEST_LISTEN=10.0.0.1:1", "RWEXPORT_TEST_WORKERS=5"}, &unknown).ok());
  std::string program = "test", arg = "--test_listen=127.0.0.1:9";
  std::vector<char*> argv = {program.data(), arg.data()};
  absl::ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  EXPECT_EQ(absl::GetFlag(FLAGS_test_listen), "127.0.0.1:9");
  EXPECT_EQ(absl::GetFlag(FLAGS_test_workers), 5);
}

TEST(FlagsEnvTest, HelpListsEveryOwnFlagWithDefaultAndMeaning) {
  const std::string help = FlagsHelp(kSetup);
  EXPECT_THAT(help, HasSubstr("RWEXPORT_<FLAG_IN_CAPITALS>"));
  EXPECT_THAT(help, HasSubstr("  --test_workers=3\n"
                              "      Worker threads of the test; 0 means one per core.\n"));
  EXPECT_THAT(help, HasSubstr("  --test_timeout=30s\n      How long the test waits.\n"));
  EXPECT_THAT(help, HasSubstr("  --test_listen=127.0.0.1:50051\n      A listen address,"));
  EXPECT_THAT(help, HasSubstr("  --flagfile=FILE\n"));
  // Sorted by name; wrapped; only the program's own flags.
  EXPECT_LT(help.find("--test_listen="), help.find("--test_timeout="));
  EXPECT_LT(help.find("--test_timeout="), help.find("--test_workers="));
  for (absl::string_view line : absl::StrSplit(help, '\n')) EXPECT_LE(line.size(), 100u) << line;
  EXPECT_THAT(help, Not(HasSubstr("--helpshort")));
}

}  // namespace
}  // namespace rwexport
