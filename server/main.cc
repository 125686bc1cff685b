// rwexport_server: the gRPC daemon. Flags, wiring, signals; everything else lives in lib/.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/log.h"
#include "lib/export/export.h"
#include "lib/remote_write/sender.h"
#include "server/export_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC listen address, host:port. Port 0 picks a free port (see --port_file). Use "
          "0.0.0.0:50051 to serve other hosts.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the chosen port is written to this file once the server is listening.");
ABSL_FLAG(int, workers, 0, "Aggregation worker threads; 0 means one per core.");
ABSL_FLAG(absl::Duration, lateness, absl::Seconds(2),
          "How long after a window's end samples for it are still awaited.");
ABSL_FLAG(absl::Duration, max_sample_age, absl::Hours(1),
          "Samples older than this behind the export's newest sample are rejected (too_old).");
ABSL_FLAG(absl::Duration, delivery_timeout, absl::Seconds(30),
          "How long StopExport and shutdown wait for delivery by default.");
ABSL_FLAG(int, max_exports, 1000, "Maximum number of exports running at once.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Maximum size of one gRPC message (a sample batch).");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");

namespace rwexport {
namespace {

int Run() {
  LogLevel level;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "rwexport_server: --log_level: expected debug, info, warning or error\n");
    return 2;
  }
  SetLogLevel(level);
  if (absl::GetFlag(FLAGS_workers) < 0 || absl::GetFlag(FLAGS_max_exports) < 1) {
    std::fprintf(stderr, "rwexport_server: --workers must be >= 0 and --max_exports >= 1\n");
    return 2;
  }

  // Signals are taken by sigwait in this thread only; every thread started below inherits the
  // blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  size_t workers = absl::GetFlag(FLAGS_workers);
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  WorkerPool pool(workers);
  Sender sender;
  ExportOptions options;
  options.aggregator.lateness = absl::GetFlag(FLAGS_lateness);
  options.aggregator.max_age = absl::GetFlag(FLAGS_max_sample_age);
  options.default_delivery_timeout = absl::GetFlag(FLAGS_delivery_timeout);
  options.max_exports = absl::GetFlag(FLAGS_max_exports);
  auto registry = std::make_unique<ExportRegistry>(&pool, &sender, options);
  ExportServiceImpl service(registry.get());

  // Standard tooling: grpc.health.v1 (grpc_health_probe, Kubernetes probes) and server
  // reflection (grpcurl).
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "rwexport_server: cannot listen on %s\n",
                 absl::GetFlag(FLAGS_listen).c_str());
    return 1;
  }
  if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService()) {
    health->SetServingStatus(v1::ExportService::service_full_name(), true);
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    std::ofstream(port_file) << port << "\n";
  }
  LogInfo("rwexport_server listening", {{"address", absl::GetFlag(FLAGS_listen)},
                                        {"port", absl::StrCat(port)},
                                        {"workers", absl::StrCat(workers)}});

  int signal = 0;
  sigwait(&signals, &signal);
  if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService()) {
    health->SetServingStatus(false);  // probes see NOT_SERVING while exports drain
  }
  LogInfo("shutting down", {{"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
  // Flush and deliver every export first, while streams can still finish; then stop gRPC.
  const size_t stopped = registry->StopAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  registry.reset();
  LogInfo("stopped", {{"exports_flushed", absl::StrCat(stopped)}});
  return 0;
}

}  // namespace
}  // namespace rwexport

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "rwexport_server: exports the metrics of running load tests to Prometheus remote-write "
      "endpoints.\nUsage: rwexport_server [--listen=HOST:PORT] [--workers=N] ...");
  absl::ParseCommandLine(argc, argv);
  return rwexport::Run();
}
