// A tiny HTTP/1.1 remote-write receiver for tests, with fault injection.
//
// It listens on 127.0.0.1 (port chosen by the kernel, kept across StopListening/Listen), serves
// each connection in its own thread with keep-alive, reads POST bodies (Content-Length),
// snappy-decodes and parses them as prometheus.WriteRequest, records every request, and answers
// from a script: queued FakeResponses first, then a default (204 No Content). A response can be
// delayed, held until released ("stall"), or replaced by a connection reset.
//
// Thread-safe, except that Listen, StopListening and the destructor must not run concurrently
// with one another. Every wait is bounded.
#ifndef RWEXPORT_TESTS_TESTING_FAKE_RECEIVER_H_
#define RWEXPORT_TESTS_TESTING_FAKE_RECEIVER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/common/mutex.h"
#include "prometheus/remote.pb.h"

namespace rwexport {

// One scripted answer.
struct FakeResponse {
  int status = 204;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Wait this long before answering (cut short by StopListening).
  absl::Duration delay = absl::ZeroDuration();
  // Hold the answer until ReleaseStalled() or StopListening (at most 30 s), then answer.
  bool stall = false;
  // Reset the connection (TCP RST) instead of answering.
  bool reset = false;
  // Append the request's headers to the body, one "Name: value" per line (as some servers'
  // error pages do).
  bool echo_headers = false;

  static FakeResponse WithStatus(int status, std::string body = "") {
    FakeResponse response;
    response.status = status;
    response.body = std::move(body);
    return response;
  }
};

// One request as received.
struct ReceivedRequest {
  // Requests with the same id came over the same TCP connection.
  uint64_t connection_id = 0;
  std::string method;
  // Path and query, as on the request line.
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // as received (compressed)
  // OK when the body was snappy-compressed and parsed as a WriteRequest.
  absl::Status decode_status;
  prometheus::WriteRequest write_request;
  // The answer chosen for it (not sent if the receiver stopped listening first).
  FakeResponse answer;
  // By the receiver's clock (see FakeReceiver::Start).
  absl::Time received_at;

  // The value of the first header called `name` (case-insensitive), if any.
  std::optional<std::string> Header(absl::string_view name) const;
};

class FakeReceiver {
 public:
  // Listens on 127.0.0.1 on a port the kernel picks. `clock` dates received requests
  // (received_at): the wall clock, or a test's fake clock.
  static absl::StatusOr<std::unique_ptr<FakeReceiver>> Start(std::function<absl::Time()> clock =
                                                                 [] { return absl::Now(); });
  ~FakeReceiver();
  FakeReceiver(const FakeReceiver&) = delete;
  FakeReceiver& operator=(const FakeReceiver&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>" + path_and_query.
  std::string Url(absl::string_view path_and_query = "/api/v1/write") const;

  // Appends an answer to the script; requests consume the script in arrival order.
  void Push(FakeResponse response);
  // The answer once the script is empty.
  void SetDefault(FakeResponse response);
  // Lets every request held by a `stall` answer be answered.
  void ReleaseStalled();

  // True once at least `n` requests have arrived; false if `timeout` passed first.
  bool WaitForRequests(size_t n, absl::Duration timeout) const;
  // True once `done` holds for the requests received so far (checked on each new request);
  // false if `timeout` passed first. `done` runs under the receiver's lock: it must not call
  // the receiver.
  bool WaitUntil(const std::function<bool(const std::vector<ReceivedRequest>&)>& done,
                 absl::Duration timeout) const;
  std::vector<ReceivedRequest> Requests() const;
  size_t RequestCount() const;

  // Closes the listening socket and every open connection (an outage): connections are
  // refused until Listen().
  void StopListening();
  // Listens again on the same port.
  absl::Status Listen();

 private:
  FakeReceiver() = default;

  std::function<absl::Time()> clock_;
  void AcceptLoop(int listen_fd, int wake_fd, uint64_t generation);
  void Serve(int fd, uint64_t connection_id, uint64_t generation);
  bool Live(uint64_t generation) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return generation == generation_;
  }

  int port_ = 0;
  // Owned by Listen/StopListening.
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::thread accept_thread_;

  mutable Mutex mu_;
  // Signalled on every new request, release, and stop.
  mutable CondVar cv_;
  // Bumped by StopListening; connections of an older generation end.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_connection_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t stall_releases_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<int> connection_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> connection_threads_ ABSL_GUARDED_BY(mu_);
  std::deque<FakeResponse> script_ ABSL_GUARDED_BY(mu_);
  FakeResponse default_response_ ABSL_GUARDED_BY(mu_);
  std::vector<ReceivedRequest> requests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_FAKE_RECEIVER_H_
