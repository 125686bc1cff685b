// A remote-write endpoint that accepts everything and keeps nothing: an HTTP/1.1 server on
// 127.0.0.1 that answers every request with 204 No Content (keep-alive), counting requests,
// body bytes and, if asked, the points in them (snappy + WriteRequest decoding). It is the
// target of `rwexport bench`, where what a real receiver costs must not be measured, and a
// quick sink for trying the sender by hand.
//
// One thread serves every connection (poll, non-blocking sockets). Requests need a
// Content-Length (chunked bodies are answered 411 and the connection closed); headers are
// capped at 64 KiB and bodies at 64 MiB (431 / 413, connection closed).
//
// Thread-safe: Counts() may be called from any thread while the receiver runs.
#ifndef RWEXPORT_LIB_BENCH_NULL_RECEIVER_H_
#define RWEXPORT_LIB_BENCH_NULL_RECEIVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace rwexport {

struct NullReceiverOptions {
  // Decode each body (snappy, then prometheus.WriteRequest) to count its points. Costs the
  // receiver's thread about as much as encoding cost the sender.
  bool count_points = true;
};

struct NullReceiverCounts {
  uint64_t requests = 0;
  // Request bodies as received (compressed).
  uint64_t body_bytes = 0;
  // Float samples plus histogram samples, when count_points; 0 otherwise.
  uint64_t points = 0;
  // Bodies that were not snappy-compressed WriteRequests (when count_points); still 204.
  uint64_t decode_errors = 0;
};

class NullReceiver {
 public:
  // Listens on 127.0.0.1, on a port the kernel picks, and starts serving.
  static absl::StatusOr<std::unique_ptr<NullReceiver>> Start(NullReceiverOptions options = {});
  // Stops serving: closes the listener and every connection, joins the thread.
  ~NullReceiver();
  NullReceiver(const NullReceiver&) = delete;
  NullReceiver& operator=(const NullReceiver&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>/api/v1/write".
  std::string Url() const;
  NullReceiverCounts Counts() const;

 private:
  struct Connection;
  NullReceiver(NullReceiverOptions options, int listen_fd, int port, int wake_read, int wake_write);
  void Loop();
  // Answers every complete request in `c`'s input; sets close_after_write when the
  // connection must close once the answers are out.
  void Process(Connection* c);

  const NullReceiverOptions options_;
  const int listen_fd_;
  const int port_;
  const int wake_read_;
  const int wake_write_;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> body_bytes_{0};
  std::atomic<uint64_t> points_{0};
  std::atomic<uint64_t> decode_errors_{0};
  std::thread thread_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_BENCH_NULL_RECEIVER_H_
