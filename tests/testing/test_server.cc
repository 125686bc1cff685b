#include "tests/testing/test_server.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

namespace rwexport {

TestServer::TestServer(TestServerOptions options) {
  InProcessServerOptions in_process;
  in_process.exports = std::move(options.exports);
  in_process.workers = options.workers;
  if (options.max_message_bytes > 0) in_process.max_message_bytes = options.max_message_bytes;
  in_process.security = std::move(options.security);
  in_process.auth_token = std::move(options.auth_token);
  if (options.influx.has_value()) {
    in_process.influx = std::move(options.influx);
    in_process.influx->listen = "127.0.0.1:0";
  }
  absl::StatusOr<std::unique_ptr<InProcessServer>> server = InProcessServer::Start(in_process);
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
