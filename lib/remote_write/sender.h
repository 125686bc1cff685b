// Delivery of exported points to Prometheus remote-write endpoints.
//
// One Sender owns one background thread that owns a libcurl multi handle: it encodes each
// request (WriteRequest + snappy), POSTs it, retries 5xx, 429 and network errors with backoff,
// and accounts for every point (sent, or dropped with a reason). Other threads hand it work
// through per-target queues and never wait on the network.
//
// Per target, batches are delivered in enqueue order: a batch is split into requests of at
// most `max_points_per_request` points (a series is split only when it alone exceeds the cap,
// and then its requests go one after the other); the requests of one batch may be in flight
// together (up to `max_in_flight`), but no request of the next batch starts before every request
// of the current one has finished. So the points of one series always arrive in order.
//
// Answers: 2xx delivers. 5xx, network errors and timeouts are retried with exponential backoff
// and jitter (min_backoff..max_backoff), without a retry limit: the queue bound and the
// RemoveTarget deadline bound them. 429 is retried after its Retry-After (no sooner than
// min_backoff, no later than an hour), or with backoff when it has none. Any other answer (4xx,
// and redirects, which are not followed) drops the request's points as "http_<code>" and is
// logged with the start of the response body.
//
// Thread-safe: every public method may be called from any thread.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_SENDER_H_
#define RWEXPORT_LIB_REMOTE_WRITE_SENDER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/model/series.h"

namespace rwexport {

// How to reach one remote-write endpoint and how hard to try.
struct TargetOptions {
  // http or https; sent exactly as given, query string included.
  std::string url;
  // At most one of: a bearer token, or a username (and password) for HTTP basic auth.
  std::string bearer_token;
  std::string username;
  std::string password;
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
  // Bound on points enqueued but not yet delivered or dropped (see Sender::Enqueue).
  size_t max_queued_points = 2'000'000;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
};

// What happened to a target's points so far. Every enqueued point is in exactly one of
// points_sent, points_dropped or points_queued.
struct TargetFigures {
  uint64_t points_sent = 0;
  // HTTP attempts started, retries included.
  uint64_t requests = 0;
  // Attempts started again after a failure.
  uint64_t retries = 0;
  // Attempts that did not end in 2xx (HTTP errors, network errors, timeouts).
  uint64_t failures = 0;
  uint64_t points_dropped = 0;
  // Compressed body bytes of delivered requests.
  uint64_t bytes_sent = 0;
  // Points dropped, by reason: "http_<code>" (rejected, not retried), "queue_full",
  // "shutdown_timeout" (RemoveTarget deadline), "shutdown" (Sender destroyed),
  // "target_removed" (enqueued after RemoveTarget began), "encode_error".
  absl::flat_hash_map<std::string, uint64_t> dropped_by_reason;
  // Highest timestamp among delivered points; 0 while nothing was delivered.
  int64_t highest_timestamp_ms = 0;
  // The last failure, for people ("HTTP 503: <start of body>", "curl: <error>"); never holds
  // credentials.
  std::string last_error;
  // Enqueued and not yet delivered or dropped.
  uint64_t points_queued = 0;
};

class Sender {
 public:
  using TargetId = uint64_t;

  // Starts the sender thread.
  Sender();
  // Stops the thread; points not yet delivered are dropped with reason "shutdown".
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // Validates `options` (URL scheme and host, credentials, headers, TLS files readable, limits)
  // and registers the target. INVALID_ARGUMENT names the offending option.
  absl::StatusOr<TargetId> AddTarget(TargetOptions options);

  // Queues `batch` for delivery after the batches enqueued before it. Never blocks on the
  // network. If the target's undelivered points would then exceed max_queued_points, the oldest
  // batches not yet started are dropped ("queue_full"), the new batch included if it must be.
  // Points for a target being removed are dropped ("target_removed"); an unknown id is logged.
  void Enqueue(TargetId id, PointBatch batch);

  // Blocks until everything enqueued for the target so far is delivered or dropped, or until
  // `deadline`, when what is still undelivered is dropped ("shutdown_timeout") and requests in
  // flight are abandoned. Then removes the target and returns its final figures. An unknown id
  // returns empty figures.
  TargetFigures RemoveTarget(TargetId id, absl::Time deadline);

  // A snapshot of the target's figures; empty figures for an unknown id.
  TargetFigures Figures(TargetId id) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// The delay a Retry-After header value asks for: delta seconds or an HTTP date (relative to
// `now`; a past date gives zero). nullopt when the value is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

// `url` with any userinfo (user:password@) removed, for logs. A URL that cannot be parsed
// yields "<unparseable url>".
std::string RedactUrl(absl::string_view url);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_SENDER_H_
