#include "lib/remote_write/sender.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/remote_write/encoder.h"
#include "lib/remote_write/spool.h"

namespace rwexport {
namespace {

constexpr size_t kMaxLoggedBody = 256;
// The thread looks at its targets at least this often even when nothing happens.
constexpr absl::Duration kMaxPollWait = absl::Seconds(1);
// A Retry-After longer than this is taken as this (a misconfigured server must not park a
// target for days; the RemoveTarget deadline bounds the wait anyway).
constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);
constexpr char kUserAgent[] = "rwexport/0.1";

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using EasyPtr = std::unique_ptr<CURL, EasyDeleter>;

struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
using MultiPtr = std::unique_ptr<CURLM, MultiDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
      LogError("curl_global_init failed", {{"error", curl_easy_strerror(rc)}});
    }
  });
}

// One part of a parsed URL, or an empty string when it is absent.
std::string UrlPart(CURLU* url, CURLUPart part) {
  char* value = nullptr;
  if (curl_url_get(url, part, &value, 0) != CURLUE_OK || value == nullptr) return "";
  CurlString owned(value);
  return std::string(owned.get());
}

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

absl::Status ValidateOptions(const TargetOptions& options) {
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
  if (options.sigv4 && (!options.bearer_token.empty() || !options.username.empty())) {
    return absl::InvalidArgumentError("sigv4: give either sigv4 or credentials, not both");
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

size_t OnResponseBody(char* data, size_t size, size_t count, void* user_data) {
  auto* start = static_cast<std::string*>(user_data);
  const size_t bytes = size * count;
  if (start->size() < kMaxLoggedBody) {
    start->append(data, std::min(bytes, kMaxLoggedBody - start->size()));
  }
  return bytes;
}

// The start of a response body, fit for a log line or last_error.
std::string Printable(absl::string_view body) {
  std::string out(body);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = ' ';
  }
  return std::string(absl::StripTrailingAsciiWhitespace(out));
}

}  // namespace

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

namespace {

constexpr char kRedacted[] = "REDACTED";
// Secrets shorter than this are not searched for in error texts (they would garble them).
constexpr size_t kMinScrubbedSecret = 3;

// Requests of one batch, before encoding.
struct Piece {
  std::vector<SeriesPoints> content;
  uint64_t points = 0;
  uint64_t chain = 0;
  int64_t min_timestamp_ms = std::numeric_limits<int64_t>::max();
  int64_t max_timestamp_ms = std::numeric_limits<int64_t>::min();
};

// Cuts `batch` into requests of at most `max_points` points and (but for a single point)
// `max_bytes` encoded bytes. A series is cut only when it alone exceeds a cap: its pieces share
// a chain id taken from `*next_chain`.
std::vector<Piece> CutIntoPieces(PointBatch batch, size_t max_points, size_t max_bytes,
                                 uint64_t* next_chain) {
  std::vector<Piece> out;
  Piece current;
  size_t current_bytes = 0;
  auto flush = [&] {
    if (current.content.empty()) return;
    out.push_back(std::move(current));
    current = Piece();
    current_bytes = 0;
  };
  for (SeriesPoints& sp : batch.series) {
    const size_t n = sp.size();  // float points, then histogram points
    if (n == 0) continue;
    const size_t size = EncodedSeriesSize(sp);
    if (n > max_points || size > max_bytes) {
      flush();
      const uint64_t chain = (*next_chain)++;
      // A TimeSeries holding some of the points: tag, length (at most 10 bytes), labels.
      const size_t overhead = 11 + sp.series->encoded_labels_size(sp.name);
      size_t begin = 0;
      while (begin < n) {
        size_t end = begin;
        size_t bytes = overhead;
        while (end < n && end - begin < max_points) {
          const size_t floats = sp.points.size();
          const size_t sample = end < floats ? EncodedSampleSize(sp.points[end])
                                             : EncodedHistogramSize(sp.histograms[end - floats]);
          if (end > begin && bytes + sample > max_bytes) break;
          bytes += sample;
          ++end;
        }
        Piece piece;
        piece.content.push_back(sp.Slice(begin, end));
        piece.points = end - begin;
        piece.chain = chain;
        out.push_back(std::move(piece));
        begin = end;
      }
      continue;
    }
    if (current.points + n > max_points || current_bytes + size > max_bytes) flush();
    current.points += n;
    current_bytes += size;
    current.content.push_back(std::move(sp));
  }
  flush();
  for (Piece& piece : out) {
    for (const SeriesPoints& sp : piece.content) {
      piece.min_timestamp_ms = std::min(piece.min_timestamp_ms, sp.min_timestamp_ms());
      piece.max_timestamp_ms = std::max(piece.max_timestamp_ms, sp.max_timestamp_ms());
    }
  }
  return out;
}

absl::StatusOr<std::string> EncodeBody(absl::Span<const SeriesPoints> content) {
  return SnappyCompress(EncodeWriteRequest(content));
}

// What error texts must never show for `options`: the raw URL, the credentials, the userinfo
// password and the values of query parameters that display_url does not show.
std::vector<std::string> SecretsOf(const TargetOptions& options, const std::string& display) {
  std::vector<std::string> secrets = {options.bearer_token, options.password};
  if (options.sigv4) {
    secrets.push_back(options.sigv4->access_key);
    secrets.push_back(options.sigv4->secret_key);
    secrets.push_back(options.sigv4->session_token);
  }
  UrlPtr url(curl_url());
  if (url != nullptr &&
      curl_url_set(url.get(), CURLUPART_URL, options.url.c_str(), 0) == CURLUE_OK) {
    secrets.push_back(UrlPart(url.get(), CURLUPART_PASSWORD));
    char* raw = nullptr;
    if (curl_url_get(url.get(), CURLUPART_PASSWORD, &raw, CURLU_URLENCODE) == CURLUE_OK &&
        raw != nullptr) {
      CurlString owned(raw);
      secrets.emplace_back(owned.get());
    }
  }
  const size_t question = options.url.find('?');
  if (question != std::string::npos) {
    std::string query = options.url.substr(question + 1);
    query = query.substr(0, query.find('#'));
    for (absl::string_view param : absl::StrSplit(query, '&')) {
      const size_t eq = param.find('=');
      if (eq == absl::string_view::npos) continue;
      if (!absl::StrContains(display, param)) secrets.emplace_back(param.substr(eq + 1));
    }
  }
  // Longest first, so that a secret containing another is replaced whole.
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  secrets.erase(std::remove_if(secrets.begin(), secrets.end(),
                               [](const std::string& s) { return s.size() < kMinScrubbedSecret; }),
                secrets.end());
  return secrets;
}

}  // namespace

