// DataDir: creation, the lock (in this process and in a second one), unusable paths.
#include "lib/durable/data_dir.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/durable/file_util.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

// A fresh path (not created) under the test's temp dir.
std::string FreshPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "-", getpid());
  return path;
}

int ModeOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 0777);
}

TEST(DataDirTest, CreatesTheDirectoryAndLocksItWithThePid) {
  const std::string path = FreshPath("created");
  absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(path + "/");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ((*dir)->path(), path);
  EXPECT_EQ(ModeOf(path), 0700);
  EXPECT_EQ(ModeOf(path + "/LOCK"), 0600);
  absl::StatusOr<std::string> lock = ReadFileContents(path + "/LOCK");
  ASSERT_TRUE(lock.ok()) << lock.status();
  EXPECT_EQ(*lock, absl::StrCat(getpid(), "\n"));
  absl::StatusOr<std::string> sub = (*dir)->Subdirectory("exports");
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(*sub, path + "/exports");
  EXPECT_EQ(ModeOf(*sub), 0700);
}

TEST(DataDirTest, ASecondOpenInTheSameProcessFailsUntilTheFirstIsClosed) {
  const std::string path = FreshPath("same-process");
  absl::StatusOr<std::unique_ptr<DataDir>> first = DataDir::Open(path);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<DataDir>> second = DataDir::Open(path);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(),
            absl::StrCat("data dir ", path, " is in use by another rwexport_server (pid ", getpid(),
                         ")"));
  first->reset();
  absl::StatusOr<std::unique_ptr<DataDir>> third = DataDir::Open(path);
  EXPECT_TRUE(third.ok()) << third.status();
}

// A child process (fork) tries to open the directory this process holds, and one this process
// does not hold; it reports the status code as its exit code.
TEST(DataDirTest, AnotherProcessCannotOpenALockedDirectory) {
  const std::string held = FreshPath("held");
  const std::string free_path = FreshPath("free");
  absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(held);
  ASSERT_TRUE(dir.ok()) << dir.status();
  for (const auto& [path, expected] :
       {std::pair<std::string, int>{held, static_cast<int>(absl::StatusCode::kFailedPrecondition)},
        std::pair<std::string, int>{free_path, 0}}) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      absl::StatusOr<std::unique_ptr<DataDir>> other = DataDir::Open(path);
      const bool message_ok =
          other.ok() ||
          other.status().message() == absl::StrCat("data dir ", path,
                                                   " is in use by another rwexport_server (pid ",
                                                   getppid(), ")");
      _exit(message_ok ? static_cast<int>(other.status().code()) : 100);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), expected) << path;
  }
  // The child that opened free_path exited: its lock went with it.
  EXPECT_TRUE(DataDir::Open(free_path).ok());
}

TEST(DataDirTest, AFileIsNotADirectory) {
  const std::string path = FreshPath("a-file");
  std::ofstream(path) << "x";
  absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(path);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dir.status().message(), absl::StrCat("data dir ", path, ": not a directory"));
}

TEST(DataDirTest, AMissingParentIsNamedWithTheSystemsReason) {
  const std::string path = FreshPath("no-parent") + "/child";
  absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(path);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dir.status().message(),
            absl::StrCat("data dir ", path, ": cannot create it: No such file or directory"));
}

TEST(DataDirTest, ALockFileThatCannotBeOpenedIsInvalidArgument) {
  // A directory named LOCK: root ignores permission bits, so this is how to make it unusable.
  const std::string path = FreshPath("lock-is-dir");
  ASSERT_EQ(mkdir(path.c_str(), 0700), 0);
  ASSERT_EQ(mkdir((path + "/LOCK").c_str(), 0700), 0);
  absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(path);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dir.status().message(), HasSubstr(absl::StrCat("data dir ", path, ": cannot open ",
                                                             path, "/LOCK: Is a directory")));
}

}  // namespace
}  // namespace rwexport
