// Hiding secrets in what is shown to people: remote-write URLs and option values.
//
// Used by the config layer (status RPCs show the redacted target) and by the sender (logs,
// last_error and spool files show a target only by its redacted URL). Pure functions;
// thread-safe.
#ifndef RWEXPORT_LIB_COMMON_REDACT_H_
#define RWEXPORT_LIB_COMMON_REDACT_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace rwexport {

// What replaces a secret.
inline constexpr char kRedacted[] = "REDACTED";

// The parts of scheme://[userinfo@]host[:port][/path][?query][#fragment], as views of the URL.
struct UrlParts {
  absl::string_view scheme;
  absl::string_view userinfo;  // Without the '@'; empty if none.
  bool has_userinfo = false;
  absl::string_view host_port;
  size_t authority_begin = 0;  // Offset of the authority (after "://").
  size_t authority_end = 0;    // Offset of the first '/', '?' or '#' after it (or size).
};

// Splits `url` into `*parts`; false when it has no "://". Checks nothing else.
bool SplitUrl(absl::string_view url, UrlParts* parts);

// True when a query parameter or header named `name` likely holds a secret: its name contains
// token, password, passwd, secret, key, auth, signature or cookie (case-insensitive).
bool IsSecretParamName(absl::string_view name);

// `url` with the password of its userinfo and the values of query parameters whose name
// contains token, password, passwd, secret, key, auth or signature (case-insensitive)
// replaced by "REDACTED". Meant for URLs that passed CheckRemoteWriteUrl; never fails.
std::string RedactRemoteWriteUrl(absl::string_view url);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_REDACT_H_
