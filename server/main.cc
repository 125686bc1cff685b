// rwexport_server: the gRPC daemon. Flags and signals; the wiring is server/server.h, everything
// else lives in lib/.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/common/crash_point.h"
#include "lib/common/file.h"
#include "lib/common/flags_env.h"
#include "lib/common/log.h"
#include "lib/config/config.h"
#include "lib/config/k6_json.h"
#include "lib/export/ownership.h"
#include "server/influx_endpoint.h"
#include "server/security.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC listen address, host:port. Port 0 picks a free port (see --port_file). Use "
          "0.0.0.0:50051 to serve other hosts.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the chosen port is written to this file once the server is listening.");
ABSL_FLAG(std::string, replica_id, "",
          "This server's name in a fleet behind a router (e.g. the pod name rwexport-0): export "
          "ids become <replica_id>-<random>, and a call for an export id naming another replica "
          "is answered UNAVAILABLE naming its owner. 1-63 of [A-Za-z0-9._-]. Empty: a single "
          "process.");
ABSL_FLAG(int, workers, 0, "Aggregation worker threads; 0 means one per core.");
ABSL_FLAG(absl::Duration, lateness, absl::Seconds(2),
          "How long after a window's end samples for it are still awaited.");
ABSL_FLAG(absl::Duration, max_sample_age, absl::Hours(1),
          "Samples older than this behind the export's newest sample are rejected (too_old).");
ABSL_FLAG(absl::Duration, delivery_timeout, absl::Seconds(30),
          "How long StopExport and shutdown wait for delivery by default.");
ABSL_FLAG(int, max_exports, 1000, "Maximum number of exports running at once.");
ABSL_FLAG(int, max_streams_per_export, 256,
          "Maximum number of StreamSamples and IngestSamples calls feeding one export at once.");
ABSL_FLAG(int, ingest_window, 32,
          "IngestSamples: the most batches of a call read beyond its last acknowledgement.");
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
          "stay only in the target's queue on disk (--data_dir, or --spool_dir) or are dropped "
          "(queue_full).");
ABSL_FLAG(absl::Duration, min_backoff, absl::Milliseconds(100),
          "First retry delay after a failed remote-write request (doubles up to --max_backoff).");
ABSL_FLAG(absl::Duration, max_backoff, absl::Seconds(10), "Longest retry delay.");
ABSL_FLAG(std::string, spool_dir, "",
          "Without --data_dir: if set, batches that do not fit in memory or are not delivered by "
          "the delivery timeout are written here and delivered when a target with the same URL "
          "is added again (also after a restart). Credentials are never written. Refused with "
          "--data_dir, whose durable target queues (<data_dir>/queue) are the spool.");
ABSL_FLAG(int64_t, spool_max_bytes, int64_t{1} << 30,
          "Bound on the spool's size (with --data_dir: on <data_dir>/queue); the oldest files "
          "are deleted beyond it.");
// Crash safety (issue 12): the data directory.
ABSL_FLAG(std::string, data_dir, "",
          "If set, the directory (created 0700 if missing, locked against a second server) where "
          "running exports are recorded, and every accepted batch is written to a write-ahead "
          "log (<data_dir>/wal) before it is acknowledged, so that exports come back after a "
          "crash or restart with their figures. It holds the exports' configurations with "
          "their credentials. Unset: exports live in memory only and are lost with the process.");
ABSL_FLAG(std::string, wal_fsync, "always",
          "With --data_dir: when the write-ahead log fsyncs: 'always' (every group of batches "
          "before it is acknowledged) or 'interval:D' (e.g. interval:100ms: at most one fsync "
          "per D; acknowledgements wait for it).");
ABSL_FLAG(absl::Duration, delivery_mark_interval, absl::Milliseconds(100),
          "With --data_dir: how often each export's delivery mark (the newest point known "
          "delivered) is written to its record; what was delivered since is re-sent after a "
          "crash, one window per request.");
