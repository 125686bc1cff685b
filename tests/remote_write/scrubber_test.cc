#include "lib/remote_write/scrubber.h"

#include <string>

#include "gtest/gtest.h"
#include "lib/remote_write/target_options.h"

namespace rwexport {
namespace {

TargetOptions Basic() {
  TargetOptions options;
  options.url = "http://u:url-pa55%21@127.0.0.1:1/w?sig=s1g%2Bv&tenant=t";
  options.username = "alice";
  options.password = "pa55word";
  options.headers = {{"X-Api-Key", "k3y-value"}, {"X-Scope-OrgID", "org"}};
  return options;
}

TEST(SecretScrubberTest, EveryFormOfTheCredentialsIsReplaced) {
  const SecretScrubber scrubber(Basic(), "http://u:REDACTED@127.0.0.1:1/w?sig=REDACTED");
  // base64("alice:pa55word") and base64("u:url-pa55!")
  EXPECT_EQ(scrubber.Scrub("Authorization: Basic YWxpY2U6cGE1NXdvcmQ="),
            "Authorization: Basic REDACTED");
  EXPECT_EQ(scrubber.Scrub("Basic dTp1cmwtcGE1NSE="), "Basic REDACTED");
  EXPECT_EQ(scrubber.Scrub("user alice:pa55word, url u:url-pa55! or u:url-pa55%21"),
            "user REDACTED, url REDACTED or REDACTED");
  EXPECT_EQ(scrubber.Scrub("sig s1g%2Bv decoded s1g+v, key k3y-value"),
            "sig REDACTED decoded REDACTED, key REDACTED");
}

TEST(SecretScrubberTest, ATextCutInsideASecretLosesTheStartOfIt) {
  const SecretScrubber scrubber(Basic(), "");
  EXPECT_EQ(scrubber.Scrub("you sent Basic YWxpY2U6cGE1"), "you sent Basic REDACTED");
  EXPECT_EQ(scrubber.Scrub("ends with pa"), "ends with pa");  // too short to tell
}

}  // namespace
}  // namespace rwexport
