// rwexport's gRPC service with its whole engine (worker pool, sender, export registry) inside
// the calling process, listening on loopback: what `rwexport bench` measures and what tests
// talk to. The wiring is rwexport_server's, without its flags, signals, health and reflection
// services. Thread-safe.
#ifndef RWEXPORT_SERVER_IN_PROCESS_SERVER_H_
#define RWEXPORT_SERVER_IN_PROCESS_SERVER_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/export/export.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/export_service.h"
#include "server/influx_endpoint.h"
#include "server/security.h"

namespace rwexport {

struct InProcessServerOptions {
  ExportOptions exports;
  // Aggregation worker threads (at least 1).
  size_t workers = 2;
  // host:port; port 0 picks a free one.
  std::string listen = "127.0.0.1:0";
  int max_message_bytes = 64 << 20;
  // TLS and client certificates for the listener (none: plaintext).
  ListenerSecurity security;
  // Non-empty: every ExportService call must carry it as a bearer token.
  std::string auth_token;
  // Set: the InfluxDB write API is served too (its auth_token is this server's).
  std::optional<InfluxEndpointOptions> influx;
};

class InProcessServer {
 public:
  // Starts serving. UNAVAILABLE when the address cannot be listened on; INVALID_ARGUMENT for
  // unusable TLS files.
  static absl::StatusOr<std::unique_ptr<InProcessServer>> Start(
      InProcessServerOptions options = {});
  // Stops every export (flushed and delivered, bounded by the default delivery timeout), then
  // the server.
  ~InProcessServer();
  InProcessServer(const InProcessServer&) = delete;
  InProcessServer& operator=(const InProcessServer&) = delete;

  // "127.0.0.1:<port>" (the listen host with the chosen port).
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // A new stub on a new plaintext channel to the server.
  std::unique_ptr<v1::ExportService::Stub> NewStub() const;
  ExportRegistry& registry() { return *registry_; }
  // The InfluxDB write API's port; 0 when it is not served.
  int influx_port() const { return influx_ != nullptr ? influx_->port() : 0; }

 private:
  explicit InProcessServer(size_t workers);

  WorkerPool pool_;
  Sender sender_;
  std::unique_ptr<ExportRegistry> registry_;
  std::unique_ptr<ExportServiceImpl> service_;
  std::unique_ptr<InfluxEndpoint> influx_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  int port_ = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_IN_PROCESS_SERVER_H_
