#include "tests/testing/test_server.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace rwexport {

TestServer::TestServer(TestServerOptions options) {
  ServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.exports = std::move(options.exports);
  server_options.workers = std::max<size_t>(options.workers, 1);
  if (options.max_message_bytes > 0) server_options.max_message_bytes = options.max_message_bytes;
  server_options.security = std::move(options.security);
  server_options.auth_token = std::move(options.auth_token);
  if (options.influx.has_value()) {
    server_options.influx = std::move(options.influx);
    server_options.influx->listen = "127.0.0.1:0";
  }
  server_options.metrics_listen = std::move(options.metrics_listen);
  server_options.ingest = options.ingest;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(server_options));
  if (!server.ok()) {
    std::fprintf(stderr, "TestServer: %s\n", server.status().ToString().c_str());
    std::abort();
  }
  server_ = *std::move(server);
}

std::string TestServer::influx_url() const {
  return "http://127.0.0.1:" + std::to_string(server_->influx_port());
}

}  // namespace rwexport
