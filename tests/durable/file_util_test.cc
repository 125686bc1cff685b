// Atomic writes: content, mode, no temp file left, replacement, errors naming the file.
#include "lib/durable/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string FreshDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "-", getpid());
  EXPECT_EQ(mkdir(path.c_str(), 0700), 0);
  return path;
}

TEST(FileUtilTest, WritesAtomicallyWithMode0600AndLeavesNoTempFile) {
  const std::string dir = FreshDir("atomic");
  const std::string path = dir + "/record.binpb";
  ASSERT_TRUE(WriteFileAtomically(path, std::string("first\0x", 7)).ok());
  absl::StatusOr<std::string> read = ReadFileContents(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::string("first\0x", 7));
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  EXPECT_EQ(*ReadFileContents(path), "second");
  absl::StatusOr<std::vector<std::string>> files = ListFiles(dir);
  ASSERT_TRUE(files.ok());
  EXPECT_THAT(*files, ElementsAre("record.binpb"));
}

TEST(FileUtilTest, AWriteIntoAMissingDirectoryNamesTheFile) {
  const std::string path = FreshDir("missing") + "/no/such/file";
  absl::Status s = WriteFileAtomically(path, "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(),
            absl::StrCat("cannot create a temp file for ", path, ": No such file or directory"));
}

TEST(FileUtilTest, ReadingAMissingFileIsNotFound) {
  const std::string path = FreshDir("read") + "/absent";
  absl::StatusOr<std::string> read = ReadFileContents(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(read.status().message(),
            absl::StrCat("cannot open ", path, ": No such file or directory"));
}

TEST(FileUtilTest, RemoveAndRenameAreDurableAndRemoveToleratesAbsence) {
  const std::string dir = FreshDir("remove");
  ASSERT_TRUE(WriteFileAtomically(dir + "/a", "1").ok());
  ASSERT_TRUE(RenameDurably(dir + "/a", dir + "/b").ok());
  EXPECT_THAT(*ListFiles(dir), ElementsAre("b"));
  EXPECT_TRUE(RemoveFileDurably(dir + "/b").ok());
  EXPECT_TRUE(RemoveFileDurably(dir + "/b").ok());
  EXPECT_TRUE(ListFiles(dir)->empty());
}

TEST(FileUtilTest, ErrnoStatusMapsAFullDiskToResourceExhausted) {
  EXPECT_EQ(ErrnoStatus(ENOSPC, "cannot write x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(ENOSPC, "cannot write x").message(),
            "cannot write x: No space left on device");
  EXPECT_EQ(ErrnoStatus(EIO, "cannot fsync x").code(), absl::StatusCode::kUnavailable);
}

TEST(FileUtilTest, EnsureDirectoryRefusesAFile) {
  const std::string dir = FreshDir("ensure");
  ASSERT_TRUE(WriteFileAtomically(dir + "/f", "1").ok());
  absl::Status s = EnsureDirectory(dir + "/f", 0700);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not a directory"));
  EXPECT_TRUE(EnsureDirectory(dir + "/d", 0700).ok());
  EXPECT_TRUE(EnsureDirectory(dir + "/d", 0700).ok());
}

}  // namespace
}  // namespace rwexport