class Sender::Impl {
 public:
  // `spool` is the listing of options.spool_dir (empty without a spool); `spool_lock_fd` holds
  // the directory's lock (-1 without a spool) and is closed by the destructor.
  Impl(SenderOptions options, std::vector<SpoolFileInfo> spool, int spool_lock_fd);
  ~Impl();

  absl::StatusOr<TargetId> AddTarget(TargetOptions options);
  void Enqueue(TargetId id, PointBatch batch);
  TargetFigures RemoveTarget(TargetId id, absl::Time deadline);
  TargetFigures Figures(TargetId id) const;
  SpoolFigures Spool() const;

 private:
  struct QueuedBatch {
    uint64_t sequence = 0;
    uint64_t points = 0;
    // The batch is the spool file with this sequence; `batch` is empty.
    bool spooled = false;
    PointBatch batch;
  };

  // A target as callers and the sender thread share it.
  struct Target {
    Target(TargetId id, TargetOptions opts, uint64_t spool_key)
        : id(id),
          options(std::move(opts)),
          log_url(options.display_url.empty() ? RedactRemoteWriteUrl(options.url)
                                              : options.display_url),
          spool_key(spool_key),
          secrets(SecretsOf(options, log_url)) {}

    void Drop(uint64_t points, absl::string_view reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (points == 0) return;
      figures.points_dropped += points;
      figures.dropped_by_reason[reason] += points;
    }
    TargetFigures Snapshot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      TargetFigures out = figures;
      out.points_queued = waiting_memory_points + waiting_spooled_points + active_points;
      out.points_spooled_queued = waiting_spooled_points;
      return out;
    }
    // `text` (an error, a response body) with the URL shown as log_url and secrets redacted.
    std::string Scrub(std::string text) const {
      if (!options.url.empty() && options.url != log_url) {
        text = absl::StrReplaceAll(text, {{options.url, log_url}});
      }
      for (const std::string& secret : secrets) {
        text = absl::StrReplaceAll(text, {{secret, kRedacted}});
      }
      return text;
    }

    const TargetId id;
    const TargetOptions options;
    const std::string log_url;  // holds no secret
    const uint64_t spool_key;
    const std::vector<std::string> secrets;

    mutable Mutex mu;
    CondVar finished_cv;
    // Batches not started yet, oldest first: the spooled ones, then those in memory.
    std::deque<QueuedBatch> waiting ABSL_GUARDED_BY(mu);
    size_t waiting_spooled_batches ABSL_GUARDED_BY(mu) = 0;
    uint64_t waiting_spooled_points ABSL_GUARDED_BY(mu) = 0;
    uint64_t waiting_memory_points ABSL_GUARDED_BY(mu) = 0;
    // Points of the batch being delivered that are neither delivered nor dropped yet.
    uint64_t active_points ABSL_GUARDED_BY(mu) = 0;
    TargetFigures figures ABSL_GUARDED_BY(mu);
    bool removing ABSL_GUARDED_BY(mu) = false;
    absl::Time deadline ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
    // Set by the sender thread once it has let go of the target; figures are final.
    bool finished ABSL_GUARDED_BY(mu) = false;
    absl::Time last_queue_full_log ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  };

  struct TargetState;

  // One HTTP request of the batch being delivered. Owned by the sender thread.
  struct Request {
    TargetState* owner = nullptr;
    std::list<std::unique_ptr<Request>>::iterator self;
    // Kept until the request ends, for a 413 split; empty for a request read from the spool.
    std::vector<SeriesPoints> content;
    bool encoded = false;
    std::string body;  // snappy(WriteRequest)
    uint64_t points = 0;
    int64_t min_timestamp_ms = std::numeric_limits<int64_t>::max();
    int64_t max_timestamp_ms = std::numeric_limits<int64_t>::min();
    // Non-zero for the pieces of one series too long for a single request: a piece starts only
    // after the previous piece (the request before it) has finished.
    uint64_t chain = 0;
    // A half of a request answered 413.
    bool split = false;
    int attempts = 0;
    SlistPtr signed_headers;  // SigV4: this attempt's headers, signature included
    absl::Time not_before = absl::InfinitePast();
    EasyPtr easy;  // while in flight
    std::string response_start;
    char error[CURL_ERROR_SIZE] = {};
  };

  // A target as the sender thread sees it. Owned by the sender thread.
  struct TargetState {
    std::shared_ptr<Target> target;
    SlistPtr headers;           // outlives the easy handles that point at it
    // SigV4: the lines of `headers` and the headers they sign, for each attempt's own list.
    std::vector<std::string> header_lines;
    std::vector<std::pair<std::string, std::string>> signed_headers;
    std::vector<EasyPtr> idle;  // configured for this target, ready for the next request
    // Keeps the series of the batch being delivered alive (PointBatch::owner).
    std::shared_ptr<const void> batch_owner;
    // The unfinished requests of the batch being delivered, in order.
    std::list<std::unique_ptr<Request>> requests;
    size_t in_flight = 0;
    bool failing = false;
    // The batch being delivered; a spooled one keeps its file until it is done.
    bool batch_active = false;
    uint64_t batch_sequence = 0;
    bool batch_from_spool = false;
  };

  // A spool file in the index.
  struct SpoolEntry {
    uint64_t key = 0;
    uint64_t bytes = 0;
    uint64_t points = 0;
    TargetId owner = 0;  // 0: no live target has taken it over
  };

  std::shared_ptr<Target> Find(TargetId id) const;
  void Wake();
  bool spool_enabled() const { return !options_.spool_dir.empty(); }
  std::string SpoolPath(const Target& target, uint64_t sequence) const {
    return SpoolFilePath(options_.spool_dir, target.spool_key, sequence);
  }

  // Writes one spool file for `target` (replacing any with the same sequence), owned by
  // `owner`, deleting the oldest files to stay within spool_max_bytes. RESOURCE_EXHAUSTED when
  // the file alone is larger than the bound.
  absl::Status SpoolWrite(const Target& target, uint64_t sequence,
                          const std::vector<SpooledRequest>& requests, int64_t first_ts,
                          int64_t last_ts, TargetId owner) ABSL_LOCKS_EXCLUDED(spool_mu_);
  // Cuts, encodes and spools an in-memory batch (consuming it).
  absl::Status SpoolBatch(const Target& target, QueuedBatch& queued, TargetId owner)
      ABSL_LOCKS_EXCLUDED(spool_mu_);
  // Deletes the oldest files until `incoming` more bytes fit.
  void EvictLocked(uint64_t incoming, uint64_t keep_sequence)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(spool_mu_);

  // The sender thread and what only it calls.
  void Run();
  void Adopt(std::shared_ptr<Target> target);
  // Returns true when the target is finished and its state may be destroyed.
  bool Advance(TargetState& state, absl::Time now, absl::Time* wake_at);
  // Drops the waiting batches whose spool files were deleted to bound the spool.
  void SweepEvicted(TargetState& state);
  bool TakeBatch(TargetState& state);
  // The batch being delivered has no request left: its spool file, if any, goes.
  void FinishBatch(TargetState& state);
  Request* AddRequest(TargetState& state, std::list<std::unique_ptr<Request>>::iterator before,
                      std::unique_ptr<Request> request);
  void StartRequests(TargetState& state, absl::Time now, absl::Time* wake_at);
  // False when the request was dropped instead (it is then erased).
  bool Start(TargetState& state, Request& request, absl::Time now);
  EasyPtr NewEasy(TargetState& state);
  // SigV4: signs this attempt of `request` now and gives `easy` its headers.
  void SignAttempt(TargetState& state, Request& request, CURL* easy);
  void OnDone(CURL* easy, CURLcode result);
  void Retry(TargetState& state, Request& request, std::string error,
             std::optional<absl::Duration> retry_after);
  // Replaces a request answered 413 by its two halves.
  void SplitTooLarge(TargetState& state, Request& request);
  absl::Duration Backoff(const TargetOptions& options, int attempts);
  // Abandons everything in flight and queued (dropped with `reason`, or spooled when there is
  // a spool and the reason is a deadline or shutdown) and marks the target finished.
  void Abandon(TargetState& state, absl::string_view reason);
  void UpdateMaxConnects();

  const SenderOptions options_;
  const int spool_lock_fd_;
  const MultiPtr multi_;

  mutable Mutex mu_;
  TargetId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<TargetId, std::shared_ptr<Target>> targets_ ABSL_GUARDED_BY(mu_);
  // Added, not yet seen by the sender thread.
  std::vector<std::shared_ptr<Target>> added_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // The spool index. Lock order: a Target's mu, then spool_mu_.
  mutable Mutex spool_mu_;
  std::map<uint64_t, SpoolEntry> spool_ ABSL_GUARDED_BY(spool_mu_);  // by sequence
  uint64_t spool_bytes_ ABSL_GUARDED_BY(spool_mu_) = 0;
  uint64_t spool_points_ ABSL_GUARDED_BY(spool_mu_) = 0;
  uint64_t spool_dropped_unowned_ ABSL_GUARDED_BY(spool_mu_) = 0;
  // Sequences of files deleted by EvictLocked, by owner, for SweepEvicted.
  absl::flat_hash_map<TargetId, std::vector<uint64_t>> evicted_ ABSL_GUARDED_BY(spool_mu_);
  // Batch sequence numbers: enqueue order, and spool file order across restarts.
  std::atomic<uint64_t> next_sequence_{1};

  // Owned by the sender thread.
  absl::flat_hash_map<TargetId, std::unique_ptr<TargetState>> states_;
  absl::BitGen rng_;
  uint64_t next_chain_ = 1;

  std::thread thread_;  // last, so that it starts after everything above exists
};

