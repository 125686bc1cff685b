// SigV4 signing checked three ways: AWS's published test suite (aws-sig-v4-test-suite: the
// canonical requests, strings to sign and signatures AWS publishes for get-vanilla and
// friends), botocore (Debian's python3-botocore) signing the very requests the Sender put on
// the wire, and the Sender re-signing a retried request with a fresh date.
#include "lib/remote_write/sigv4.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/model/series.h"
#include "lib/remote_write/sender.h"
#include "nlohmann/json.hpp"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/series.h"
#include "tests/testing/subprocess.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Headers = std::vector<std::pair<std::string, std::string>>;

// The test suite's key, region, service and time (2015-08-30T12:36:00Z).
SigV4Key SuiteKey(std::string session_token = "") {
  return SigV4Key{"us-east-1", "service", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                  std::move(session_token)};
}
absl::Time SuiteTime() {
  return absl::FromCivil(absl::CivilSecond(2015, 8, 30, 12, 36, 0), absl::UTCTimeZone());
}
constexpr char kCredential[] =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ";
constexpr char kEmptyHash[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// post-sts-token/post-sts-header-before's token.
constexpr char kSuiteToken[] =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxf"
    "pSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPk"
    "yQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBA"
    "z+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

SigV4Signature Sign(const SigV4Key& key, const std::string& method, const std::string& url,
                    const Headers& headers = {}, const std::string& body = "") {
  absl::StatusOr<SigV4Signature> s = SignSigV4(key, method, url, headers, body, SuiteTime());
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : SigV4Signature();
}

TEST(SigV4SuiteTest, GetVanilla) {
  const SigV4Signature s = Sign(SuiteKey(), "GET", "https://example.amazonaws.com/");
  EXPECT_EQ(s.canonical_request,
            absl::StrCat("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                         "host;x-amz-date\n",
                         kEmptyHash));
  EXPECT_EQ(s.authorization,
            absl::StrCat(kCredential,
                         "SignedHeaders=host;x-amz-date, Signature="
                         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
  EXPECT_EQ(s.amz_date, "20150830T123600Z");
}

TEST(SigV4SuiteTest, PostVanilla) {
  const SigV4Signature s = Sign(SuiteKey(), "POST", "https://example.amazonaws.com/");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87");
  EXPECT_EQ(s.authorization,
            absl::StrCat(kCredential,
                         "SignedHeaders=host;x-amz-date, Signature="
                         "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
}

TEST(SigV4SuiteTest, GetVanillaQueryOrderKeyCase) {
  const SigV4Signature s =
      Sign(SuiteKey(), "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1");
  EXPECT_THAT(s.canonical_request, HasSubstr("\n/\nParam1=value1&Param2=value2\n"));
  EXPECT_EQ(s.authorization,
            absl::StrCat(kCredential,
                         "SignedHeaders=host;x-amz-date, Signature="
                         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

TEST(SigV4SuiteTest, PostHeaderValueCase) {
  const SigV4Signature s =
      Sign(SuiteKey(), "POST", "https://example.amazonaws.com/", {{"My-Header1", "VALUE1"}});
  EXPECT_EQ(s.authorization,
            absl::StrCat(kCredential,
                         "SignedHeaders=host;my-header1;x-amz-date, Signature="
                         "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"));
}

TEST(SigV4SuiteTest, PostXWwwFormUrlencoded) {
  const SigV4Signature s =
      Sign(SuiteKey(), "POST", "https://example.amazonaws.com/",
           {{"Content-Type", "application/x-www-form-urlencoded"}}, "Param1=value1");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281");
  EXPECT_EQ(s.authorization,
            absl::StrCat(kCredential,
                         "SignedHeaders=content-type;host;x-amz-date, Signature="
                         "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
}

TEST(SigV4SuiteTest, PostStsHeaderBeforeSignsTheSessionToken) {
  const SigV4Signature s = Sign(SuiteKey(kSuiteToken), "POST", "https://example.amazonaws.com/");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6");
  EXPECT_EQ(s.authorization,
            absl::StrCat(kCredential,
                         "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="
                         "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"));
  ASSERT_EQ(s.headers.size(), 3u);
  EXPECT_EQ(s.headers[0],
            std::make_pair(std::string("X-Amz-Date"), std::string("20150830T123600Z")));
  EXPECT_EQ(s.headers[1].first, "X-Amz-Security-Token");
  EXPECT_EQ(s.headers[1].second, kSuiteToken);
  EXPECT_EQ(s.headers[2].first, "Authorization");
}

TEST(SigV4Test, HostLeavesOutTheDefaultPortAndUserInfo) {
  EXPECT_THAT(Sign(SuiteKey(), "POST", "https://example.amazonaws.com:443/x").canonical_request,
              HasSubstr("\nhost:example.amazonaws.com\n"));
  EXPECT_THAT(Sign(SuiteKey(), "POST", "http://u@127.0.0.1:9090/api/v1/write").canonical_request,
              HasSubstr("\nhost:127.0.0.1:9090\n"));
  EXPECT_FALSE(SignSigV4(SuiteKey(), "POST", "no-scheme", {}, "", SuiteTime()).ok());
}

// ---------------------------------------------------------------------------------------------
// The Sender's requests, as a receiver sees them, signed again by botocore.

// Reads a JSON list of requests and prints, per request, the Authorization botocore computes
// for it at its own X-Amz-Date (botocore 1.29 takes the time from datetime.utcnow()).
constexpr char kBotocoreSigner[] = R"PY(
import datetime, json, sys
from unittest import mock
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

for r in json.load(open(sys.argv[1])):
    request = AWSRequest(method=r["method"], url=r["url"], data=bytes.fromhex(r["body"]),
                         headers=r["headers"])
    credentials = Credentials(r["access_key"], r["secret_key"], r["session_token"] or None)
    when = datetime.datetime.strptime(r["amz_date"], "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.datetime") as fake:
        fake.datetime.utcnow.return_value = when
        SigV4Auth(credentials, r["service"], r["region"]).add_auth(request)
    print(request.headers["Authorization"])
)PY";

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// What botocore says each request's Authorization should be.
std::vector<std::string> BotocoreAuthorizations(const std::vector<ReceivedRequest>& requests,
                                                const std::string& base_url, const SigV4Key& key) {
  nlohmann::json list = nlohmann::json::array();
  for (const ReceivedRequest& r : requests) {
    nlohmann::json headers = nlohmann::json::object();
    const std::string authorization = r.Header("Authorization").value_or("");
    const size_t at = authorization.find("SignedHeaders=");
    const std::string signed_list =
        authorization.substr(at + 14, authorization.find(',', at) - at - 14);
    // Give botocore the headers that were signed; it adds Host, X-Amz-Date and the token.
    for (absl::string_view name : absl::StrSplit(signed_list, ';')) {
      if (name == "host" || name == "x-amz-date" || name == "x-amz-security-token") continue;
      headers[std::string(name)] = r.Header(name).value_or("");
    }
    list.push_back({{"method", r.method},
                    {"url", base_url + r.target},
                    {"headers", headers},
                    {"body", absl::BytesToHexString(r.body)},
                    {"amz_date", r.Header("X-Amz-Date").value_or("")},
                    {"access_key", key.access_key},
                    {"secret_key", key.secret_key},
                    {"session_token", key.session_token},
                    {"service", key.service},
                    {"region", key.region}});
  }
  const std::string path = TempPath("botocore-requests.json");
  std::ofstream(path) << list.dump();
  absl::StatusOr<std::unique_ptr<Subprocess>> python =
      Subprocess::Start("/usr/bin/python3", {"-c", kBotocoreSigner, path});
  EXPECT_TRUE(python.ok()) << python.status();
  if (!python.ok()) return {};
  absl::StatusOr<int> code = (*python)->Wait(absl::Seconds(60));
  EXPECT_TRUE(code.ok() && *code == 0) << (*python)->stderr_text();
  std::vector<std::string> out = absl::StrSplit((*python)->stdout_text(), '\n', absl::SkipEmpty());
  return out;
}

TEST(SigV4SenderTest, EveryAttemptIsSignedAnewAndBotocoreAgrees) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  // The first attempt is throttled for a second: the retry must carry a later date.
  FakeResponse slow_down = FakeResponse::WithStatus(429);
  slow_down.headers = {{"Retry-After", "1"}};
  (*receiver)->Push(slow_down);

  const SigV4Key key{"eu-west-1", "aps", "AKIAIOSFODNN7EXAMPLE",
                     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                     "IQoJb3JpZ2luX2VjEXAMPLE//token=="};
  const std::string path = "/workspaces/ws-0123abcd/api/v1/remote_write?tenant=a&Z=1";
  TargetOptions options;
  options.url = (*receiver)->Url(path);
  options.sigv4 = key;
  options.min_backoff = absl::Milliseconds(10);
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  PointBatch batch;
  batch.series.push_back({TestSeries({{"__name__", "k6_http_reqs_total"}, {"env", "staging"}}),
                          {{1700000000000, 42}}});
  sender.Enqueue(*id, std::move(batch));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + absl::Seconds(20));
  EXPECT_EQ(figures.points_sent, 1u);
  EXPECT_EQ(figures.retries, 1u);

  const std::vector<ReceivedRequest> requests = (*receiver)->Requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const ReceivedRequest& r : requests) {
    EXPECT_EQ(r.target, path);
    EXPECT_EQ(r.Header("X-Amz-Security-Token"), key.session_token);
    EXPECT_THAT(r.Header("Authorization").value_or(""),
                HasSubstr("SignedHeaders=content-encoding;content-type;host;x-amz-date;"
                          "x-amz-security-token;x-prometheus-remote-write-version, "));
  }
  // Re-signed: a later X-Amz-Date, so another signature, over the same body.
  EXPECT_LT(requests[0].Header("X-Amz-Date").value_or(""),
            requests[1].Header("X-Amz-Date").value_or(""));
  EXPECT_NE(requests[0].Header("Authorization"), requests[1].Header("Authorization"));
  EXPECT_EQ(requests[0].body, requests[1].body);

  const std::vector<std::string> botocore =
      BotocoreAuthorizations(requests, (*receiver)->Url(""), key);
  ASSERT_EQ(botocore.size(), 2u);
  EXPECT_EQ(requests[0].Header("Authorization"), botocore[0]);
  EXPECT_EQ(requests[1].Header("Authorization"), botocore[1]);
  EXPECT_THAT(botocore[0], HasSubstr("Credential=AKIAIOSFODNN7EXAMPLE/"));
  EXPECT_THAT(botocore[0], HasSubstr("/eu-west-1/aps/aws4_request"));
  // The secret never shows in what the sender reports.
  EXPECT_THAT(figures.last_error, Not(HasSubstr(key.secret_key)));
}

}  // namespace
}  // namespace rwexport
