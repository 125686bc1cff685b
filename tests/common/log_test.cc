#include "lib/common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::SizeIs;

// Redirects file descriptor 2 to a temporary file for its lifetime; Take() returns what was
// written so far.
class StderrCapture {
 public:
  StderrCapture() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    path_ = std::string(tmp != nullptr ? tmp : "/tmp") + "/log_test_stderr_XXXXXX";
    fd_ = ::mkstemp(path_.data());
    EXPECT_GE(fd_, 0);
    std::fflush(stderr);
    saved_ = ::dup(2);
    EXPECT_GE(saved_, 0);
    EXPECT_EQ(::dup2(fd_, 2), 2);
  }
  ~StderrCapture() {
    Restore();
    ::close(fd_);
    ::unlink(path_.c_str());
  }

  // Restores fd 2 and returns everything written to it meanwhile.
  std::string Take() {
    Restore();
    std::ifstream in(path_);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }

  std::string path_;
  int fd_ = -1;
  int saved_ = -1;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines;
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { SetLogLevel(LogLevel::kInfo); }
};

TEST(ParseLogLevelTest, AcceptsTheFourLevels) {
  LogLevel level = LogLevel::kError;
  ASSERT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  ASSERT_TRUE(ParseLogLevel("info", &level));
  EXPECT_EQ(level, LogLevel::kInfo);
  ASSERT_TRUE(ParseLogLevel("warning", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  ASSERT_TRUE(ParseLogLevel("warn", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  ASSERT_TRUE(ParseLogLevel("error", &level));
  EXPECT_EQ(level, LogLevel::kError);
}

TEST(ParseLogLevelTest, RejectsOthersAndLeavesLevelAlone) {
  LogLevel level = LogLevel::kWarning;
  for (const char* text : {"", "loud", "INFO", "Debug", "info ", "fatal", "3"}) {
    EXPECT_FALSE(ParseLogLevel(text, &level)) << text;
    EXPECT_EQ(level, LogLevel::kWarning) << text;
  }
}

TEST_F(LogTest, LineHasTimeLevelMessageAndFields) {
  StderrCapture capture;
  LogInfo("export started", {{"export_id", "abc123"}, {"targets", "2"}});
  const std::vector<std::string> lines = Lines(capture.Take());
  ASSERT_THAT(lines, SizeIs(1));
  EXPECT_THAT(lines[0], MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\."
                                     "[0-9]{3}Z INFO export started export_id=abc123 targets=2"));
}

TEST_F(LogTest, EachLevelHasItsName) {
  SetLogLevel(LogLevel::kDebug);
  StderrCapture capture;
  Log(LogLevel::kDebug, "d");
  LogInfo("i");
  LogWarning("w");
  LogError("e");
  const std::vector<std::string> lines = Lines(capture.Take());
  ASSERT_THAT(lines, SizeIs(4));
  EXPECT_THAT(lines[0], MatchesRegex(".*Z DEBUG d"));
  EXPECT_THAT(lines[1], MatchesRegex(".*Z INFO i"));
  EXPECT_THAT(lines[2], MatchesRegex(".*Z WARN w"));
  EXPECT_THAT(lines[3], MatchesRegex(".*Z ERROR e"));
}

TEST_F(LogTest, QuotesValuesWithSpacesQuotesOrEquals) {
  StderrCapture capture;
  LogWarning("request failed", {{"error", "HTTP 400: out of bounds"},
                                {"empty", ""},
                                {"quoted", "say \"hi\""},
                                {"eq", "a=b"},
                                {"newline", "one\ntwo"},
                                {"plain", "http://127.0.0.1:9090/api/v1/write"}});
  const std::string out = capture.Take();
  const std::vector<std::string> lines = Lines(out);
  // The newline inside a value is escaped: still one line.
  ASSERT_THAT(lines, SizeIs(1)) << out;
  EXPECT_THAT(lines[0], HasSubstr(" WARN request failed error=\"HTTP 400: out of bounds\" "
                                  "empty=\"\" quoted=\"say \\\"hi\\\"\" eq=\"a=b\" "
                                  "newline=\"one\\ntwo\" "
                                  "plain=http://127.0.0.1:9090/api/v1/write"));
}

TEST_F(LogTest, MessagesBelowTheLevelAreDropped) {
  SetLogLevel(LogLevel::kWarning);
  StderrCapture capture;
  Log(LogLevel::kDebug, "debug message");
  LogInfo("info message");
  LogWarning("warning message");
  LogError("error message");
  const std::vector<std::string> lines = Lines(capture.Take());
  ASSERT_THAT(lines, SizeIs(2));
  EXPECT_THAT(lines[0], HasSubstr("WARN warning message"));
  EXPECT_THAT(lines[1], HasSubstr("ERROR error message"));
}

TEST_F(LogTest, ErrorLevelKeepsOnlyErrors) {
  SetLogLevel(LogLevel::kError);
  StderrCapture capture;
  LogInfo("info message");
  LogWarning("warning message");
  LogError("error message");
  EXPECT_THAT(Lines(capture.Take()), ElementsAre(HasSubstr("ERROR error message")));
}

TEST_F(LogTest, InfoLevelDropsDebug) {
  SetLogLevel(LogLevel::kInfo);
  StderrCapture capture;
  Log(LogLevel::kDebug, "debug message");
  LogInfo("info message");
  EXPECT_THAT(Lines(capture.Take()), ElementsAre(HasSubstr("INFO info message")));
}

}  // namespace
}  // namespace rwexport