Sender::Impl::Impl(SenderOptions options, std::vector<SpoolFileInfo> spool, int spool_lock_fd)
    : options_(std::move(options)), spool_lock_fd_(spool_lock_fd), multi_([] {
        GlobalInitOnce();
        return curl_multi_init();
      }()) {
  if (multi_ == nullptr) {
    LogError("curl_multi_init failed: libcurl is unusable");
    std::abort();
  }
  {
    MutexLock lock(&spool_mu_);
    uint64_t last = 0;
    for (const SpoolFileInfo& file : spool) {
      spool_[file.sequence] = SpoolEntry{file.header.key, file.bytes, file.header.points, 0};
      spool_bytes_ += file.bytes;
      spool_points_ += file.header.points;
      last = std::max(last, file.sequence);
    }
    next_sequence_ = last + 1;
    EvictLocked(0, 0);
    if (!spool_.empty()) {
      LogInfo("spooled remote-write batches found; they are delivered when their target is added",
              {{"spool_dir", options_.spool_dir},
               {"files", absl::StrCat(spool_.size())},
               {"points", absl::StrCat(spool_points_)}});
    }
  }
  UpdateMaxConnects();
  thread_ = std::thread([this] { Run(); });
}

Sender::Impl::~Impl() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
  if (spool_lock_fd_ >= 0) close(spool_lock_fd_);
}

absl::StatusOr<Sender::TargetId> Sender::Impl::AddTarget(TargetOptions options) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;
  TargetId id;
  {
    MutexLock lock(&mu_);
    id = next_id_++;
  }
  const uint64_t key = SpoolKey(options.url, options.headers);
  auto target = std::make_shared<Target>(id, std::move(options), key);
  uint64_t claimed_files = 0;
  if (spool_enabled()) {
    MutexLock target_lock(&target->mu);
    MutexLock lock(&spool_mu_);
    for (auto& [sequence, entry] : spool_) {
      if (entry.key != key || entry.owner != 0) continue;
      entry.owner = id;
      QueuedBatch queued;
      queued.sequence = sequence;
      queued.points = entry.points;
      queued.spooled = true;
      target->waiting.push_back(std::move(queued));
      ++target->waiting_spooled_batches;
      target->waiting_spooled_points += entry.points;
      target->figures.points_from_spool += entry.points;
      ++claimed_files;
    }
  }
  {
    MutexLock lock(&mu_);
    targets_[id] = target;
    added_.push_back(target);
  }
  Wake();
  LogInfo("remote-write target added",
          {{"target", target->log_url}, {"target_id", absl::StrCat(id)}});
  if (claimed_files > 0) {
    MutexLock lock(&target->mu);
    LogInfo("remote-write target resumes spooled batches",
            {{"target", target->log_url},
             {"files", absl::StrCat(claimed_files)},
             {"points", absl::StrCat(target->figures.points_from_spool)}});
  }
  return id;
}

