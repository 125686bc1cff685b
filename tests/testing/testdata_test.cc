#include "tests/testing/testdata.h"

#include <sys/stat.h>

#include "gtest/gtest.h"

namespace rwexport {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

TEST(TestdataTest, FindsTheK6Files) {
  absl::StatusOr<std::string> dir = FindK6TestdataDir();
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_TRUE(Exists(*dir + "/finance-run.json")) << *dir;
  EXPECT_TRUE(Exists(*dir + "/finance-run.csv")) << *dir;
  EXPECT_EQ(K6TestdataFile("finance-run.json"), *dir + "/finance-run.json");
}

TEST(TestdataTest, FindsTheSourceTree) {
  const std::string root = SourceTreeRoot();
  ASSERT_FALSE(root.empty());
  EXPECT_TRUE(Exists(root + "/tests/testing/testdata.h")) << root;
  EXPECT_TRUE(Exists(root + "/WORKSPACE")) << root;
}

}  // namespace
}  // namespace rwexport
