// A loopback TCP proxy for tests that cut connections: every connection accepted is relayed to
// the target; CutAll() breaks the open ones (new ones are still accepted); destruction stops
// listening and breaks them all. Thread-safe.
#ifndef RWEXPORT_TESTS_TESTING_TCP_PROXY_H_
#define RWEXPORT_TESTS_TESTING_TCP_PROXY_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/common/mutex.h"

namespace rwexport {

class TcpProxy {
 public:
  // Listens on 127.0.0.1 (a free port) and relays to `target` ("127.0.0.1:PORT").
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(const std::string& target);
  ~TcpProxy();

  // "127.0.0.1:PORT" to connect to.
  const std::string& address() const { return address_; }
  // Breaks every open connection (both sides see it closed).
  void CutAll();

 private:
  TcpProxy() = default;
  void AcceptLoop();
  void Relay(int client, int server);

  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  int target_port_ = 0;
  std::string address_;
  std::thread acceptor_;
  Mutex mu_;
  std::vector<int> open_fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> relays_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_TCP_PROXY_H_