void Sender::Impl::Enqueue(TargetId id, PointBatch batch) {
  const uint64_t points = batch.point_count();
  std::shared_ptr<Target> target = Find(id);
  if (target == nullptr) {
    LogWarning("points for an unknown remote-write target are dropped",
               {{"target_id", absl::StrCat(id)}, {"points", absl::StrCat(points)}});
    return;
  }
  uint64_t dropped = 0;
  uint64_t spooled = 0;
  std::string spool_error;
  bool log_overflow = false;
  {
    MutexLock lock(&target->mu);
    if (target->removing || target->finished) {
      target->Drop(points, "target_removed");
      return;
    }
    if (points == 0) return;
    QueuedBatch queued;
    queued.sequence = next_sequence_++;
    queued.points = points;
    queued.batch = std::move(batch);
    target->waiting.push_back(std::move(queued));
    target->waiting_memory_points += points;
    // Over the bound: the oldest batch in memory goes to the spool, or is dropped.
    while (target->waiting_memory_points + target->active_points >
               target->options.max_queued_points &&
           target->waiting_memory_points > 0) {
      const auto oldest = target->waiting.begin() + target->waiting_spooled_batches;
      const uint64_t n = oldest->points;
      target->waiting_memory_points -= n;
      absl::Status status = absl::UnavailableError("no spool");
      if (spool_enabled()) status = SpoolBatch(*target, *oldest, target->id);
      if (status.ok()) {
        oldest->spooled = true;
        ++target->waiting_spooled_batches;
        target->waiting_spooled_points += n;
        spooled += n;
        continue;
      }
      if (spool_enabled()) spool_error = std::string(status.message());
      target->Drop(
          n, spool_enabled() && absl::IsResourceExhausted(status) ? "spool_full" : "queue_full");
      target->waiting.erase(oldest);
      dropped += n;
    }
    const absl::Time now = absl::Now();
    if ((dropped > 0 || spooled > 0) && now - target->last_queue_full_log >= absl::Seconds(10)) {
      target->last_queue_full_log = now;
      log_overflow = true;
    }
  }
  if (log_overflow && dropped > 0) {
    LogWarning("remote-write queue full, oldest batches dropped",
               {{"target", target->log_url},
                {"points", absl::StrCat(dropped)},
                {"max_queued_points", absl::StrCat(target->options.max_queued_points)},
                {"spool_error", spool_error}});
  } else if (log_overflow) {
    LogWarning("remote-write queue full, oldest batches spooled to disk",
               {{"target", target->log_url},
                {"points", absl::StrCat(spooled)},
                {"max_queued_points", absl::StrCat(target->options.max_queued_points)}});
  }
  Wake();
}

absl::Status Sender::Impl::SpoolBatch(const Target& target, QueuedBatch& queued, TargetId owner) {
  uint64_t chain = 1;
  const std::shared_ptr<const void> owner_of_series = queued.batch.owner;
  std::vector<Piece> pieces =
      CutIntoPieces(std::move(queued.batch), target.options.max_points_per_request,
                    target.options.max_bytes_per_request, &chain);
  queued.batch = PointBatch();
  std::vector<SpooledRequest> requests;
  int64_t first = std::numeric_limits<int64_t>::max();
  int64_t last = std::numeric_limits<int64_t>::min();
  for (Piece& piece : pieces) {
    absl::StatusOr<std::string> body = EncodeBody(piece.content);
    if (!body.ok()) return body.status();
    requests.push_back({piece.points, piece.chain, piece.max_timestamp_ms, *std::move(body)});
    first = std::min(first, piece.min_timestamp_ms);
    last = std::max(last, piece.max_timestamp_ms);
  }
  return SpoolWrite(target, queued.sequence, requests, first, last, owner);
}

absl::Status Sender::Impl::SpoolWrite(const Target& target, uint64_t sequence,
                                      const std::vector<SpooledRequest>& requests, int64_t first_ts,
                                      int64_t last_ts, TargetId owner) {
  SpoolFileHeader header;
  header.key = target.spool_key;
  header.display_url = target.log_url;
  header.first_timestamp_ms = first_ts;
  header.last_timestamp_ms = last_ts;
  const std::string contents = EncodeSpoolFile(std::move(header), requests);
  uint64_t points = 0;
  for (const SpooledRequest& r : requests) points += r.points;
  if (contents.size() > options_.spool_max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("a batch of ", contents.size(),
                                                     " bytes does not fit in the spool (",
                                                     options_.spool_max_bytes, " bytes)"));
  }
  MutexLock lock(&spool_mu_);
  auto existing = spool_.find(sequence);
  if (existing != spool_.end()) {
    spool_bytes_ -= existing->second.bytes;
    spool_points_ -= existing->second.points;
    spool_.erase(existing);
  }
  EvictLocked(contents.size(), sequence);
  absl::Status status = WriteSpoolFile(SpoolPath(target, sequence), contents);
  if (!status.ok()) {
    LogError("cannot write a spool file",
             {{"target", target.log_url}, {"error", std::string(status.message())}});
    return status;
  }
  spool_[sequence] = SpoolEntry{target.spool_key, contents.size(), points, owner};
  spool_bytes_ += contents.size();
  spool_points_ += points;
  return absl::OkStatus();
}

void Sender::Impl::EvictLocked(uint64_t incoming, uint64_t keep_sequence) {
  uint64_t evicted_points = 0;
  size_t evicted_files = 0;
  for (auto it = spool_.begin();
       it != spool_.end() && spool_bytes_ + incoming > options_.spool_max_bytes;) {
    if (it->first == keep_sequence) {
      ++it;
      continue;
    }
    const SpoolEntry& entry = it->second;
    unlink(SpoolFilePath(options_.spool_dir, entry.key, it->first).c_str());
    spool_bytes_ -= entry.bytes;
    spool_points_ -= entry.points;
    evicted_points += entry.points;
    ++evicted_files;
    if (entry.owner == 0) {
      spool_dropped_unowned_ += entry.points;
    } else {
      evicted_[entry.owner].push_back(it->first);
    }
    it = spool_.erase(it);
  }
  if (evicted_files > 0) {
    LogWarning("spool full, oldest spooled batches deleted",
               {{"spool_dir", options_.spool_dir},
                {"files", absl::StrCat(evicted_files)},
                {"points", absl::StrCat(evicted_points)},
                {"spool_max_bytes", absl::StrCat(options_.spool_max_bytes)}});
  }
}

TargetFigures Sender::Impl::RemoveTarget(TargetId id, absl::Time deadline) {
  std::shared_ptr<Target> target = Find(id);
  if (target == nullptr) return TargetFigures();
  TargetFigures figures;
  {
    MutexLock lock(&target->mu);
    if (!target->removing || deadline < target->deadline) target->deadline = deadline;
    target->removing = true;
  }
  Wake();
  {
    MutexLock lock(&target->mu);
    // The sender thread finishes the target by its deadline at the latest.
    while (!target->finished) target->finished_cv.Wait(&target->mu);
    figures = target->Snapshot();
  }
  {
    MutexLock lock(&mu_);
    targets_.erase(id);
  }
  LogInfo("remote-write target removed", {{"target", target->log_url},
                                          {"points_sent", absl::StrCat(figures.points_sent)},
                                          {"points_dropped", absl::StrCat(figures.points_dropped)},
                                          {"requests", absl::StrCat(figures.requests)},
                                          {"retries", absl::StrCat(figures.retries)},
                                          {"failures", absl::StrCat(figures.failures)}});
  return figures;
}

