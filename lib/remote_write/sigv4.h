// AWS Signature Version 4 for remote-write requests (Amazon Managed Service for Prometheus):
// the canonical request, the string to sign and the Authorization header, computed with
// OpenSSL's SHA-256 and HMAC, as AWS specifies them
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv_create-signed-request.html).
//
// Checked against AWS's published test suite and against botocore
// (tests/remote_write/sigv4_test.cc). Pure functions; thread-safe.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_SIGV4_H_
#define RWEXPORT_LIB_REMOTE_WRITE_SIGV4_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace rwexport {

// Who signs, and for which region and service.
struct SigV4Key {
  std::string region;
  std::string service;
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // Empty: none (long-term credentials).
};

// A signed request: what to add to it, and the intermediate texts (for tests and debugging;
// they hold no secret, the session token aside).
struct SigV4Signature {
  std::string amz_date;  // "20150830T123600Z"
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "content-type;host;x-amz-date"
  std::string authorization;   // The Authorization header's value.
  // The headers to send: X-Amz-Date, X-Amz-Security-Token (with a session token) and
  // Authorization, in that order.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Signs `method` `url` (absolute, http or https; the path and query as they go on the wire)
// with `headers` (names in any case; Host and X-Amz-Date are added here, and
// X-Amz-Security-Token with a session token; none of these may be in `headers`) and `body`, at
// time `now`. The Host signed is the URL's host and port, the port left out when it is the
// scheme's default (as curl sends it). Errors: InvalidArgumentError for a URL without a
// scheme or host.
absl::StatusOr<SigV4Signature> SignSigV4(
    const SigV4Key& key, absl::string_view method, absl::string_view url,
    absl::Span<const std::pair<std::string, std::string>> headers, absl::string_view body,
    absl::Time now);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_SIGV4_H_