// Checkpoints of running exports' aggregation state (README "Crash safety", "Bounded log").
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::Seconds(30),
          "With --data_dir: how often each running export's aggregation state is checkpointed "
          "to <data_dir>/checkpoints, so that a restart replays only the log written since and "
          "the log is truncated behind it. 0 disables checkpoints (a restart replays the "
          "running exports' whole log).");
ABSL_FLAG(int64_t, checkpoint_log_bytes, 0,
          "With --data_dir and --checkpoint_interval: also checkpoint an export once this many "
          "bytes of log were written since its last checkpoint. 0: by the interval only.");
ABSL_FLAG(int64_t, wal_segment_bytes, 64 << 20,
          "With --data_dir: the write-ahead log starts a new segment file once one holds this "
          "many bytes; the log is truncated by whole segments.");
ABSL_FLAG(absl::Duration, stopped_retention, absl::Minutes(15),
          "With --data_dir: how long a stopped export's final figures are kept, so that a "
          "StopExport retried after a lost answer gets the same figures.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain for the gRPC listener; with --tls_key_file, serve TLS.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key for --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA certificates; if set, callers must present a certificate they signed (mTLS).");
ABSL_FLAG(std::string, auth_token_file, "",
          "If set, every ExportService call must carry `authorization: Bearer <token>` with the "
          "token in this file (health checks and reflection stay open).");
// The InfluxDB write API (k6 --out influxdb=http://HOST:PORT/<test_run_id>).
ABSL_FLAG(std::string, influx_listen, "",
          "If set (host:port), serve the InfluxDB 1.x write API there (/write, /query, /ping), "
          "so k6 streams live with --out influxdb=http://HOST:PORT/<test_run_id>. Off by default.");
ABSL_FLAG(std::string, influx_auto_export, "",
          "Configuration file (as `rwexport start --config` takes it): a write to an unknown db "
          "starts an export for that test run with it.");
ABSL_FLAG(absl::Duration, influx_idle_stop, absl::Seconds(30),
          "An export started by --influx_auto_export is stopped (flushed, delivered, figures "
          "logged) after this long without writes.");
ABSL_FLAG(std::string, metrics_listen, "",
          "If set (host:port), serve rwexport's own metrics in Prometheus format at /metrics.");