TargetFigures Sender::Impl::Figures(TargetId id) const {
  std::shared_ptr<Target> target = Find(id);
  if (target == nullptr) return TargetFigures();
  MutexLock lock(&target->mu);
  return target->Snapshot();
}

SpoolFigures Sender::Impl::Spool() const {
  MutexLock lock(&spool_mu_);
  SpoolFigures out;
  out.files = spool_.size();
  out.bytes = spool_bytes_;
  out.points = spool_points_;
  out.points_dropped_unowned = spool_dropped_unowned_;
  return out;
}

std::shared_ptr<Sender::Impl::Target> Sender::Impl::Find(TargetId id) const {
  MutexLock lock(&mu_);
  auto it = targets_.find(id);
  return it == targets_.end() ? nullptr : it->second;
}

void Sender::Impl::Wake() { curl_multi_wakeup(multi_.get()); }

void Sender::Impl::Run() {
  while (true) {
    bool stopping;
    std::vector<std::shared_ptr<Target>> added;
    {
      MutexLock lock(&mu_);
      stopping = stopping_;
      added.swap(added_);
    }
    for (std::shared_ptr<Target>& target : added) Adopt(std::move(target));
    if (stopping) {
      for (auto& [id, state] : states_) Abandon(*state, "shutdown");
      states_.clear();
      return;
    }

    const absl::Time now = absl::Now();
    absl::Time wake_at = now + kMaxPollWait;
    bool removed = false;
    for (auto it = states_.begin(); it != states_.end();) {
      if (Advance(*it->second, now, &wake_at)) {
        states_.erase(it++);
        removed = true;
      } else {
        ++it;
      }
    }
    if (removed) UpdateMaxConnects();

    int running = 0;
    curl_multi_perform(multi_.get(), &running);
    bool completed = false;
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_.get(), &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      CURL* const easy = message->easy_handle;
      const CURLcode result = message->data.result;
      OnDone(easy, result);
      completed = true;
    }
    // A finished request may let the next ones start at once.
    if (completed) continue;

    const absl::Duration wait = std::max(wake_at - absl::Now(), absl::ZeroDuration());
    const int wait_ms = static_cast<int>(std::ceil(absl::ToDoubleMilliseconds(wait)));
    curl_multi_poll(multi_.get(), nullptr, 0, wait_ms, nullptr);
  }
}

void Sender::Impl::Adopt(std::shared_ptr<Target> target) {
  auto state = std::make_unique<TargetState>();
  const TargetOptions& options = target->options;
  curl_slist* headers = nullptr;
  auto append = [&headers, &state](const std::string& line) {
    curl_slist* grown = curl_slist_append(headers, line.c_str());
    if (grown != nullptr) headers = grown;
    state->header_lines.push_back(line);
  };
  if (options.sigv4) {
    state->signed_headers = {{"Content-Encoding", "snappy"},
                             {"Content-Type", "application/x-protobuf"},
                             {"X-Prometheus-Remote-Write-Version", "0.1.0"}};
  }
  append("Content-Encoding: snappy");
  append("Content-Type: application/x-protobuf");
  append("X-Prometheus-Remote-Write-Version: 0.1.0");
  append(absl::StrCat("User-Agent: ", kUserAgent));
  append("Expect:");  // no 100-continue round trip
  if (!options.bearer_token.empty()) {
    append(absl::StrCat("Authorization: Bearer ", options.bearer_token));
  }
  for (const auto& [name, value] : options.headers) {
    // "Name;" is curl's spelling of a header with an empty value.
    append(value.empty() ? absl::StrCat(name, ";") : absl::StrCat(name, ": ", value));
  }
  state->headers.reset(headers);
  state->target = std::move(target);
  const TargetId id = state->target->id;
  states_[id] = std::move(state);
  UpdateMaxConnects();
}

void Sender::Impl::UpdateMaxConnects() {
  // Enough idle connections in the cache for every target's in-flight requests to be reused.
  long connections = 8;
  for (const auto& [id, state] : states_) {
    connections += static_cast<long>(std::min<size_t>(state->target->options.max_in_flight, 1024));
  }
  curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, connections);
}

bool Sender::Impl::Advance(TargetState& state, absl::Time now, absl::Time* wake_at) {
  Target& target = *state.target;
  if (spool_enabled()) SweepEvicted(state);
  bool removing;
  absl::Time deadline;
  {
    MutexLock lock(&target.mu);
    removing = target.removing;
    deadline = target.deadline;
  }
  if (removing && now >= deadline) {
    Abandon(state, "shutdown_timeout");
    return true;
  }
  StartRequests(state, now, wake_at);
  if (!removing) return false;
  MutexLock lock(&target.mu);
  // Enqueue adds nothing once `removing` is set, so empty now means empty for good.
  if (state.requests.empty() && target.waiting.empty()) {
    target.finished = true;
    target.finished_cv.SignalAll();
    return true;
  }
  *wake_at = std::min(*wake_at, deadline);
  return false;
}

void Sender::Impl::SweepEvicted(TargetState& state) {
  Target& target = *state.target;
  std::vector<uint64_t> evicted;
  {
    MutexLock lock(&spool_mu_);
    auto it = evicted_.find(target.id);
    if (it == evicted_.end()) return;
    evicted.swap(it->second);
    evicted_.erase(it);
  }
  MutexLock lock(&target.mu);
  for (uint64_t sequence : evicted) {
    for (size_t i = 0; i < target.waiting_spooled_batches; ++i) {
      if (target.waiting[i].sequence != sequence) continue;
      const uint64_t n = target.waiting[i].points;
      target.waiting.erase(target.waiting.begin() + i);
      --target.waiting_spooled_batches;
      target.waiting_spooled_points -= n;
      target.Drop(n, "spool_full");
      break;
    }
  }
}

Sender::Impl::Request* Sender::Impl::AddRequest(
    TargetState& state, std::list<std::unique_ptr<Request>>::iterator before,
    std::unique_ptr<Request> request) {
  request->owner = &state;
  Request* raw = request.get();
  raw->self = state.requests.insert(before, std::move(request));
  return raw;
}

