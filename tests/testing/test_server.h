// rwexport's gRPC server in the test process, on a free loopback port: the same registry,
// service and sender as rwexport_server, with options a test can set. Thread-safe.
#ifndef RWEXPORT_TESTS_TESTING_TEST_SERVER_H_
#define RWEXPORT_TESTS_TESTING_TEST_SERVER_H_

#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/export/export.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/export_service.h"
#include "server/security.h"

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
  // Stops every export, then the server.
  ~TestServer();

  const std::string& address() const { return address_; }
  // A new stub on a new channel to the server.
  std::unique_ptr<v1::ExportService::Stub> NewStub() const;
  ExportRegistry& registry() { return *registry_; }

 private:
  WorkerPool pool_;
  Sender sender_;
  std::unique_ptr<ExportRegistry> registry_;
  std::unique_ptr<ExportServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_TEST_SERVER_H_