namespace rwexport {
namespace {

// Exit codes (README, "Running the server").
constexpr int kExitFailure = 1;       // cannot listen, or another failure at start
constexpr int kExitBadFlags = 2;      // a flag, variable or file the server cannot use
constexpr int kExitDataDirInUse = 3;  // --data_dir is locked by another rwexport_server

// The flags as ServerOptions; false (and a message on stderr) for values out of range.
bool OptionsFromFlags(ServerOptions* options) {
  if (absl::GetFlag(FLAGS_stopped_retention) < absl::ZeroDuration()) {
    std::fprintf(stderr, "rwexport_server: --stopped_retention must be >= 0\n");
    return false;
  }
  if (absl::GetFlag(FLAGS_workers) < 0 || absl::GetFlag(FLAGS_max_exports) < 1 ||
      absl::GetFlag(FLAGS_max_streams_per_export) < 1) {
    std::fprintf(stderr,
                 "rwexport_server: --workers must be >= 0, --max_exports and "
                 "--max_streams_per_export >= 1\n");
    return false;
  }
  const std::string replica_id = absl::GetFlag(FLAGS_replica_id);
  if (absl::Status valid = ValidateReplicaId(replica_id); !replica_id.empty() && !valid.ok()) {
    std::fprintf(stderr, "rwexport_server: --replica_id: %s\n",
                 std::string(valid.message()).c_str());
    return false;
  }
  options->exports.replica_id = replica_id;
  if (absl::GetFlag(FLAGS_ingest_window) < 1 || absl::GetFlag(FLAGS_ingest_window) > 4096) {
    std::fprintf(stderr, "rwexport_server: --ingest_window must be 1 to 4096\n");
    return false;
  }
  options->ingest.window = static_cast<uint32_t>(absl::GetFlag(FLAGS_ingest_window));
  options->listen = absl::GetFlag(FLAGS_listen);
  options->max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options->workers = static_cast<size_t>(absl::GetFlag(FLAGS_workers));
  TargetOptions& delivery = options->exports.sender_defaults;
  delivery.max_in_flight = std::max(0, absl::GetFlag(FLAGS_max_in_flight_per_target));
  delivery.max_points_per_request = std::max(0, absl::GetFlag(FLAGS_max_points_per_request));
  delivery.max_bytes_per_request = std::max<int64_t>(0, absl::GetFlag(FLAGS_max_bytes_per_request));
  delivery.max_queued_points = std::max<int64_t>(0, absl::GetFlag(FLAGS_max_queued_points));
  delivery.min_backoff = absl::GetFlag(FLAGS_min_backoff);
  delivery.max_backoff = absl::GetFlag(FLAGS_max_backoff);
  options->sender.spool_dir = absl::GetFlag(FLAGS_spool_dir);
  options->sender.spool_max_bytes = std::max<int64_t>(0, absl::GetFlag(FLAGS_spool_max_bytes));
  options->data_dir = absl::GetFlag(FLAGS_data_dir);
  options->stopped_retention = absl::GetFlag(FLAGS_stopped_retention);
  absl::StatusOr<FsyncPolicy> fsync = ParseFsyncPolicy(absl::GetFlag(FLAGS_wal_fsync));
  if (!fsync.ok()) {
    std::fprintf(stderr, "rwexport_server: --wal_fsync: %s\n",
                 std::string(fsync.status().message()).c_str());
    return false;
  }
  options->wal_fsync = *fsync;
  if (absl::GetFlag(FLAGS_wal_segment_bytes) < 4096) {
    std::fprintf(stderr, "rwexport_server: --wal_segment_bytes: must be at least 4096\n");
    return false;
  }
  options->wal_segment_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_wal_segment_bytes));
  ExportOptions& exports = options->exports;
  exports.aggregator.lateness = absl::GetFlag(FLAGS_lateness);
  exports.aggregator.max_age = absl::GetFlag(FLAGS_max_sample_age);
  exports.default_delivery_timeout = absl::GetFlag(FLAGS_delivery_timeout);
  exports.delivery_mark_interval = absl::GetFlag(FLAGS_delivery_mark_interval);
  if (exports.delivery_mark_interval <= absl::ZeroDuration() ||
      exports.delivery_mark_interval > absl::Hours(1)) {
    std::fprintf(stderr,
                 "rwexport_server: --delivery_mark_interval: must be more than 0 and at most 1h\n");
    return false;
  }
  exports.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  exports.checkpoint_log_bytes = absl::GetFlag(FLAGS_checkpoint_log_bytes);
  if (exports.checkpoint_interval < absl::ZeroDuration() || exports.checkpoint_log_bytes < 0) {
    std::fprintf(
        stderr, "rwexport_server: --checkpoint_interval and --checkpoint_log_bytes must be >= 0\n");
    return false;
  }
  if (!options->data_dir.empty() && !options->sender.spool_dir.empty()) {
    std::fprintf(stderr,
                 "rwexport_server: --spool_dir: not used with --data_dir (the target queues are "
                 "in <data_dir>/queue)\n");
    return false;
  }
  exports.max_exports = absl::GetFlag(FLAGS_max_exports);
  exports.max_streams_per_export = absl::GetFlag(FLAGS_max_streams_per_export);
  exports.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  exports.aggregator.max_series_per_target =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_series_per_target)));
  exports.aggregator.max_series_per_export =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_series_per_export)));
  options->security.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options->security.key_file = absl::GetFlag(FLAGS_tls_key_file);
  options->security.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  if (!absl::GetFlag(FLAGS_auth_token_file).empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(absl::GetFlag(FLAGS_auth_token_file));
    if (!token.ok()) {
      std::fprintf(stderr, "rwexport_server: --auth_token_file: %s\n",
                   std::string(token.status().message()).c_str());
      return false;
    }
    options->auth_token = *std::move(token);
  }
  options->metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  return true;
}

