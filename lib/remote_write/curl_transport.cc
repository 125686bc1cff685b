#include "lib/remote_write/curl_transport.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/common/log.h"
#include "lib/remote_write/sigv4.h"

namespace rwexport {
namespace {

constexpr size_t kMaxLoggedBody = 256;
constexpr char kUserAgent[] = "rwexport/0.1";

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
      LogError("curl_global_init failed", {{"error", curl_easy_strerror(rc)}});
    }
  });
}

size_t OnResponseBody(char* data, size_t size, size_t count, void* user_data) {
  auto* start = static_cast<std::string*>(user_data);
  const size_t bytes = size * count;
  if (start->size() < kMaxLoggedBody) {
    start->append(data, std::min(bytes, kMaxLoggedBody - start->size()));
  }
  return bytes;
}

// The request headers of a target: the remote-write protocol's, credentials, extra headers.
std::vector<std::string> RequestHeaderLines(const TargetOptions& options) {
  std::vector<std::string> lines;
  auto append = [&lines](std::string line) { lines.push_back(std::move(line)); };
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
  return lines;
}

curl_slist* ToSlist(const std::vector<std::string>& lines) {
  curl_slist* list = nullptr;
  for (const std::string& line : lines) {
    curl_slist* grown = curl_slist_append(list, line.c_str());
    if (grown != nullptr) list = grown;
  }
  return list;
}

// The headers a SigV4 signature covers besides Host and X-Amz-*: those of the protocol.
const std::vector<std::pair<std::string, std::string>>& SignedProtocolHeaders() {
  static const auto* const headers = new std::vector<std::pair<std::string, std::string>>{
      {"Content-Encoding", "snappy"},
      {"Content-Type", "application/x-protobuf"},
      {"X-Prometheus-Remote-Write-Version", "0.1.0"}};
  return *headers;
}

}  // namespace

CurlTransport::CurlTransport()
    : multi_([] {
        GlobalInitOnce();
        return curl_multi_init();
      }()) {
  if (multi_ == nullptr) {
    LogError("curl_multi_init failed: libcurl is unusable");
    std::abort();
  }
}

void CurlTransport::Wake() { curl_multi_wakeup(multi_.get()); }

void CurlTransport::SetMaxConnects(long connections) {
  curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, connections);
}

bool CurlTransport::Add(CURL* easy) {
  const CURLMcode rc = curl_multi_add_handle(multi_.get(), easy);
  if (rc != CURLM_OK) {
    LogError("curl_multi_add_handle failed", {{"error", curl_multi_strerror(rc)}});
    return false;
  }
  return true;
}

void CurlTransport::Remove(CURL* easy) { curl_multi_remove_handle(multi_.get(), easy); }

bool CurlTransport::Perform(absl::FunctionRef<void(CURL*, CURLcode)> on_done) {
  int running = 0;
  curl_multi_perform(multi_.get(), &running);
  bool completed = false;
  int left = 0;
  while (CURLMsg* message = curl_multi_info_read(multi_.get(), &left)) {
    if (message->msg != CURLMSG_DONE) continue;
    CURL* const easy = message->easy_handle;
    const CURLcode result = message->data.result;
    on_done(easy, result);
    completed = true;
  }
  return completed;
}

void CurlTransport::Poll(absl::Duration wait) {
  wait = std::max(wait, absl::ZeroDuration());
  const int wait_ms = static_cast<int>(std::ceil(absl::ToDoubleMilliseconds(wait)));
  curl_multi_poll(multi_.get(), nullptr, 0, wait_ms, nullptr);
}

EasyPool::EasyPool(const TargetOptions& options)
    : options_(options),
      headers_(ToSlist(RequestHeaderLines(options))),
      header_lines_(RequestHeaderLines(options)) {}

EasyPtr EasyPool::Take() {
  if (idle_.empty()) return NewEasy();
  EasyPtr easy = std::move(idle_.back());
  idle_.pop_back();
  return easy;
}

void EasyPool::Prepare(CURL* easy, absl::string_view body, Transfer* transfer, void* owner) const {
  transfer->response_start.clear();
  transfer->error[0] = '\0';
  if (options_.sigv4) Sign(easy, body, transfer);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer->response_start);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, owner);
}

void EasyPool::Sign(CURL* easy, absl::string_view body, Transfer* transfer) const {
  // The wall clock, whatever clock paces retries: AWS checks the date against its own.
  absl::StatusOr<SigV4Signature> signature =
      SignSigV4(*options_.sigv4, "POST", options_.url, SignedProtocolHeaders(), body, absl::Now());
  if (!signature.ok()) {
    // Only a URL the sender already accepted gets here; sent unsigned, the answer says why.
    LogError("cannot sign a remote-write request",
             {{"error", std::string(signature.status().message())}});
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers_.get());
    return;
  }
  std::vector<std::string> lines = header_lines_;
  for (const auto& [name, value] : signature->headers)
    lines.push_back(absl::StrCat(name, ": ", value));
  transfer->signed_headers.reset(ToSlist(lines));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->signed_headers.get());
}

TransferResult EasyPool::Read(CURL* easy) {
  TransferResult out;
  char* private_data = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &private_data);
  out.owner = private_data;
  curl_off_t total_us = 0;
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
  out.total_time = absl::Microseconds(total_us);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out.http_status);
  if (out.http_status == 429) {
    curl_header* header = nullptr;
    if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &header) == CURLHE_OK) {
      out.retry_after = std::string(header->value);
    }
  }
  return out;
}

void EasyPool::Return(EasyPtr easy) {
  curl_easy_setopt(easy.get(), CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, nullptr);
  curl_easy_setopt(easy.get(), CURLOPT_PRIVATE, nullptr);
  idle_.push_back(std::move(easy));
}

EasyPtr EasyPool::NewEasy() const {
  EasyPtr easy(curl_easy_init());
  if (easy == nullptr) return nullptr;
  CURL* e = easy.get();
  curl_easy_setopt(e, CURLOPT_URL, options_.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_.get());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnResponseBody);
  if (!options_.username.empty()) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(e, CURLOPT_USERNAME, options_.username.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, options_.password.c_str());
  }
  if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (!options_.cert_file.empty()) {
    curl_easy_setopt(e, CURLOPT_SSLCERT, options_.cert_file.c_str());
  }
  if (!options_.key_file.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, options_.key_file.c_str());
  if (options_.insecure_skip_verify) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  return easy;
}

std::string Printable(absl::string_view body) {
  std::string out(body);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = ' ';
  }
  return std::string(absl::StripTrailingAsciiWhitespace(out));
}

}  // namespace rwexport