bool Sender::Impl::TakeBatch(TargetState& state) {
  Target& target = *state.target;
  QueuedBatch queued;
  {
    MutexLock lock(&target.mu);
    if (target.waiting.empty()) return false;
    queued = std::move(target.waiting.front());
    target.waiting.pop_front();
    if (queued.spooled) {
      --target.waiting_spooled_batches;
      target.waiting_spooled_points -= queued.points;
    } else {
      target.waiting_memory_points -= queued.points;
    }
    target.active_points += queued.points;
  }
  state.batch_active = true;
  state.batch_sequence = queued.sequence;
  state.batch_from_spool = false;
  if (!queued.spooled) {
    state.batch_owner = queued.batch.owner;
    for (Piece& piece :
         CutIntoPieces(std::move(queued.batch), target.options.max_points_per_request,
                       target.options.max_bytes_per_request, &next_chain_)) {
      auto request = std::make_unique<Request>();
      request->content = std::move(piece.content);
      request->points = piece.points;
      request->chain = piece.chain;
      request->min_timestamp_ms = piece.min_timestamp_ms;
      request->max_timestamp_ms = piece.max_timestamp_ms;
      AddRequest(state, state.requests.end(), std::move(request));
    }
    return true;
  }

  // A spooled batch: its file stays until every request of it has ended.
  bool present = false;
  {
    MutexLock lock(&spool_mu_);
    auto it = spool_.find(queued.sequence);
    if (it != spool_.end() && it->second.owner == target.id) {
      present = true;
      spool_bytes_ -= it->second.bytes;
      spool_points_ -= it->second.points;
      spool_.erase(it);
    }
  }
  absl::string_view reason = "spool_full";  // deleted to bound the spool meanwhile
  if (present) {
    const std::string path = SpoolPath(target, queued.sequence);
    absl::StatusOr<std::pair<SpoolFileHeader, std::vector<SpooledRequest>>> file =
        ReadSpoolFile(path);
    if (file.ok() && file->first.points == queued.points) {
      state.batch_from_spool = true;
      absl::flat_hash_map<uint64_t, uint64_t> chains;  // the file's chain ids -> ours
      for (SpooledRequest& spooled : file->second) {
        auto request = std::make_unique<Request>();
        request->encoded = true;
        request->body = std::move(spooled.body);
        request->points = spooled.points;
        request->max_timestamp_ms = spooled.max_timestamp_ms;
        request->min_timestamp_ms = file->first.first_timestamp_ms;
        if (spooled.chain != 0) {
          auto [it, inserted] = chains.try_emplace(spooled.chain, next_chain_);
          if (inserted) ++next_chain_;
          request->chain = it->second;
        }
        AddRequest(state, state.requests.end(), std::move(request));
      }
      return true;
    }
    const std::string error =
        file.ok() ? "point count differs from the index" : std::string(file.status().message());
    LogError("unreadable spool file; its points are dropped",
             {{"target", target.log_url}, {"file", path}, {"error", error}});
    unlink(path.c_str());
    reason = "spool_error";
  }
  MutexLock lock(&target.mu);
  target.active_points -= queued.points;
  target.Drop(queued.points, reason);
  return true;
}

void Sender::Impl::FinishBatch(TargetState& state) {
  if (state.batch_active && state.batch_from_spool) {
    unlink(SpoolPath(*state.target, state.batch_sequence).c_str());
  }
  state.batch_active = false;
  state.batch_from_spool = false;
  state.batch_owner.reset();
}

void Sender::Impl::StartRequests(TargetState& state, absl::Time now, absl::Time* wake_at) {
  const TargetOptions& options = state.target->options;
  while (true) {
    while (state.requests.empty()) {
      FinishBatch(state);
      if (!TakeBatch(state)) return;
    }
    uint64_t previous_chain = 0;
    for (auto it = state.requests.begin(); it != state.requests.end();) {
      Request& request = **it;
      const bool waits_for_previous = request.chain != 0 && request.chain == previous_chain;
      previous_chain = request.chain;
      if (request.easy != nullptr || waits_for_previous) {
        ++it;
        continue;
      }
      if (state.in_flight >= options.max_in_flight) return;
      if (request.not_before > now) {
        *wake_at = std::min(*wake_at, request.not_before);
        ++it;
        continue;
      }
      auto next = std::next(it);
      if (!Start(state, request, now)) {
        // Dropped and erased; a dropped piece releases the piece after it.
        previous_chain = 0;
      }
      it = next;
    }
    // Everything left is in flight or waiting; unless all were dropped, the batch goes on.
    if (!state.requests.empty()) return;
  }
}

bool Sender::Impl::Start(TargetState& state, Request& request, absl::Time now) {
  Target& target = *state.target;
  if (!request.encoded) {
    absl::StatusOr<std::string> body = EncodeBody(request.content);
    if (!body.ok()) {
      const std::string error = target.Scrub(std::string(body.status().message()));
      {
        MutexLock lock(&target.mu);
        target.active_points -= request.points;
        target.Drop(request.points, "encode_error");
        target.figures.last_error = error;
      }
      LogError("cannot encode a remote-write request; its points are dropped",
               {{"target", target.log_url}, {"error", error}});
      state.requests.erase(request.self);
      return false;
    }
    request.body = *std::move(body);
    request.encoded = true;
  }
  EasyPtr easy;
  if (!state.idle.empty()) {
    easy = std::move(state.idle.back());
    state.idle.pop_back();
  } else {
    easy = NewEasy(state);
  }
  if (easy == nullptr) {
    // Out of memory: try again later rather than lose the points.
    request.not_before = now + Backoff(target.options, request.attempts + 1);
    return true;
  }
  request.response_start.clear();
  request.error[0] = '\0';
  if (target.options.sigv4) SignAttempt(state, request, easy.get());
  curl_easy_setopt(easy.get(), CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(easy.get(), CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, &request.response_start);
  curl_easy_setopt(easy.get(), CURLOPT_ERRORBUFFER, request.error);
  curl_easy_setopt(easy.get(), CURLOPT_PRIVATE, &request);
  const CURLMcode rc = curl_multi_add_handle(multi_.get(), easy.get());
  if (rc != CURLM_OK) {
    LogError("curl_multi_add_handle failed", {{"error", curl_multi_strerror(rc)}});
    state.idle.push_back(std::move(easy));
    request.not_before = now + Backoff(target.options, request.attempts + 1);
    return true;
  }
  request.easy = std::move(easy);
  ++state.in_flight;
  ++request.attempts;
  MutexLock lock(&target.mu);
  ++target.figures.requests;
  ++target.figures.requests_in_flight;
  if (request.attempts > 1) ++target.figures.retries;
  return true;
}

void Sender::Impl::SignAttempt(TargetState& state, Request& request, CURL* easy) {
  const TargetOptions& options = state.target->options;
  // The wall clock, whatever clock paces retries: AWS checks the date against its own.
  absl::StatusOr<SigV4Signature> signature = SignSigV4(
      *options.sigv4, "POST", options.url, state.signed_headers, request.body, absl::Now());
  if (!signature.ok()) {
    // Only a URL the sender already accepted gets here; sent unsigned, the answer says why.
    LogError("cannot sign a remote-write request",
             {{"target", state.target->log_url}, {"error", std::string(signature.status().message())}});
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, state.headers.get());
    return;
  }
  curl_slist* list = nullptr;
  auto append = [&list](const std::string& line) {
    curl_slist* grown = curl_slist_append(list, line.c_str());
    if (grown != nullptr) list = grown;
  };
  for (const std::string& line : state.header_lines) append(line);
  for (const auto& [name, value] : signature->headers) append(absl::StrCat(name, ": ", value));
  request.signed_headers.reset(list);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
}