// The --influx_* flags into options->influx (left unset without --influx_listen); false (and
// a message on stderr) for an unusable --influx_auto_export file.
bool InfluxOptionsFromFlags(ServerOptions* options) {
  if (absl::GetFlag(FLAGS_influx_listen).empty()) return true;
  InfluxEndpointOptions influx;
  influx.listen = absl::GetFlag(FLAGS_influx_listen);
  influx.idle_stop = absl::GetFlag(FLAGS_influx_idle_stop);
  const std::string config_file = absl::GetFlag(FLAGS_influx_auto_export);
  if (!config_file.empty()) {
    absl::StatusOr<std::string> json = ReadFileToString(config_file);
    // Checked now with a stand-in test run id, so a bad file fails at start, not at a write.
    absl::StatusOr<v1::StartExportRequest> request =
        json.ok() ? ParseK6ApmJson(*json, "influx-check") : json.status();
    absl::Status valid = request.ok() ? ValidateStartExport(*request).status() : request.status();
    if (!valid.ok()) {
      std::fprintf(stderr, "rwexport_server: --influx_auto_export: %s: %s\n", config_file.c_str(),
                   json.ok() ? std::string(valid.message()).c_str() : "cannot read the file");
      return false;
    }
    influx.auto_export = *std::move(request);
  }
  options->influx = std::move(influx);
  return true;
}

int Run() {
  LogLevel level;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr, "rwexport_server: --log_level: expected debug, info, warning or error\n");
    return kExitBadFlags;
  }
  SetLogLevel(level);
  ServerOptions options;
  if (!OptionsFromFlags(&options) || !InfluxOptionsFromFlags(&options)) return kExitBadFlags;

  // Signals are taken by sigwait in this thread only; every thread started below inherits the
  // blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "rwexport_server: %s\n", std::string(server.status().message()).c_str());
    switch (server.status().code()) {
      case absl::StatusCode::kInvalidArgument:
        return kExitBadFlags;
      case absl::StatusCode::kFailedPrecondition:
        return kExitDataDirInUse;
      default:
        return kExitFailure;
    }
  }
  if ((*server)->metrics_port() != 0) {
    LogInfo("self-metrics served", {{"address", options.metrics_listen},
                                    {"port", absl::StrCat((*server)->metrics_port())},
                                    {"paths", "/metrics /-/healthy /-/ready /"}});
  }
  if ((*server)->influx_port() != 0) {
    LogInfo("InfluxDB write API served",
            {{"address", options.influx->listen},
             {"port", absl::StrCat((*server)->influx_port())},
             {"auto_export", absl::GetFlag(FLAGS_influx_auto_export)}});
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    std::ofstream(port_file) << (*server)->port() << "\n";
  }
  LogInfo(
      "rwexport_server listening",
      {{"address", options.listen},
       {"port", absl::StrCat((*server)->port())},
       {"tls", options.security.cert_file.empty()        ? "off"
               : options.security.client_ca_file.empty() ? "on"
                                                         : "mutual"},
       {"auth", options.auth_token.empty() ? "none" : "bearer token"},
       {"replica_id", options.exports.replica_id.empty() ? "none" : options.exports.replica_id},
       {"workers", absl::StrCat((*server)->workers())},
       {"data_dir", options.data_dir.empty() ? "none (exports in memory only)" : options.data_dir},
       {"checkpoints_restored", absl::StrCat((*server)->checkpoints_restored())},
       {"checkpoints_set_aside", absl::StrCat((*server)->checkpoints_set_aside())}});

  int signal = 0;
  sigwait(&signals, &signal);
  LogInfo("shutting down", {{"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
  const size_t stopped = (*server)->Shutdown();
  const size_t kept = (*server)->kept();
  server->reset();
  if (options.data_dir.empty()) {
    LogInfo("stopped", {{"exports_flushed", absl::StrCat(stopped)}});
  } else {
    LogInfo("stopped", {{"exports_kept_for_next_start", absl::StrCat(kept)}});
  }
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
  rwexport::ArmCrashPointFromEnvironment();  // RWEXPORT_CRASH_AT: a test hook
  return rwexport::Run();
}
