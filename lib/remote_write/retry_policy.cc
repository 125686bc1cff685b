#include "lib/remote_write/retry_policy.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace rwexport {

RetryDecision DecideAfterAttempt(const AttemptOutcome& outcome, const BackoffOptions& options,
                                 absl::Time now, double jitter) {
  RetryDecision decision;
  const long status = outcome.http_status;
  if (outcome.curl_code != CURLE_OK || status == 429 || status >= 500) {
    std::optional<absl::Duration> retry_after;
    if (outcome.curl_code == CURLE_OK && status == 429 && outcome.retry_after.has_value()) {
      retry_after = ParseRetryAfter(*outcome.retry_after, now);
    }
    decision.action = RetryDecision::Action::kRetry;
    decision.delay = retry_after.has_value()
                         ? std::max(std::min(*retry_after, kMaxRetryAfter), options.min_backoff)
                         : Backoff(options, outcome.attempts, jitter);
    return decision;
  }
  if (status >= 200 && status < 300) {
    decision.action = RetryDecision::Action::kDeliver;
    return decision;
  }
  if ((outcome.attempts > 1 || outcome.recovery_resend) &&
      IsAlreadyStoredAnswer(status, outcome.body)) {
    decision.action = RetryDecision::Action::kAlreadyDelivered;
    return decision;
  }
  if (status == 413 && outcome.points > 1 && outcome.has_content) {
    decision.action = RetryDecision::Action::kSplit;
    return decision;
  }
  // Any other answer (4xx, or a redirect, which is not followed) will not change on retry.
  decision.action = RetryDecision::Action::kDrop;
  decision.reason = DropReason::kHttp;
  decision.http_status = status;
  return decision;
}

bool IsAlreadyStoredAnswer(long http_status, absl::string_view body) {
  return http_status == 400 && (absl::StrContains(body, "out of order sample") ||
                                absl::StrContains(body, "duplicate sample for timestamp"));
}

absl::Duration Backoff(const BackoffOptions& options, int attempts, double jitter) {
  absl::Duration delay = options.min_backoff;
  for (int i = 1; i < attempts && delay < options.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, options.max_backoff);
  const double factor = 0.5 + jitter / 2;
  return std::max(delay * factor, options.min_backoff);
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds)) return std::nullopt;
    return absl::Seconds(seconds);
  }
  const time_t date = curl_getdate(std::string(value).c_str(), nullptr);
  if (date == -1) return std::nullopt;
  return std::max(absl::FromTimeT(date) - now, absl::ZeroDuration());
}

}  // namespace rwexport
