#include "tests/testing/test_server.h"

#include <chrono>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace rwexport {

TestServer::TestServer(ExportOptions options, size_t workers) : pool_(workers) {
  registry_ = std::make_unique<ExportRegistry>(&pool_, &sender_, options);
  service_ = std::make_unique<ExportServiceImpl>(registry_.get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service_.get());
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
