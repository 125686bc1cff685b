#include "lib/remote_write/target_options.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/redact.h"
#include "lib/remote_write/curl_handles.h"

namespace rwexport {
namespace {

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Headers an extra header may not set: the remote-write protocol's, authorization, framing.
bool IsReservedHeader(absl::string_view name) {
  static constexpr const char* kReserved[] = {
      "content-encoding",
      "content-type",
      "x-prometheus-remote-write-version",
      "user-agent",
      "authorization",
      "content-length",
      "transfer-encoding",
      "expect",
      "connection",
      "host",
  };
  for (const char* reserved : kReserved) {
    if (absl::EqualsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

absl::Status CheckReadable(absl::string_view option, const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  if (access(path.c_str(), R_OK) != 0) {
    const int error = errno;
    return absl::InvalidArgumentError(
        absl::StrCat(option, ": cannot read \"", path, "\": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckTargetOptions(const TargetOptions& options) {
  UrlPtr url(curl_url());
  if (url == nullptr) return absl::ResourceExhaustedError("out of memory parsing url");
  const CURLUcode rc = curl_url_set(url.get(), CURLUPART_URL, options.url.c_str(), 0);
  if (rc != CURLUE_OK) {
    // The URL itself is not echoed: it may carry credentials.
    return absl::InvalidArgumentError(
        absl::StrCat("url: not a valid URL (", curl_url_strerror(rc), ")"));
  }
  const std::string scheme = absl::AsciiStrToLower(UrlPart(url.get(), CURLUPART_SCHEME));
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("url: scheme must be http or https, not \"", scheme, "\""));
  }
  if (UrlPart(url.get(), CURLUPART_HOST).empty()) {
    return absl::InvalidArgumentError("url: has no host");
  }
  if (!options.bearer_token.empty() && (!options.username.empty() || !options.password.empty())) {
    return absl::InvalidArgumentError(
        "credentials: give either a bearer token or a username and password, not both");
  }
  if (options.username.empty() && !options.password.empty()) {
    return absl::InvalidArgumentError("credentials: a password needs a username");
  }
  if (options.bearer_token.find_first_of("\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("credentials: the bearer token contains a line break");
  }
  for (const auto& [name, value] : options.headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return absl::InvalidArgumentError(
          absl::StrCat("headers: \"", name, "\" is not a valid HTTP header name"));
    }
    if (IsReservedHeader(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("headers: \"", name,
                       "\" is set by the sender itself (remote-write protocol, credentials or "
                       "framing) and cannot be overridden"));
    }
    if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("headers: the value of \"", name, "\" contains a line break or NUL"));
    }
  }
  if (auto status = CheckReadable("ca_file", options.ca_file); !status.ok()) return status;
  if (auto status = CheckReadable("cert_file", options.cert_file); !status.ok()) return status;
  if (auto status = CheckReadable("key_file", options.key_file); !status.ok()) return status;
  if (!options.key_file.empty() && options.cert_file.empty()) {
    return absl::InvalidArgumentError("key_file: given without cert_file");
  }
  return CheckTargetLimits(options);
}

absl::Status CheckTargetLimits(const TargetOptions& options) {
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout: must be positive");
  }
  if (options.max_in_flight == 0) {
    return absl::InvalidArgumentError("max_in_flight: must be at least 1");
  }
  if (options.max_points_per_request == 0) {
    return absl::InvalidArgumentError("max_points_per_request: must be at least 1");
  }
  if (options.max_bytes_per_request < 1024) {
    return absl::InvalidArgumentError("max_bytes_per_request: must be at least 1024");
  }
  if (options.max_queued_points == 0) {
    return absl::InvalidArgumentError("max_queued_points: must be at least 1");
  }
  if (options.min_backoff <= absl::ZeroDuration() || options.max_backoff < options.min_backoff) {
    return absl::InvalidArgumentError(
        "min_backoff, max_backoff: need 0 < min_backoff <= max_backoff");
  }
  return absl::OkStatus();
}

std::string DisplayUrl(const TargetOptions& options) {
  return options.display_url.empty() ? RedactRemoteWriteUrl(options.url) : options.display_url;
}

}  // namespace rwexport