EasyPtr Sender::Impl::NewEasy(TargetState& state) {
  const TargetOptions& options = state.target->options;
  EasyPtr easy(curl_easy_init());
  if (easy == nullptr) return nullptr;
  CURL* e = easy.get();
  curl_easy_setopt(e, CURLOPT_URL, options.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, state.headers.get());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.timeout)));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.timeout)));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnResponseBody);
  if (!options.username.empty()) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(e, CURLOPT_USERNAME, options.username.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, options.password.c_str());
  }
  if (!options.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_file.c_str());
  if (!options.cert_file.empty()) curl_easy_setopt(e, CURLOPT_SSLCERT, options.cert_file.c_str());
  if (!options.key_file.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, options.key_file.c_str());
  if (options.insecure_skip_verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  return easy;
}

void Sender::Impl::OnDone(CURL* easy, CURLcode result) {
  char* private_data = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &private_data);
  Request& request = *reinterpret_cast<Request*>(private_data);
  TargetState& state = *request.owner;
  Target& target = *state.target;
  curl_multi_remove_handle(multi_.get(), easy);
  --state.in_flight;
  curl_off_t total_us = 0;
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
  {
    MutexLock lock(&target.mu);
    --target.figures.requests_in_flight;
    target.figures.send_duration.Observe(absl::Microseconds(total_us));
  }

  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  std::optional<absl::Duration> retry_after;
  if (status == 429) {
    curl_header* header = nullptr;
    if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &header) == CURLHE_OK) {
      retry_after = ParseRetryAfter(header->value, absl::Now());
    }
  }
  // Back to the pool; nothing of the request may be reached through the handle any more.
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, nullptr);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, nullptr);
  state.idle.push_back(std::move(request.easy));

  if (result != CURLE_OK) {
    const std::string detail =
        request.error[0] != '\0' ? request.error : curl_easy_strerror(result);
    Retry(state, request, target.Scrub(absl::StrCat("curl: ", detail)), std::nullopt);
    return;
  }
  const std::string body = target.Scrub(Printable(request.response_start));
  if (status >= 200 && status < 300) {
    {
      MutexLock lock(&target.mu);
      target.active_points -= request.points;
      target.figures.points_sent += request.points;
      target.figures.bytes_sent += request.body.size();
      target.figures.highest_timestamp_ms =
          target.figures.points_sent == request.points
              ? request.max_timestamp_ms
              : std::max(target.figures.highest_timestamp_ms, request.max_timestamp_ms);
    }
    if (state.failing) {
      state.failing = false;
      LogInfo("remote-write target delivers again", {{"target", target.log_url}});
    }
    state.requests.erase(request.self);
    return;
  }
  const std::string error = absl::StrCat("HTTP ", status, body.empty() ? "" : ": ", body);
  if (status == 429 || status >= 500) {
    Retry(state, request, error, retry_after);
    return;
  }
  if (status == 413 && request.points > 1 && !request.content.empty()) {
    {
      MutexLock lock(&target.mu);
      ++target.figures.failures;
      target.figures.last_error = error;
    }
    if (!request.split) {
      LogWarning("remote-write target refused a request as too large; sending it in halves",
                 {{"target", target.log_url},
                  {"points", absl::StrCat(request.points)},
                  {"bytes", absl::StrCat(request.body.size())},
                  {"body", body}});
    }
    SplitTooLarge(state, request);
    return;
  }
  // Any other answer (4xx, or a redirect, which is not followed) will not change on retry.
  {
    MutexLock lock(&target.mu);
    ++target.figures.failures;
    target.figures.last_error = error;
    target.active_points -= request.points;
    target.Drop(request.points, absl::StrCat("http_", status));
  }
  LogWarning("remote-write target rejected a request; its points are dropped",
             {{"target", target.log_url},
              {"status", absl::StrCat(status)},
              {"points", absl::StrCat(request.points)},
              {"body", body}});
  state.requests.erase(request.self);
}

void Sender::Impl::SplitTooLarge(TargetState& state, Request& request) {
  std::vector<SeriesPoints> halves[2];
  uint64_t chain = request.chain;
  if (request.content.size() >= 2) {
    // Whole series to each half, about half of the points each; disjoint series may travel
    // in parallel.
    const uint64_t half = request.points / 2;
    uint64_t taken = 0;
    size_t i = 0;
    for (; i + 1 < request.content.size() && (i == 0 || taken < half); ++i) {
      taken += request.content[i].size();
      halves[0].push_back(std::move(request.content[i]));
    }
    for (; i < request.content.size(); ++i) halves[1].push_back(std::move(request.content[i]));
  } else {
    // One series: its first points, then the rest, one after the other.
    SeriesPoints& sp = request.content.front();
    const size_t middle = sp.size() / 2;
    halves[0].push_back(sp.Slice(0, middle));
    halves[1].push_back(sp.Slice(middle, sp.size()));
    if (chain == 0) chain = next_chain_++;
  }
  for (std::vector<SeriesPoints>& content : halves) {
    auto half = std::make_unique<Request>();
    half->split = true;
    half->chain = chain;
    for (const SeriesPoints& sp : content) {
      half->points += sp.size();
      half->min_timestamp_ms = std::min(half->min_timestamp_ms, sp.min_timestamp_ms());
      half->max_timestamp_ms = std::max(half->max_timestamp_ms, sp.max_timestamp_ms());
    }
    half->content = std::move(content);
    AddRequest(state, request.self, std::move(half));
  }
  state.requests.erase(request.self);
}

void Sender::Impl::Retry(TargetState& state, Request& request, std::string error,
                         std::optional<absl::Duration> retry_after) {
  Target& target = *state.target;
  const absl::Duration delay =
      retry_after.has_value()
          ? std::max(std::min(*retry_after, kMaxRetryAfter), target.options.min_backoff)
          : Backoff(target.options, request.attempts);
  request.not_before = absl::Now() + delay;
  if (!state.failing) {
    state.failing = true;
    LogWarning(
        "remote-write request failed; retrying with backoff",
        {{"target", target.log_url}, {"error", error}, {"retry_in", absl::FormatDuration(delay)}});
  }
  MutexLock lock(&target.mu);
  ++target.figures.failures;
  target.figures.last_error = std::move(error);
}

