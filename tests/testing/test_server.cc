#include "tests/testing/test_server.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(server_options));
  if (!server.ok()) {
    std::fprintf(stderr, "TestServer: %s\n", server.status().ToString().c_str());
    std::abort();
  }
  server_ = *std::move(server);
}

}  // namespace rwexport
