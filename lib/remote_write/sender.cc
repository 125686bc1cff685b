#include "lib/remote_write/sender.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/common/mutex.h"
#include "lib/remote_write/encoder.h"

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
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout: must be positive");
  }
  if (options.max_in_flight == 0) {
    return absl::InvalidArgumentError("max_in_flight: must be at least 1");
  }
  if (options.max_points_per_request == 0) {
    return absl::InvalidArgumentError("max_points_per_request: must be at least 1");
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

std::string RedactUrl(absl::string_view url) {
  UrlPtr parsed(curl_url());
  if (parsed == nullptr ||
      curl_url_set(parsed.get(), CURLUPART_URL, std::string(url).c_str(), 0) != CURLUE_OK) {
    return "<unparseable url>";
  }
  if (UrlPart(parsed.get(), CURLUPART_USER).empty() &&
      UrlPart(parsed.get(), CURLUPART_PASSWORD).empty() &&
      UrlPart(parsed.get(), CURLUPART_OPTIONS).empty()) {
    return std::string(url);
  }
  curl_url_set(parsed.get(), CURLUPART_USER, nullptr, 0);
  curl_url_set(parsed.get(), CURLUPART_PASSWORD, nullptr, 0);
  curl_url_set(parsed.get(), CURLUPART_OPTIONS, nullptr, 0);
  const std::string redacted = UrlPart(parsed.get(), CURLUPART_URL);
  return redacted.empty() ? "<unparseable url>" : redacted;
}

class Sender::Impl {
 public:
  Impl();
  ~Impl();

  absl::StatusOr<TargetId> AddTarget(TargetOptions options);
  void Enqueue(TargetId id, PointBatch batch);
  TargetFigures RemoveTarget(TargetId id, absl::Time deadline);
  TargetFigures Figures(TargetId id) const;

 private:
  struct QueuedBatch {
    PointBatch batch;
    uint64_t points;
  };

  // A target as callers and the sender thread share it.
  struct Target {
    Target(TargetId id, TargetOptions options)
        : id(id), options(std::move(options)), log_url(RedactUrl(this->options.url)) {}

    // Points leave `waiting_points`/`active_points` for the drop counters.
    void Drop(uint64_t points, absl::string_view reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (points == 0) return;
      figures.points_dropped += points;
      figures.dropped_by_reason[reason] += points;
    }
    TargetFigures Snapshot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      TargetFigures out = figures;
      out.points_queued = waiting_points + active_points;
      return out;
    }

    const TargetId id;
    const TargetOptions options;
    const std::string log_url;  // redacted

    mutable Mutex mu;
    CondVar finished_cv;
    // Batches not started yet, oldest first.
    std::deque<QueuedBatch> waiting ABSL_GUARDED_BY(mu);
    uint64_t waiting_points ABSL_GUARDED_BY(mu) = 0;
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
    std::vector<SeriesPoints> content;  // released once encoded
    bool encoded = false;
    std::string body;  // snappy(WriteRequest)
    uint64_t points = 0;
    int64_t max_timestamp_ms = std::numeric_limits<int64_t>::min();
    // Non-zero for the pieces of one series too long for a single request: a piece starts only
    // after the previous piece (the request before it) has finished.
    uint64_t chain = 0;
    int attempts = 0;
    absl::Time not_before = absl::InfinitePast();
    EasyPtr easy;  // while in flight
    std::string response_start;
    char error[CURL_ERROR_SIZE] = {};
  };

  // A target as the sender thread sees it. Owned by the sender thread.
  struct TargetState {
    std::shared_ptr<Target> target;
    SlistPtr headers;           // outlives the easy handles that point at it
    std::vector<EasyPtr> idle;  // configured for this target, ready for the next request
    // The unfinished requests of the batch being delivered, in order.
    std::list<std::unique_ptr<Request>> requests;
    size_t in_flight = 0;
    bool failing = false;
  };

  std::shared_ptr<Target> Find(TargetId id) const;
  void Wake();

  // The sender thread and what only it calls.
  void Run();
  void Adopt(std::shared_ptr<Target> target);
  // Returns true when the target is finished and its state may be destroyed.
  bool Advance(TargetState& state, absl::Time now, absl::Time* wake_at);
  bool TakeBatch(TargetState& state);
  void StartRequests(TargetState& state, absl::Time now, absl::Time* wake_at);
  // False when the request was dropped instead (it is then erased).
  bool Start(TargetState& state, Request& request, absl::Time now);
  EasyPtr NewEasy(TargetState& state);
  void OnDone(CURL* easy, CURLcode result);
  void Retry(TargetState& state, Request& request, std::string error,
             std::optional<absl::Duration> retry_after);
  absl::Duration Backoff(const TargetOptions& options, int attempts);
  // Abandons everything in flight and queued (dropped with `reason`) and marks it finished.
  void Abandon(TargetState& state, absl::string_view reason);
  void UpdateMaxConnects();

  const MultiPtr multi_;

  mutable Mutex mu_;
  TargetId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<TargetId, std::shared_ptr<Target>> targets_ ABSL_GUARDED_BY(mu_);
  // Added, not yet seen by the sender thread.
  std::vector<std::shared_ptr<Target>> added_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Owned by the sender thread.
  absl::flat_hash_map<TargetId, std::unique_ptr<TargetState>> states_;
  absl::BitGen rng_;
  uint64_t next_chain_ = 1;

  std::thread thread_;  // last, so that it starts after everything above exists
};

