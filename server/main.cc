// rwexport_server: the gRPC daemon. Flags, wiring, signals; everything else lives in lib/.
#include <algorithm>
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
#include "lib/common/flags_env.h"
#include "lib/common/log.h"
#include "lib/export/export.h"
#include "lib/metrics/self_metrics.h"
#include "lib/remote_write/sender.h"
#include "server/export_service.h"
#include "server/security.h"

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
ABSL_FLAG(int, max_streams_per_export, 256,
          "Maximum number of StreamSamples calls feeding one export at once.");
ABSL_FLAG(int64_t, max_series_per_target, 100000,
          "Cardinality guard: new series of a target beyond this are refused (0: no limit).");
ABSL_FLAG(int64_t, max_series_per_export, 250000,
          "Cardinality guard: new series of an export beyond this are refused (0: no limit).");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Hours(1),
          "Stop (flush and deliver) an export with no stream and no batch for this long; 0 never.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Maximum size of one gRPC message (a sample batch).");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
// Delivery to remote-write targets (every target of every export).
ABSL_FLAG(int, max_in_flight_per_target, 4, "Requests in flight at once per remote-write target.");
ABSL_FLAG(int, max_points_per_request, 5000, "Points per remote-write request at most.");
ABSL_FLAG(int64_t, max_bytes_per_request, 4 << 20,
          "Encoded (uncompressed) bytes per remote-write request at most.");
ABSL_FLAG(int64_t, max_queued_points, 2000000,
          "Points held in memory per target while it is slow or down; beyond, the oldest batches "
          "go to the spool (--spool_dir) or are dropped (queue_full).");
ABSL_FLAG(absl::Duration, min_backoff, absl::Milliseconds(100),
          "First retry delay after a failed remote-write request (doubles up to --max_backoff).");
ABSL_FLAG(absl::Duration, max_backoff, absl::Seconds(10), "Longest retry delay.");
ABSL_FLAG(std::string, spool_dir, "",
          "If set, batches that do not fit in memory or are not delivered by the delivery "
          "timeout are written here and delivered when a target with the same URL is added "
          "again (also after a restart). Credentials are never written.");
ABSL_FLAG(int64_t, spool_max_bytes, int64_t{1} << 30,
          "Bound on the spool's size; the oldest spooled batches are deleted beyond it.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain for the gRPC listener; with --tls_key_file, serve TLS.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key for --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA certificates; if set, callers must present a certificate they signed (mTLS).");
ABSL_FLAG(std::string, auth_token_file, "",
          "If set, every ExportService call must carry `authorization: Bearer <token>` with the "
          "token in this file (health checks and reflection stay open).");
ABSL_FLAG(std::string, metrics_listen, "",
          "If set (host:port), serve rwexport's own metrics in Prometheus format at /metrics.");

