#include "server/server.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace rwexport {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> server(new Server());
  if (absl::Status built = server->Build(options); !built.ok()) return built;
  if (absl::Status listening = server->Listen(options); !listening.ok()) return listening;
  return server;
}

absl::Status Server::Build(ServerOptions options) {
  if (absl::Status limits = CheckTargetLimits(options.exports.sender_defaults); !limits.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("delivery limits: ", limits.message()));
  }
  absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(std::move(options.sender));
  if (!sender.ok()) return sender.status();
  sender_ = *std::move(sender);
  workers_ = options.workers > 0 ? options.workers
                                 : std::max<size_t>(1, std::thread::hardware_concurrency());
  shutdown_grace_ = options.shutdown_grace;
  pool_ = std::make_unique<WorkerPool>(workers_);
  registry_ = std::make_unique<ExportRegistry>(pool_.get(), sender_.get(), options.exports);
  service_ =
      std::make_unique<ExportServiceImpl>(registry_.get(), TokenAuthenticator(options.auth_token));
  return absl::OkStatus();
}

absl::Status Server::Listen(const ServerOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.security);
  if (!credentials.ok()) return credentials.status();
  if (!options.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<SelfMetricsServer>> metrics =
        SelfMetricsServer::Start(options.metrics_listen, registry_.get());
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);
    metrics_port_ = metrics_->port();
  }
  // Standard tooling: grpc.health.v1 (grpc_health_probe, Kubernetes probes) and server
  // reflection (grpcurl). Both are process-wide switches of gRPC.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, *credentials, &port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(service_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  if (grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService()) {
    health->SetServingStatus(v1::ExportService::service_full_name(), true);
  }
  const size_t colon = options.listen.rfind(':');
  address_ = absl::StrCat(options.listen.substr(0, colon), ":", port_);
  return absl::OkStatus();
}

size_t Server::Shutdown() {
  {
    MutexLock lock(&mu_);
    if (shutdown_started_) return 0;
    shutdown_started_ = true;
  }
  size_t stopped = 0;
  if (grpc_server_ != nullptr) {
    if (grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService()) {
      health->SetServingStatus(false);  // probes see NOT_SERVING while exports drain
    }
  }
  // Flush and deliver every export first, while streams can still finish; then stop gRPC.
  if (registry_ != nullptr) stopped = registry_->StopAll();
  // Exports are delivered by now; what is left are idle connections, whose clients may never
  // answer gRPC's goodbye: give them a short grace, not the full delivery timeout.
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() +
                           absl::ToChronoNanoseconds(shutdown_grace_));
  }
  metrics_.reset();
  MutexLock lock(&mu_);
  shutdown_done_ = true;
  cv_.SignalAll();
  return stopped;
}

void Server::Wait() {
  MutexLock lock(&mu_);
  while (!shutdown_done_) cv_.Wait(&mu_);
}

Server::~Server() {
  Shutdown();
  Wait();
  // gRPC before the service it calls, the service (which waits for its StopExport calls)
  // before the registry, the registry before the sender and the pool it uses.
  grpc_server_.reset();
  service_.reset();
  registry_.reset();
  sender_.reset();
  pool_.reset();
}

std::unique_ptr<v1::ExportService::Stub> Server::NewStub() const {
  return v1::ExportService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
}

}  // namespace rwexport
