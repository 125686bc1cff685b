// Delivery of exported points to Prometheus remote-write endpoints.
//
// One Sender owns one background thread that owns a libcurl multi handle: it encodes each
// request (WriteRequest + snappy), POSTs it, retries 5xx, 429 and network errors with backoff,
// and accounts for every point (sent, or dropped with a reason). Other threads hand it work
// through per-target queues and never wait on the network.
//
// Per target, batches are delivered in enqueue order: a batch is split into requests of at
// most `max_points_per_request` points and `max_bytes_per_request` encoded bytes (a series is
// split only when it alone exceeds a cap, and then its requests go one after the other); the
// requests of one batch may be in flight together (up to `max_in_flight`), but no request of
// the next batch starts before every request of the current one has finished. So the points of
// one series always arrive in order.
//
// Answers: 2xx delivers. 5xx, network errors and timeouts are retried with exponential backoff
// and jitter (min_backoff..max_backoff), without a retry limit: the queue bound and the
// RemoveTarget deadline bound them. 429 is retried after its Retry-After (no sooner than
// min_backoff, no later than an hour), or with backoff when it has none. 413 splits the
// request in two halves (by series, or a single series by points; the halves keep the order)
// and sends them, recursively; a single point still refused is dropped as "http_413". Any
// other answer (4xx, and redirects, which are not followed) drops the request's points as
// "http_<code>" and is logged with the start of the response body.
//
// Secrets: logs, last_error and spool files show a target only by its display_url; the raw
// URL, the bearer token, the password and secret query values are replaced by "REDACTED" in
// any error text (curl messages, response bodies) before it is logged or kept.
//
// Spool (SenderOptions::spool_dir): when a target's memory queue is full, its oldest batches
// not yet started are written to disk instead of dropped, and read back in order when their
// turn comes; at the RemoveTarget deadline and at destruction, whatever is undelivered is
// written there too (reported as dropped "spooled"), and a target added later with the same
// URL and extra headers (in this process, or in a new Sender on the same directory after a
// restart) delivers it before its own batches. Credentials are not written: resuming needs
// the target configured again. The directory is bounded by spool_max_bytes: the oldest files
// are deleted to make room ("spool_full").
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
#include "lib/common/duration_histogram.h"
#include "lib/model/series.h"
#include "lib/remote_write/sigv4.h"

namespace rwexport {

// How to reach one remote-write endpoint and how hard to try.
struct TargetOptions {
  // http or https; sent exactly as given, query string included.
  std::string url;
  // The URL as logs, last_error and spool files show it: it must hold no secret (lib/config's
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
};

// What happened to a target's points so far. Every point enqueued or taken over from the spool
// (points_from_spool) is in exactly one of points_sent, points_dropped or points_queued.
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
  // Points dropped, by reason: "http_<code>" (rejected, not retried; "http_413" for a single
  // point too large), "queue_full", "shutdown_timeout" (RemoveTarget deadline), "shutdown"
  // (Sender destroyed), "target_removed" (enqueued after RemoveTarget began), "encode_error";
  // with a spool: "spooled" (left on disk for a later target with the same URL),
  // "spool_full" (a spooled batch deleted to bound the spool, or too large for it),
  // "spool_error" (a spool file that could not be read back).
  absl::flat_hash_map<std::string, uint64_t> dropped_by_reason;
  // Highest timestamp among delivered points; 0 while nothing was delivered.
  int64_t highest_timestamp_ms = 0;
  // The last failure, for people ("HTTP 503: <start of body>", "curl: <error>"); never holds
  // credentials.
  std::string last_error;
  // Enqueued and not yet delivered or dropped (in memory or spooled).
  uint64_t points_queued = 0;
  // Of points_queued, those waiting in spool files.
  uint64_t points_spooled_queued = 0;
  // Points of earlier targets found in the spool when this one was added, delivered first.
  uint64_t points_from_spool = 0;
  // Requests on the wire now.
  uint64_t requests_in_flight = 0;
  // How long each completed attempt took (any answer or error), from curl's total time.
  DurationHistogram send_duration;
};

// Options of a whole Sender.
struct SenderOptions {
  // Directory for batches that do not fit in memory or were not delivered in time; created if
  // missing (one level). Empty: no spool. One Sender per directory at a time.
  std::string spool_dir;
  // Bound on the spool files' total size; the oldest files are deleted beyond it.
  uint64_t spool_max_bytes = uint64_t{1} << 30;
};

// The spool as a whole.
struct SpoolFigures {
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t points = 0;
  // Points deleted to bound the spool from files no target had taken over (those of a live
  // target count in its figures as "spool_full").
  uint64_t points_dropped_unowned = 0;
};

class Sender {
 public:
  using TargetId = uint64_t;

  // Starts the sender thread; no spool.
  Sender();
  // A Sender with `options`: creates and scans the spool directory (INVALID_ARGUMENT when it
  // cannot be used, FAILED_PRECONDITION when another Sender holds it).
  static absl::StatusOr<std::unique_ptr<Sender>> Create(SenderOptions options);
  // Stops the thread; points not yet delivered are dropped with reason "shutdown".
  ~Sender();
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // Validates `options` (URL scheme and host, credentials, headers, TLS files readable, limits)
  // and registers the target. INVALID_ARGUMENT names the offending option.
  absl::StatusOr<TargetId> AddTarget(TargetOptions options);

  // Queues `batch` for delivery after the batches enqueued before it. Never blocks on the
  // network. If the target's points in memory would then exceed max_queued_points, the oldest
  // batches not yet started are written to the spool (this call then writes to disk), or
  // without a spool dropped ("queue_full"), the new batch included if it must be.
  // Points for a target being removed are dropped ("target_removed"); an unknown id is logged.
  void Enqueue(TargetId id, PointBatch batch);

  // Blocks until everything enqueued for the target so far is delivered or dropped, or until
  // `deadline`, when what is still undelivered is dropped ("shutdown_timeout") and requests in
  // flight are abandoned. Then removes the target and returns its final figures. An unknown id
  // returns empty figures.
  TargetFigures RemoveTarget(TargetId id, absl::Time deadline);

  // A snapshot of the target's figures; empty figures for an unknown id.
  TargetFigures Figures(TargetId id) const;

  // The spool's size and losses; zeros without a spool.
  SpoolFigures Spool() const;

 private:
  class Impl;
  explicit Sender(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The delay a Retry-After header value asks for: delta seconds or an HTTP date (relative to
// `now`; a past date gives zero). nullopt when the value is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

// Checks the limits of `options` (timeout, in-flight, per-request and queue caps, backoff)
// without looking at the URL or credentials: for flags that set defaults for every target.
// INVALID_ARGUMENT names the option.
absl::Status CheckTargetLimits(const TargetOptions& options);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_SENDER_H_