namespace rwexport {
namespace {

int Run() {
  LogLevel level;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "rwexport_server: --log_level: expected debug, info, warning or error\n");
    return 2;
  }
  SetLogLevel(level);
  if (absl::GetFlag(FLAGS_workers) < 0 || absl::GetFlag(FLAGS_max_exports) < 1 ||
      absl::GetFlag(FLAGS_max_streams_per_export) < 1) {
    std::fprintf(stderr,
                 "rwexport_server: --workers must be >= 0, --max_exports and "
                 "--max_streams_per_export >= 1\n");
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
  TargetOptions sender_defaults;
  sender_defaults.max_in_flight = std::max(0, absl::GetFlag(FLAGS_max_in_flight_per_target));
  sender_defaults.max_points_per_request = std::max(0, absl::GetFlag(FLAGS_max_points_per_request));
  sender_defaults.max_bytes_per_request =
      std::max<int64_t>(0, absl::GetFlag(FLAGS_max_bytes_per_request));
  sender_defaults.max_queued_points = std::max<int64_t>(0, absl::GetFlag(FLAGS_max_queued_points));
  sender_defaults.min_backoff = absl::GetFlag(FLAGS_min_backoff);
  sender_defaults.max_backoff = absl::GetFlag(FLAGS_max_backoff);
  if (absl::Status limits = CheckTargetLimits(sender_defaults); !limits.ok()) {
    std::fprintf(stderr, "rwexport_server: delivery flags: %s\n",
                 std::string(limits.message()).c_str());
    return 2;
  }
  SenderOptions sender_options;
  sender_options.spool_dir = absl::GetFlag(FLAGS_spool_dir);
  sender_options.spool_max_bytes = std::max<int64_t>(0, absl::GetFlag(FLAGS_spool_max_bytes));
  absl::StatusOr<std::unique_ptr<Sender>> created_sender = Sender::Create(sender_options);
  if (!created_sender.ok()) {
    std::fprintf(stderr, "rwexport_server: --%s\n",
                 std::string(created_sender.status().message()).c_str());
    return 2;
  }
  Sender& sender = **created_sender;
  ExportOptions options;
  options.aggregator.lateness = absl::GetFlag(FLAGS_lateness);
  options.aggregator.max_age = absl::GetFlag(FLAGS_max_sample_age);
  options.default_delivery_timeout = absl::GetFlag(FLAGS_delivery_timeout);
  options.max_exports = absl::GetFlag(FLAGS_max_exports);
  options.max_streams_per_export = absl::GetFlag(FLAGS_max_streams_per_export);
  options.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  options.aggregator.max_series_per_target =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_series_per_target)));
  options.aggregator.max_series_per_export =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_series_per_export)));
  options.sender_defaults = sender_defaults;
  auto registry = std::make_unique<ExportRegistry>(&pool, &sender, options);
  ListenerSecurity security;
  security.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  security.key_file = absl::GetFlag(FLAGS_tls_key_file);
  security.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(security);
  if (!credentials.ok()) {
    std::fprintf(stderr, "rwexport_server: %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  std::string token;
  if (!absl::GetFlag(FLAGS_auth_token_file).empty()) {
    absl::StatusOr<std::string> read = ReadTokenFile(absl::GetFlag(FLAGS_auth_token_file));
    if (!read.ok()) {
      std::fprintf(stderr, "rwexport_server: --auth_token_file: %s\n",
                   std::string(read.status().message()).c_str());
      return 2;
    }
    token = *std::move(read);
  }
  ExportServiceImpl service(registry.get(), TokenAuthenticator(std::move(token)));
  std::unique_ptr<SelfMetricsServer> metrics;
  if (!absl::GetFlag(FLAGS_metrics_listen).empty()) {
    absl::StatusOr<std::unique_ptr<SelfMetricsServer>> started =
        SelfMetricsServer::Start(absl::GetFlag(FLAGS_metrics_listen), registry.get());
    if (!started.ok()) {
      std::fprintf(stderr, "rwexport_server: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    metrics = *std::move(started);
    LogInfo("self-metrics served", {{"address", absl::GetFlag(FLAGS_metrics_listen)},
                                    {"port", absl::StrCat(metrics->port())},
                                    {"paths", "/metrics /-/healthy /-/ready /"}});
  }

  // Standard tooling: grpc.health.v1 (grpc_health_probe, Kubernetes probes) and server
  // reflection (grpcurl).
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), *credentials, &port);
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
  if (metrics != nullptr) metrics->SetReady(true);  // /-/ready: accepting exports
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    std::ofstream(port_file) << port << "\n";
  }
  LogInfo("rwexport_server listening",
          {{"address", absl::GetFlag(FLAGS_listen)},
           {"port", absl::StrCat(port)},
           {"tls", security.cert_file.empty()        ? "off"
                   : security.client_ca_file.empty() ? "on"
                                                     : "mutual"},
           {"auth", absl::GetFlag(FLAGS_auth_token_file).empty() ? "none" : "bearer token"},
           {"workers", absl::StrCat(workers)}});

  int signal = 0;
  sigwait(&signals, &signal);
  if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService()) {
    health->SetServingStatus(false);  // probes see NOT_SERVING while exports drain
  }
  if (metrics != nullptr) metrics->SetReady(false);
  LogInfo("shutting down", {{"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
  // Flush and deliver every export first, while streams can still finish; then stop gRPC.
  const size_t stopped = registry->StopAll();
  // Exports are delivered by now; what is left are idle connections, whose clients may never
  // answer gRPC's goodbye: give them a short grace, not the full delivery timeout.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  metrics.reset();
  registry.reset();
  LogInfo("stopped", {{"exports_flushed", absl::StrCat(stopped)}});
  return 0;
}

}  // namespace
}  // namespace rwexport

int main(int argc, char** argv) {
  // --help, --version, RWEXPORT_* environment variables (lib/common/flags_env.h).
  rwexport::ParseFlagsOrExit(
      {"rwexport_server",
       "rwexport_server: exports the metrics of running load tests to Prometheus remote-write "
       "endpoints.\nUsage: rwexport_server [--flagfile=FILE] [--listen=HOST:PORT] ...",
       {"server/"},
       "RWEXPORT_"},
      argc, argv);
  return rwexport::Run();
}
