#include "lib/common/build_info.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using ::testing::MatchesRegex;

TEST(BuildInfoTest, VersionIsTheVersionFile) {
  std::ifstream in(absl::StrCat(std::getenv("TEST_SRCDIR"), "/rwexport/VERSION"));
  std::stringstream text;
  text << in.rdbuf();
  ASSERT_TRUE(in.good());
  EXPECT_EQ(GetBuildInfo().version, absl::StripAsciiWhitespace(text.str()));
  EXPECT_THAT(GetBuildInfo().version, MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
}

TEST(BuildInfoTest, RevisionAndDateAreStamped) {
  // "unknown" only when built outside a git checkout.
  EXPECT_THAT(GetBuildInfo().revision, MatchesRegex("[0-9a-f]{12}(-dirty)?|unknown"));
  EXPECT_THAT(GetBuildInfo().build_date,
              MatchesRegex("20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]Z"));
}

TEST(BuildInfoTest, VersionLine) {
  const BuildInfo& info = GetBuildInfo();
  EXPECT_EQ(VersionLine("rwexport_server"),
            absl::StrCat("rwexport_server version ", info.version, " (revision ", info.revision,
                         ", built ", info.build_date, ")"));
}

}  // namespace
}  // namespace rwexport