Sender::Impl::Impl()
    : multi_([] {
        GlobalInitOnce();
        return curl_multi_init();
      }()) {
  if (multi_ == nullptr) {
    LogError("curl_multi_init failed: libcurl is unusable");
    std::abort();
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
}

absl::StatusOr<Sender::TargetId> Sender::Impl::AddTarget(TargetOptions options) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;
  std::shared_ptr<Target> target;
  {
    MutexLock lock(&mu_);
    target = std::make_shared<Target>(next_id_++, std::move(options));
    targets_[target->id] = target;
    added_.push_back(target);
  }
  Wake();
  LogInfo("remote-write target added",
          {{"target", target->log_url}, {"target_id", absl::StrCat(target->id)}});
  return target->id;
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
  bool log_drop = false;
  {
    MutexLock lock(&target->mu);
    if (target->removing || target->finished) {
      target->Drop(points, "target_removed");
      return;
    }
    if (points == 0) return;
    target->waiting.push_back(QueuedBatch{std::move(batch), points});
    target->waiting_points += points;
    while (target->waiting_points + target->active_points > target->options.max_queued_points &&
           !target->waiting.empty()) {
      const uint64_t oldest = target->waiting.front().points;
      target->waiting.pop_front();
      target->waiting_points -= oldest;
      target->Drop(oldest, "queue_full");
      dropped += oldest;
    }
    const absl::Time now = absl::Now();
    if (dropped > 0 && now - target->last_queue_full_log >= absl::Seconds(10)) {
      target->last_queue_full_log = now;
      log_drop = true;
    }
  }
  if (log_drop) {
    LogWarning("remote-write queue full, oldest batches dropped",
               {{"target", target->log_url},
                {"points", absl::StrCat(dropped)},
                {"max_queued_points", absl::StrCat(target->options.max_queued_points)}});
  }
  Wake();
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
  auto append = [&headers](const std::string& line) {
    curl_slist* grown = curl_slist_append(headers, line.c_str());
    if (grown != nullptr) headers = grown;
  };
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

bool Sender::Impl::TakeBatch(TargetState& state) {
  Target& target = *state.target;
  QueuedBatch queued;
  {
    MutexLock lock(&target.mu);
    if (target.waiting.empty()) return false;
    queued = std::move(target.waiting.front());
    target.waiting.pop_front();
    target.waiting_points -= queued.points;
    target.active_points += queued.points;
  }
  const size_t cap = target.options.max_points_per_request;
  auto add_request = [&](std::vector<SeriesPoints> content, uint64_t points, uint64_t chain) {
    auto request = std::make_unique<Request>();
    request->owner = &state;
    request->points = points;
    request->chain = chain;
    for (const SeriesPoints& sp : content) {
      for (const Point& p : sp.points) {
        request->max_timestamp_ms = std::max(request->max_timestamp_ms, p.timestamp_ms);
      }
    }
    request->content = std::move(content);
    Request* raw = request.get();
    state.requests.push_back(std::move(request));
    raw->self = std::prev(state.requests.end());
  };
  std::vector<SeriesPoints> current;
  uint64_t current_points = 0;
  auto flush = [&] {
    if (current.empty()) return;
    add_request(std::move(current), current_points, 0);
    current.clear();
    current_points = 0;
  };
  for (SeriesPoints& sp : queued.batch.series) {
    const size_t n = sp.points.size();
    if (n == 0) continue;
    if (n > cap) {
      flush();
      const uint64_t chain = next_chain_++;
      for (size_t begin = 0; begin < n; begin += cap) {
        const size_t end = std::min(n, begin + cap);
        std::vector<SeriesPoints> piece(1);
        piece[0].series = sp.series;
        piece[0].points.assign(sp.points.begin() + begin, sp.points.begin() + end);
        add_request(std::move(piece), end - begin, chain);
      }
      continue;
    }
    if (current_points + n > cap) flush();
    current_points += n;
    current.push_back(std::move(sp));
  }
  flush();
  return true;
}

void Sender::Impl::StartRequests(TargetState& state, absl::Time now, absl::Time* wake_at) {
  const TargetOptions& options = state.target->options;
  while (true) {
    while (state.requests.empty()) {
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
    const std::string raw = EncodeWriteRequest(request.content);
    absl::StatusOr<std::string> body = SnappyCompress(raw);
    request.content.clear();
    request.content.shrink_to_fit();
    if (!body.ok()) {
      {
        MutexLock lock(&target.mu);
        target.active_points -= request.points;
        target.Drop(request.points, "encode_error");
        target.figures.last_error = std::string(body.status().message());
      }
      LogError("cannot encode a remote-write request; its points are dropped",
               {{"target", target.log_url}, {"error", std::string(body.status().message())}});
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
  if (request.attempts > 1) ++target.figures.retries;
  return true;
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
    Retry(state, request, absl::StrCat("curl: ", detail), std::nullopt);
    return;
  }
  const std::string body = Printable(request.response_start);
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
  state.requests.clear();
  state.in_flight = 0;
  Target& target = *state.target;
  uint64_t dropped = 0;
  {
    MutexLock lock(&target.mu);
    dropped = target.active_points + target.waiting_points;
    target.Drop(dropped, reason);
    target.active_points = 0;
    target.waiting_points = 0;
    target.waiting.clear();
  }
  if (dropped > 0) {
    LogWarning("remote-write target abandoned with points undelivered",
               {{"target", target.log_url},
                {"reason", std::string(reason)},
                {"points", absl::StrCat(dropped)}});
  }
  MutexLock lock(&target.mu);
  target.finished = true;
  target.finished_cv.SignalAll();
}

Sender::Sender() : impl_(std::make_unique<Impl>()) {}
Sender::~Sender() = default;

absl::StatusOr<Sender::TargetId> Sender::AddTarget(TargetOptions options) {
  return impl_->AddTarget(std::move(options));
}
void Sender::Enqueue(TargetId id, PointBatch batch) { impl_->Enqueue(id, std::move(batch)); }
TargetFigures Sender::RemoveTarget(TargetId id, absl::Time deadline) {
  return impl_->RemoveTarget(id, deadline);
}
TargetFigures Sender::Figures(TargetId id) const { return impl_->Figures(id); }

}  // namespace rwexport
