#include "client/bench_serve.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "grpcpp/grpcpp.h"
#include "lib/common/log.h"
#include "server/in_process_server.h"
#include "server/null_sink.h"

namespace rwexport {

int RunBenchServe(BenchServer server, size_t workers) {
  SetLogLevel(LogLevel::kWarning);  // the parent's stdout is the protocol; keep stderr quiet
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  absl::Status served;
  if (server == BenchServer::kRwexport) {
    InProcessServerOptions options;
    options.workers = workers;
    absl::StatusOr<std::unique_ptr<InProcessServer>> s = InProcessServer::Start(options);
    if (!s.ok()) {
      std::fprintf(stderr, "rwexport bench: %s\n", std::string(s.status().message()).c_str());
      return 1;
    }
    served = ServeBenchChild((*s)->port());
  } else {
    NullSinkService service;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.SetMaxReceiveMessageSize(64 << 20);
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
    if (grpc_server == nullptr || port == 0) {
      std::fprintf(stderr, "rwexport bench: cannot listen on 127.0.0.1:0\n");
      return 1;
    }
    served = ServeBenchChild(port);
    grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }
  if (!served.ok()) {
    std::fprintf(stderr, "rwexport bench: %s\n", std::string(served.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace rwexport
