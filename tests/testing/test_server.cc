#include "tests/testing/test_server.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace rwexport {

TestServer::TestServer(TestServerOptions options) {
  InProcessServerOptions in_process;
  in_process.exports = std::move(options.exports);
  in_process.workers = options.workers;
  if (options.max_message_bytes > 0) in_process.max_message_bytes = options.max_message_bytes;
  in_process.security = std::move(options.security);
  in_process.auth_token = std::move(options.auth_token);
  absl::StatusOr<std::unique_ptr<InProcessServer>> server = InProcessServer::Start(in_process);
  if (!server.ok()) {
    std::fprintf(stderr, "TestServer: %s\n", server.status().ToString().c_str());
    std::abort();
  }
  server_ = *std::move(server);
}

}  // namespace rwexport
