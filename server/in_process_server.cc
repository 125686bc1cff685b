#include "server/in_process_server.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rwexport {

absl::StatusOr<std::unique_ptr<InProcessServer>> InProcessServer::Start(
    InProcessServerOptions options) {
  std::unique_ptr<InProcessServer> s(new InProcessServer(std::max<size_t>(options.workers, 1)));
  s->registry_ = std::make_unique<ExportRegistry>(&s->pool_, &s->sender_, options.exports);
  s->service_ = std::make_unique<ExportServiceImpl>(s->registry_.get(),
                                                    TokenAuthenticator(options.auth_token));
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.security);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, *credentials, &s->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  if (options.influx.has_value()) {
    options.influx->auth_token = options.auth_token;
    absl::StatusOr<std::unique_ptr<InfluxEndpoint>> influx =
        InfluxEndpoint::Start(s->registry_.get(), *std::move(options.influx));
    if (!influx.ok()) return influx.status();
    s->influx_ = *std::move(influx);
  }
  const size_t colon = options.listen.rfind(':');
  s->address_ = absl::StrCat(options.listen.substr(0, colon), ":", s->port_);
  return s;
}

InProcessServer::InProcessServer(size_t workers) : pool_(workers) {}

InProcessServer::~InProcessServer() {
  influx_.reset();  // no new writes (nor auto-started exports) while the exports stop
  if (registry_ != nullptr) registry_->StopAll();
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  service_.reset();
  registry_.reset();
}

std::unique_ptr<v1::ExportService::Stub> InProcessServer::NewStub() const {
  return v1::ExportService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
}

}  // namespace rwexport
