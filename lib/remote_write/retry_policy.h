// What the sender does after an attempt ended: pure functions of the outcome.
//
//   no answer (curl error: refused, reset, timeout)  -> retry after Backoff
//   2xx                                               -> deliver
//   429                                               -> retry after its Retry-After (clamped
//                                                        to min_backoff..1h), else Backoff
//   5xx                                               -> retry after Backoff
//   413, more than one point, content at hand         -> split in halves
//   400 "out of order sample" or "duplicate sample for timestamp" to a RETRY (attempt > 1)
//                                                     -> already delivered: an earlier attempt
//                                                        was stored but its answer was lost
//   the same 400 to a RECOVERY RE-SEND                -> already delivered: the crashed process
//                                                        had delivered it
//   anything else (4xx, 413 for one point or a spooled request, 1xx, 3xx: redirects are not
//   followed)                                         -> drop as "http_<status>"
//
// There is no retry limit: the queue bound and the RemoveTarget deadline bound retries.
// Backoff is exponential from min_backoff, capped at max_backoff, with jitter over its upper
// half so that many senders do not retry in lockstep. Thread-safe (no state).
#ifndef RWEXPORT_LIB_REMOTE_WRITE_RETRY_POLICY_H_
#define RWEXPORT_LIB_REMOTE_WRITE_RETRY_POLICY_H_

#include <curl/curl.h>

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/remote_write/drop_reason.h"

namespace rwexport {

// A Retry-After longer than this is taken as this (a misconfigured server must not park a
// target for days; the RemoveTarget deadline bounds the wait anyway).
inline constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);

// How one attempt of a request ended.
struct AttemptOutcome {
  // Not CURLE_OK: no usable answer (network error, timeout); http_status is then ignored.
  CURLcode curl_code = CURLE_OK;
  long http_status = 0;
  // The Retry-After header's value; nullopt when absent.
  std::optional<absl::string_view> retry_after;
  // Attempts of this request so far, this one included.
  int attempts = 1;
  // A recovered export's re-sent window (BatchKind::kRecoveryResend): the target may hold it.
  bool recovery_resend = false;
  // Points in the request, and whether its content (not only its encoded body) is at hand.
  uint64_t points = 0;
  bool has_content = true;
  // The first bytes of the answer's body.
  absl::string_view body;
};

// The backoff bounds of a target.
struct BackoffOptions {
  absl::Duration min_backoff;
  absl::Duration max_backoff;
};

struct RetryDecision {
  // kAlreadyDelivered: count as delivered (and as a duplicate on retry).
  enum class Action { kDeliver, kRetry, kSplit, kDrop, kAlreadyDelivered };
  Action action = Action::kDeliver;
  // kRetry: how long to wait before the next attempt.
  absl::Duration delay = absl::ZeroDuration();
  // kDrop: why (always kHttp with http_status).
  DropReason reason = DropReason::kHttp;
  long http_status = 0;
};

// The decision for `outcome` (see the table above). `now` dates a Retry-After given as an HTTP
// date; `jitter` is a uniform draw from [0, 1) (see Backoff).
RetryDecision DecideAfterAttempt(const AttemptOutcome& outcome, const BackoffOptions& options,
                                 absl::Time now, double jitter);

// True when `body` is how Prometheus (2.x storage errors, as its remote-write handler answers
// them with 400) refuses samples it already holds: "out of order sample" (an older timestamp
// than the series' newest) or "duplicate sample for timestamp" (same timestamp, other value).
// To a retry this means an earlier attempt was stored.
bool IsAlreadyStoredAnswer(long http_status, absl::string_view body);

// The wait before attempt `attempts + 1`: min_backoff doubled per attempt after the first,
// capped at max_backoff, scaled by 0.5 + jitter / 2 (jitter in [0, 1)), at least min_backoff.
absl::Duration Backoff(const BackoffOptions& options, int attempts, double jitter);

// The delay a Retry-After header value asks for: delta seconds or an HTTP date (relative to
// `now`; a past date gives zero). nullopt when the value is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_RETRY_POLICY_H_
