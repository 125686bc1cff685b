// rwexport's gRPC server in the test process, on a free loopback port (server/server.h, the
// wiring rwexport_server and `rwexport bench` use), with options a test can set; a test
// cannot go on without it, so a failure to start aborts. Thread-safe.
#ifndef RWEXPORT_TESTS_TESTING_TEST_SERVER_H_
#define RWEXPORT_TESTS_TESTING_TEST_SERVER_H_

#include <memory>
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
};

class TestServer {
 public:
  explicit TestServer(TestServerOptions options);
  explicit TestServer(ExportOptions options = {}, size_t workers = 2, int max_message_bytes = 0)
      : TestServer(TestServerOptions{options, workers, max_message_bytes, {}, ""}) {}

  const std::string& address() const { return server_->address(); }
  // A new stub on a new plaintext channel to the server.
  std::unique_ptr<v1::ExportService::Stub> NewStub() const { return server_->NewStub(); }
  ExportRegistry& registry() { return server_->registry(); }

 private:
  // Stops every export, then the server, when destroyed.
  std::unique_ptr<Server> server_;
};

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_TEST_SERVER_H_
