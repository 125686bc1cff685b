// How to reach one remote-write endpoint and how hard to try, and the checks of those options.
//
// Pure functions (CheckTargetOptions reads the file system only to see that TLS files are
// readable); thread-safe.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_TARGET_OPTIONS_H_
#define RWEXPORT_LIB_REMOTE_WRITE_TARGET_OPTIONS_H_

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/remote_write/sigv4.h"

namespace rwexport {

// How to reach one remote-write endpoint and how hard to try.
struct TargetOptions {
  // http or https; sent exactly as given, query string included.
  std::string url;
  // The URL as logs, last_error and spool files show it: it must hold no secret (lib/common's
  // RedactRemoteWriteUrl). Empty: RedactRemoteWriteUrl(url).
  std::string display_url;
  // At most one of: a bearer token, or a username (and password) for HTTP basic auth.
  std::string bearer_token;
  std::string username;
  std::string password;
  // Or: AWS Signature Version 4, every attempt signed anew at its start (X-Amz-Date is the
  // attempt's time); Content-Encoding, Content-Type, Host and
  // X-Prometheus-Remote-Write-Version are signed.
  std::optional<SigV4Key> sigv4;
  // Extra request headers. They may not replace the remote-write headers (Content-Encoding,
  // Content-Type, X-Prometheus-Remote-Write-Version, User-Agent), Authorization, or the framing
  // headers (Content-Length, Transfer-Encoding, Expect, Connection, Host).
  std::vector<std::pair<std::string, std::string>> headers;
  // TLS: PEM files; empty = system defaults / no client certificate.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure_skip_verify = false;
  // Per attempt, connection included.
  absl::Duration timeout = absl::Seconds(10);
  size_t max_in_flight = 4;
  size_t max_points_per_request = 5000;
  // Encoded (uncompressed) WriteRequest bytes per request; a single point above it goes alone.
  size_t max_bytes_per_request = size_t{4} << 20;
  // Bound on points held in memory, enqueued but not yet delivered or dropped (see
  // Sender::Enqueue); spooled batches do not count.
  size_t max_queued_points = 2'000'000;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  // With a durable queue (SenderOptions::write_through): who owns the target's queue files,
  // e.g. "<export id>/<target index>"; a target added later with the same scope, URL and
  // extra headers (after a restart) delivers them first. Holds no secret (it is hashed).
  std::string queue_scope;
};

// Checks every option: URL scheme and host, credentials, headers, TLS files readable, limits.
// INVALID_ARGUMENT names the offending option (and never echoes the URL: it may hold secrets).
absl::Status CheckTargetOptions(const TargetOptions& options);

// Checks the limits of `options` (timeout, in-flight, per-request and queue caps, backoff)
// without looking at the URL or credentials: for flags that set defaults for every target.
// INVALID_ARGUMENT names the option.
absl::Status CheckTargetLimits(const TargetOptions& options);

// The URL to show for the target: display_url, or the redacted url when it is empty.
std::string DisplayUrl(const TargetOptions& options);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_TARGET_OPTIONS_H_
