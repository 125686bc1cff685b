#include "lib/remote_write/retry_policy.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/remote_write/drop_reason.h"

namespace rwexport {
namespace {

using Action = RetryDecision::Action;

constexpr BackoffOptions kBackoff{absl::Milliseconds(100), absl::Seconds(10)};
// Jitter 0.5 scales a backoff by 0.75.
constexpr double kJitter = 0.5;

struct Row {
  const char* name;
  CURLcode curl_code;
  long http_status;
  std::optional<absl::string_view> retry_after;
  int attempts;
  uint64_t points;
  bool has_content;
  Action action;
  absl::Duration delay;    // for kRetry
  const char* dropped_as;  // for kDrop
};

TEST(RetryPolicyTest, DecisionTable) {
  const absl::Time now = absl::FromUnixSeconds(1445412475);  // Wed, 21 Oct 2015 07:27:55 GMT
  const std::vector<Row> rows = {
      {"204 delivers", CURLE_OK, 204, std::nullopt, 1, 10, true, Action::kDeliver,
       absl::ZeroDuration(), ""},
      {"200 delivers", CURLE_OK, 200, std::nullopt, 4, 10, true, Action::kDeliver,
       absl::ZeroDuration(), ""},
      {"500, first attempt: min_backoff", CURLE_OK, 500, std::nullopt, 1, 10, true, Action::kRetry,
       absl::Milliseconds(100), ""},
      {"503, third attempt: 400ms * 0.75", CURLE_OK, 503, std::nullopt, 3, 10, true, Action::kRetry,
       absl::Milliseconds(300), ""},
      {"503, many attempts: max_backoff * 0.75", CURLE_OK, 503, std::nullopt, 20, 10, true,
       Action::kRetry, absl::Milliseconds(7500), ""},
      {"503 ignores Retry-After", CURLE_OK, 503, "5", 1, 10, true, Action::kRetry,
       absl::Milliseconds(100), ""},
      {"connection refused: backoff", CURLE_COULDNT_CONNECT, 0, std::nullopt, 2, 10, true,
       Action::kRetry, absl::Milliseconds(150), ""},
      {"timeout: backoff, whatever the status", CURLE_OPERATION_TIMEDOUT, 200, std::nullopt, 1, 10,
       true, Action::kRetry, absl::Milliseconds(100), ""},
      {"429 with Retry-After seconds", CURLE_OK, 429, "5", 1, 10, true, Action::kRetry,
       absl::Seconds(5), ""},
      {"429 with Retry-After 0: min_backoff", CURLE_OK, 429, "0", 1, 10, true, Action::kRetry,
       absl::Milliseconds(100), ""},
      {"429 with Retry-After a day: an hour", CURLE_OK, 429, "86400", 1, 10, true, Action::kRetry,
       absl::Hours(1), ""},
      {"429 with Retry-After date", CURLE_OK, 429, "Wed, 21 Oct 2015 07:28:25 GMT", 1, 10, true,
       Action::kRetry, absl::Seconds(30), ""},
      {"429 with unreadable Retry-After: backoff", CURLE_OK, 429, "soon", 3, 10, true,
       Action::kRetry, absl::Milliseconds(300), ""},
      {"429 without Retry-After: backoff", CURLE_OK, 429, std::nullopt, 1, 10, true, Action::kRetry,
       absl::Milliseconds(100), ""},
      {"413 of several points: split", CURLE_OK, 413, std::nullopt, 1, 10, true, Action::kSplit,
       absl::ZeroDuration(), ""},
      {"413 of one point: dropped", CURLE_OK, 413, std::nullopt, 1, 1, true, Action::kDrop,
       absl::ZeroDuration(), "http_413"},
      {"413 of a spooled request (no content): dropped", CURLE_OK, 413, std::nullopt, 1, 10, false,
       Action::kDrop, absl::ZeroDuration(), "http_413"},
      {"400: dropped", CURLE_OK, 400, std::nullopt, 1, 10, true, Action::kDrop,
       absl::ZeroDuration(), "http_400"},
      {"404: dropped", CURLE_OK, 404, std::nullopt, 1, 10, true, Action::kDrop,
       absl::ZeroDuration(), "http_404"},
      {"301 (redirects are not followed): dropped", CURLE_OK, 301, std::nullopt, 1, 10, true,
       Action::kDrop, absl::ZeroDuration(), "http_301"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    AttemptOutcome outcome;
    outcome.curl_code = row.curl_code;
    outcome.http_status = row.http_status;
    outcome.retry_after = row.retry_after;
    outcome.attempts = row.attempts;
    outcome.points = row.points;
    outcome.has_content = row.has_content;
    const RetryDecision decision = DecideAfterAttempt(outcome, kBackoff, now, kJitter);
    EXPECT_EQ(decision.action, row.action);
    if (row.action == Action::kRetry) EXPECT_EQ(decision.delay, row.delay);
    if (row.action == Action::kDrop) {
      EXPECT_EQ(DropReasonName(decision.reason, decision.http_status), row.dropped_as);
    }
  }
}

// Issue 13, item 6: a retry answered 400 "out of order sample" or "duplicate sample for
// timestamp" (Prometheus's texts for samples it already holds) was stored by an earlier
// attempt; on a first attempt the same answer is a real refusal.
TEST(RetryPolicyTest, AlreadyStoredAnswerToARetryCountsAsDelivered) {
  const absl::Time now = absl::FromUnixSeconds(1445412475);
  struct Case {
    const char* name;
    long status;
    const char* body;
    int attempts;
    Action action;
  };
  const std::vector<Case> cases = {
      {"out of order, retry", 400, "out of order sample", 2, Action::kAlreadyDelivered},
      {"duplicate, retry", 400, "duplicate sample for timestamp", 5, Action::kAlreadyDelivered},
      {"wrapped text, retry", 400,
       "failed to append: out of order sample for series {__name__=\"x\"}", 3,
       Action::kAlreadyDelivered},
      {"out of order, first attempt", 400, "out of order sample", 1, Action::kDrop},
      {"duplicate, first attempt", 400, "duplicate sample for timestamp", 1, Action::kDrop},
      {"other 400, retry", 400, "out of bounds", 2, Action::kDrop},
      {"empty 400, retry", 400, "", 2, Action::kDrop},
      {"out of order text with 422, retry", 422, "out of order sample", 2, Action::kDrop},
      {"out of order text with 500, retry", 500, "out of order sample", 2, Action::kRetry},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    AttemptOutcome outcome;
    outcome.http_status = c.status;
    outcome.body = c.body;
    outcome.attempts = c.attempts;
    outcome.points = 10;
    EXPECT_EQ(DecideAfterAttempt(outcome, kBackoff, now, kJitter).action, c.action);
  }
  EXPECT_TRUE(IsAlreadyStoredAnswer(400, "out of order sample\n"));
  EXPECT_TRUE(IsAlreadyStoredAnswer(400, "duplicate sample for timestamp"));
  EXPECT_FALSE(IsAlreadyStoredAnswer(400, "too old sample"));
  EXPECT_FALSE(IsAlreadyStoredAnswer(204, "out of order sample"));
}

// A recovered export's re-sent window: the crashed process may have delivered it, so the same
// answer counts as delivered on the first attempt too; other refusals stay drops.
TEST(RetryPolicyTest, AlreadyStoredAnswerToARecoveryResendCountsAsDelivered) {
  const absl::Time now = absl::FromUnixSeconds(1445412475);
  AttemptOutcome outcome;
  outcome.http_status = 400;
  outcome.attempts = 1;
  outcome.points = 10;
  outcome.recovery_resend = true;
  outcome.body = "out of order sample";
  EXPECT_EQ(DecideAfterAttempt(outcome, kBackoff, now, kJitter).action, Action::kAlreadyDelivered);
  outcome.body = "duplicate sample for timestamp";
  EXPECT_EQ(DecideAfterAttempt(outcome, kBackoff, now, kJitter).action, Action::kAlreadyDelivered);
  outcome.body = "out of bounds";
  EXPECT_EQ(DecideAfterAttempt(outcome, kBackoff, now, kJitter).action, Action::kDrop);
  outcome.http_status = 503;
  outcome.body = "out of order sample";
  EXPECT_EQ(DecideAfterAttempt(outcome, kBackoff, now, kJitter).action, Action::kRetry);
}

TEST(RetryPolicyTest, BackoffDoublesUpToTheCapWithJitterOverTheUpperHalf) {
  EXPECT_EQ(Backoff(kBackoff, 1, 0.0), absl::Milliseconds(100));  // never below min_backoff
  EXPECT_EQ(Backoff(kBackoff, 2, 0.0), absl::Milliseconds(100));
  EXPECT_EQ(Backoff(kBackoff, 3, 0.0), absl::Milliseconds(200));
  EXPECT_EQ(Backoff(kBackoff, 4, 0.0), absl::Milliseconds(400));
  EXPECT_EQ(Backoff(kBackoff, 4, 0.5), absl::Milliseconds(600));
  EXPECT_EQ(Backoff(kBackoff, 7, 0.0), absl::Milliseconds(3200));
  EXPECT_EQ(Backoff(kBackoff, 8, 0.0), absl::Seconds(5));  // capped at 10 s, halved
  EXPECT_EQ(Backoff(kBackoff, 1000, 0.0), absl::Seconds(5));
  EXPECT_LE(Backoff(kBackoff, 1000, 0.999999), absl::Seconds(10));
  EXPECT_GT(Backoff(kBackoff, 1000, 0.999999), absl::Milliseconds(9999));
}

TEST(ParseRetryAfterTest, DeltaSecondsAndHttpDates) {
  const absl::Time now = absl::FromUnixSeconds(1445412475);  // Wed, 21 Oct 2015 07:27:55 GMT
  EXPECT_EQ(ParseRetryAfter("1", now), absl::Seconds(1));
  EXPECT_EQ(ParseRetryAfter(" 120 ", now), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now), absl::Seconds(5));
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("soon", now), std::nullopt);
  EXPECT_EQ(ParseRetryAfter("-3", now), std::nullopt);
}

TEST(DropReasonTest, StableNames) {
  EXPECT_EQ(DropReasonName(DropReason::kQueueFull), "queue_full");
  EXPECT_EQ(DropReasonName(DropReason::kShutdownTimeout), "shutdown_timeout");
  EXPECT_EQ(DropReasonName(DropReason::kShutdown), "shutdown");
  EXPECT_EQ(DropReasonName(DropReason::kTargetRemoved), "target_removed");
  EXPECT_EQ(DropReasonName(DropReason::kEncodeError), "encode_error");
  EXPECT_EQ(DropReasonName(DropReason::kSpooled), "spooled");
  EXPECT_EQ(DropReasonName(DropReason::kSpoolFull), "spool_full");
  EXPECT_EQ(DropReasonName(DropReason::kSpoolError), "spool_error");
  EXPECT_EQ(DropReasonName(DropReason::kHttp, 400), "http_400");
  EXPECT_EQ(DropReasonName(DropReason::kHttp, 413), "http_413");
}

}  // namespace
}  // namespace rwexport
