// rwexport's gRPC server in the test process, on a free loopback port (server/server.h, the
// wiring rwexport_server and `rwexport bench` use), with options a test can set; a test
// cannot go on without it, so a failure to start aborts. Thread-safe.
#ifndef RWEXPORT_TESTS_TESTING_TEST_SERVER_H_
#define RWEXPORT_TESTS_TESTING_TEST_SERVER_H_

#include <memory>
#include <optional>
#include <string>

#include "lib/export/export.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/security.h"
#include "server/server.h"

namespace rwexport {

struct TestServerOptions {
  ExportOptions exports;
  size_t workers = 2;
  // > 0: limits the size of one received gRPC message.
  int max_message_bytes = 0;
  ListenerSecurity security;
  // Non-empty: calls must carry it as a bearer token.
  std::string auth_token;
  // Set: the InfluxDB write API is served too, on a free loopback port (listen is ignored).
  std::optional<InfluxEndpointOptions> influx;
  // Non-empty (e.g. "127.0.0.1:0"): serve the self-metrics endpoint there, as rwexport_server's
  // --metrics_listen does (/metrics, /-/healthy, /-/ready, the status page).
  std::string metrics_listen;
  // IngestSamples' journal and window.
  IngestOptions ingest;
};

class TestServer {
 public:
  explicit TestServer(TestServerOptions options);
  explicit TestServer(ExportOptions options = {}, size_t workers = 2, int max_message_bytes = 0)
      : TestServer(TestServerOptions{options, workers, max_message_bytes, {}, "", std::nullopt}) {}

  const std::string& address() const { return server_->address(); }
  // A new stub on a new plaintext channel to the server.
  std::unique_ptr<v1::ExportService::Stub> NewStub() const { return server_->NewStub(); }
  ExportRegistry& registry() { return server_->registry(); }
  // "http://127.0.0.1:<port>" of the InfluxDB write API (options.influx set).
  std::string influx_url() const;
  // The self-metrics port; 0 without metrics_listen.
  int metrics_port() const { return server_->metrics_port(); }

 private:
  // Stops every export, then the server, when destroyed.
  std::unique_ptr<Server> server_;
};

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_TEST_SERVER_H_
