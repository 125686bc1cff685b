// The libcurl side of the sender: one multi handle running every transfer, and per target a
// pool of easy handles configured for it (URL, credentials, TLS, headers).
//
// One thread owns the multi handle and the pools: perform, drain finished transfers, poll;
// other threads only call CurlTransport::Wake. Not thread-safe otherwise.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_CURL_TRANSPORT_H_
#define RWEXPORT_LIB_REMOTE_WRITE_CURL_TRANSPORT_H_

#include <curl/curl.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/remote_write/curl_handles.h"
#include "lib/remote_write/target_options.h"

namespace rwexport {

class CurlTransport {
 public:
  // Initialises libcurl once per process; aborts when it is unusable.
  CurlTransport();
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  // Any thread: makes the current or next Poll return at once.
  void Wake();

  // Idle connections kept for reuse.
  void SetMaxConnects(long connections);
  // Starts the transfer of `easy`; false (logged) when libcurl refuses it.
  bool Add(CURL* easy);
  // Detaches `easy`, finished or abandoned.
  void Remove(CURL* easy);
  // Runs the transfers, then calls `on_done` for each finished one (still attached: on_done
  // detaches it). True when any finished.
  bool Perform(absl::FunctionRef<void(CURL*, CURLcode)> on_done);
  // Waits for network activity, Wake, or `wait`.
  void Poll(absl::Duration wait);

 private:
  const MultiPtr multi_;
};

// What one transfer writes into; reachable from its handle while it runs.
struct Transfer {
  // The response body's first bytes.
  std::string response_start;
  char error[CURL_ERROR_SIZE] = {};
  // SigV4: this attempt's request headers, its signature included.
  SlistPtr signed_headers;
};

// What a finished transfer says.
struct TransferResult {
  void* owner = nullptr;  // as given to EasyPool::Prepare
  long http_status = 0;
  absl::Duration total_time;
  // The Retry-After header of a 429 answer.
  std::optional<std::string> retry_after;
};

// One target's easy handles, reused from one request to the next (their connections too).
class EasyPool {
 public:
  // `options` must outlive the pool.
  explicit EasyPool(const TargetOptions& options);
  EasyPool(const EasyPool&) = delete;
  EasyPool& operator=(const EasyPool&) = delete;

  // An idle handle, or a new one; nullptr when out of memory.
  EasyPtr Take();
  // Sets `easy` to POST `body` (which must outlive the transfer), writing into `transfer`,
  // with `owner` as the private pointer TransferResult gives back. With SigV4, signs the
  // request now (every attempt anew, so a retry carries a fresh date).
  void Prepare(CURL* easy, absl::string_view body, Transfer* transfer, void* owner) const;
  // What the finished transfer of `easy` says.
  static TransferResult Read(CURL* easy);
  // Back to the pool, with nothing of the finished request reachable through it.
  void Return(EasyPtr easy);

 private:
  EasyPtr NewEasy() const;

  // SigV4: signs `body` now and points `easy` at `transfer`'s own header list.
  void Sign(CURL* easy, absl::string_view body, Transfer* transfer) const;

  const TargetOptions& options_;
  SlistPtr headers_;                       // outlives the easy handles that point at it
  std::vector<std::string> header_lines_;  // the lines of headers_, for SigV4's lists
  std::vector<EasyPtr> idle_;
};

// The start of a response body, fit for a log line or last_error (not yet scrubbed).
std::string Printable(absl::string_view body);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_CURL_TRANSPORT_H_
