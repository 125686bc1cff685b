#include "lib/common/redact.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RedactRemoteWriteUrlTest, EveryQueryValueIsHiddenAndEveryNameShown) {
  EXPECT_EQ(RedactRemoteWriteUrl("https://acct.blob.example/w?sv=2022-11-02&sig=abc%2Bdef&se=x"),
            "https://acct.blob.example/w?sv=REDACTED&sig=REDACTED&se=REDACTED");
  EXPECT_EQ(RedactRemoteWriteUrl("http://example.com/api/v1/write?orgId=1&flag&empty="),
            "http://example.com/api/v1/write?orgId=REDACTED&flag&empty=");
  EXPECT_EQ(RedactRemoteWriteUrl("https://example.com?jwt=a.b.c"),
            "https://example.com?jwt=REDACTED");
  EXPECT_EQ(RedactRemoteWriteUrl("https://example.com/w?a=1#frag"),
            "https://example.com/w?a=REDACTED#REDACTED");
  EXPECT_EQ(RedactRemoteWriteUrl("https://example.com/w#frag"), "https://example.com/w#REDACTED");
  // A value holding '=' is hidden whole.
  EXPECT_EQ(RedactRemoteWriteUrl("https://example.com/w?t=a=b==&u=%3D"),
            "https://example.com/w?t=REDACTED&u=REDACTED");
  EXPECT_EQ(RedactRemoteWriteUrl("https://alice:s3cret@example.com/w?pwd=p"),
            "https://alice:REDACTED@example.com/w?pwd=REDACTED");
  EXPECT_EQ(RedactRemoteWriteUrl("https://example.com/api/v1/write"),
            "https://example.com/api/v1/write");
}

// Generated names (those of real secrets and random ones, in mixed case) with random values:
// no value survives, every name does, in the order given.
TEST(RedactRemoteWriteUrlTest, GeneratedParametersShowNamesOnly) {
  absl::BitGen gen;
  const std::vector<std::string> known = {"sig",
                                          "pwd",
                                          "jwt",
                                          "X-Amz-Credential",
                                          "X-Amz-Signature",
                                          "X-Amz-Security-Token",
                                          "sv",
                                          "se",
                                          "sp",
                                          "code",
                                          "orgId",
                                          "tenant"};
  const std::string name_chars =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
  const std::string value_chars = name_chars + "%+/=:~!$'()*,;@";
  for (int round = 0; round < 200; ++round) {
    std::vector<std::pair<std::string, std::string>> params;
    const int n = absl::Uniform(gen, 1, 12);
    for (int i = 0; i < n; ++i) {
      std::string name;
      if (absl::Bernoulli(gen, 0.5)) {
        name = known[absl::Uniform<size_t>(gen, 0, known.size())];
      } else {
        const int len = absl::Uniform(gen, 1, 20);
        for (int c = 0; c < len; ++c) {
          name.push_back(name_chars[absl::Uniform<size_t>(gen, 0, name_chars.size())]);
        }
      }
      // A marker that appears in no name, then random characters.
      std::string value = absl::StrFormat("V%dx%d~", round, i);
      const int len = absl::Uniform(gen, 0, 40);
      for (int c = 0; c < len; ++c) {
        value.push_back(value_chars[absl::Uniform<size_t>(gen, 0, value_chars.size())]);
      }
      params.emplace_back(std::move(name), std::move(value));
    }
    std::string query;
    std::string expected_query;
    for (const auto& [name, value] : params) {
      absl::StrAppend(&query, query.empty() ? "?" : "&", name, "=", value);
      absl::StrAppend(&expected_query, expected_query.empty() ? "?" : "&", name, "=REDACTED");
    }
    const std::string url = absl::StrCat("https://u:p4ss@example.com:8443/api/v1/write", query);
    const std::string shown = RedactRemoteWriteUrl(url);
    EXPECT_EQ(shown,
              absl::StrCat("https://u:REDACTED@example.com:8443/api/v1/write", expected_query))
        << url;
    for (const auto& [name, value] : params) {
      EXPECT_THAT(shown, Not(HasSubstr(value))) << url;
      EXPECT_THAT(shown, HasSubstr(absl::StrCat(name, "=REDACTED"))) << url;
    }
  }
}

}  // namespace
}  // namespace rwexport
