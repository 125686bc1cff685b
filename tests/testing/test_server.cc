#include "tests/testing/test_server.h"

#include <chrono>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace rwexport {

TestServer::TestServer(TestServerOptions options) : pool_(options.workers) {
  registry_ = std::make_unique<ExportRegistry>(&pool_, &sender_, options.exports);
  service_ = std::make_unique<ExportServiceImpl>(registry_.get(),
                                                 TokenAuthenticator(options.auth_token));
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.security);
  if (!credentials.ok()) std::abort();  // the test's own files: nothing to recover
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", *credentials, &port);
  builder.RegisterService(service_.get());
  if (options.max_message_bytes > 0) builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) std::abort();  // nothing a test could do without it
  address_ = absl::StrCat("127.0.0.1:", port);
}

TestServer::~TestServer() {
  registry_->StopAll();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  service_.reset();
  registry_.reset();
}

std::unique_ptr<v1::ExportService::Stub> TestServer::NewStub() const {
  return v1::ExportService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
}

}  // namespace rwexport