absl::Duration Sender::Impl::Backoff(const TargetOptions& options, int attempts) {
  absl::Duration delay = options.min_backoff;
  for (int i = 1; i < attempts && delay < options.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, options.max_backoff);
  // Jitter over the upper half, so that many senders do not retry in lockstep.
  const double factor = absl::Uniform(rng_, 0.5, 1.0);
  return std::max(delay * factor, options.min_backoff);
}

void Sender::Impl::Abandon(TargetState& state, absl::string_view reason) {
  for (const std::unique_ptr<Request>& request : state.requests) {
    if (request->easy != nullptr) curl_multi_remove_handle(multi_.get(), request->easy.get());
  }
  state.in_flight = 0;
  Target& target = *state.target;
  std::deque<QueuedBatch> waiting;
  {
    MutexLock lock(&target.mu);
    target.figures.requests_in_flight = 0;  // abandoned with the handles above
    target.removing = true;                 // Enqueue drops from now on
    waiting.swap(target.waiting);
    target.waiting_spooled_batches = 0;
    target.waiting_spooled_points = 0;
    target.waiting_memory_points = 0;
    target.active_points = 0;
  }
  const bool spool = spool_enabled() && (reason == "shutdown_timeout" || reason == "shutdown");
  absl::flat_hash_map<std::string, uint64_t> dropped;
  uint64_t spooled = 0;

  // The rest of the batch being delivered (requests in flight included: they may have
  // arrived, and are then sent again, as a retry would).
  uint64_t active = 0;
  for (const std::unique_ptr<Request>& request : state.requests) active += request->points;
  if (active > 0 && spool) {
    std::vector<SpooledRequest> requests;
    int64_t first = std::numeric_limits<int64_t>::max();
    int64_t last = std::numeric_limits<int64_t>::min();
    absl::Status status;
    for (const std::unique_ptr<Request>& request : state.requests) {
      if (!request->encoded) {
        absl::StatusOr<std::string> body = EncodeBody(request->content);
        if (!body.ok()) {
          status = body.status();
          break;
        }
        request->body = *std::move(body);
      }
      requests.push_back(
          {request->points, request->chain, request->max_timestamp_ms, std::move(request->body)});
      first = std::min(first, request->min_timestamp_ms);
      last = std::max(last, request->max_timestamp_ms);
    }
    if (status.ok()) {
      status = SpoolWrite(target, state.batch_sequence, requests, first, last, 0);
    }
    if (status.ok()) {
      spooled += active;
      state.batch_from_spool = false;  // the file now holds the rest: keep it
    } else {
      dropped[absl::IsResourceExhausted(status) ? "spool_full" : std::string(reason)] += active;
    }
  } else {
    dropped[std::string(reason)] += active;
  }
  state.requests.clear();
  FinishBatch(state);

  for (QueuedBatch& queued : waiting) {
    if (queued.spooled) {
      bool present = false;
      {
        MutexLock lock(&spool_mu_);
        auto it = spool_.find(queued.sequence);
        if (it != spool_.end() && it->second.owner == target.id) {
          present = true;
          it->second.owner = 0;  // for a target added later
        }
      }
      if (present) {
        spooled += queued.points;
      } else {
        dropped["spool_full"] += queued.points;
      }
      continue;
    }
    absl::Status status = absl::UnavailableError("no spool");
    if (spool) status = SpoolBatch(target, queued, 0);
    if (status.ok()) {
      spooled += queued.points;
    } else {
      dropped[spool && absl::IsResourceExhausted(status) ? "spool_full" : std::string(reason)] +=
          queued.points;
    }
  }
  if (spool_enabled()) {
    MutexLock lock(&spool_mu_);
    evicted_.erase(target.id);
  }

  uint64_t lost = 0;
  for (const auto& [why, n] : dropped) lost += n;
  if (lost > 0) {
    LogWarning("remote-write target abandoned with points undelivered",
               {{"target", target.log_url},
                {"reason", std::string(reason)},
                {"points", absl::StrCat(lost)}});
  }
  if (spooled > 0) {
    LogWarning("remote-write target's undelivered points spooled to disk",
               {{"target", target.log_url},
                {"reason", std::string(reason)},
                {"points", absl::StrCat(spooled)},
                {"spool_dir", options_.spool_dir}});
  }
  MutexLock lock(&target.mu);
  for (const auto& [why, n] : dropped) target.Drop(n, why);
  target.Drop(spooled, "spooled");
  target.finished = true;
  target.finished_cv.SignalAll();
}

Sender::Sender()
    : impl_(std::make_unique<Impl>(SenderOptions(), std::vector<SpoolFileInfo>(), -1)) {}
Sender::Sender(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sender::~Sender() = default;

absl::StatusOr<std::unique_ptr<Sender>> Sender::Create(SenderOptions options) {
  if (options.spool_dir.empty()) {
    return std::unique_ptr<Sender>(
        new Sender(std::make_unique<Impl>(std::move(options), std::vector<SpoolFileInfo>(), -1)));
  }
  if (options.spool_max_bytes == 0) {
    return absl::InvalidArgumentError("spool_max_bytes: must be positive");
  }
  // Lock first: the scan tidies the directory, which only its owner may do.
  if (mkdir(options.spool_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InvalidArgumentError(absl::StrCat("spool_dir: cannot create \"", options.spool_dir,
                                                   "\": ", std::strerror(errno)));
  }
  const std::string lock_path = absl::StrCat(options.spool_dir, "/.lock");
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spool_dir: cannot open \"", lock_path, "\": ", std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat("spool_dir: \"", options.spool_dir,
                                                      "\" is in use by another rwexport sender"));
  }
  absl::StatusOr<std::vector<SpoolFileInfo>> files = ScanSpoolDir(options.spool_dir);
  if (!files.ok()) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("spool_dir: ", files.status().message()));
  }
  return std::unique_ptr<Sender>(
      new Sender(std::make_unique<Impl>(std::move(options), *std::move(files), fd)));
}

absl::StatusOr<Sender::TargetId> Sender::AddTarget(TargetOptions options) {
  return impl_->AddTarget(std::move(options));
}
void Sender::Enqueue(TargetId id, PointBatch batch) { impl_->Enqueue(id, std::move(batch)); }
TargetFigures Sender::RemoveTarget(TargetId id, absl::Time deadline) {
  return impl_->RemoveTarget(id, deadline);
}
TargetFigures Sender::Figures(TargetId id) const { return impl_->Figures(id); }
SpoolFigures Sender::Spool() const { return impl_->Spool(); }

}  // namespace rwexport
