// rwexport's server, wired once: the worker pool, the sender (with its spool), the export
// registry, the gRPC service (with grpc.health.v1 and server reflection) and, if asked, the
// self-metrics endpoint. rwexport_server (server/main.cc) adds flags and signals to it; tests
// and `rwexport bench` run it in their own process. So what is tested and measured is what
// ships.
//
// Lifecycle: Start() builds and listens, then marks health SERVING and the self-metrics
// endpoint's /-/ready ready; Shutdown() marks both not serving, stops the InfluxDB write API (no
// new writes, nor auto-started exports), stops every
// export (flushed and delivered, bounded by the default delivery timeout; with a data dir they
// are kept for the next start instead, see Shutdown()), then stops gRPC
// after a short grace for idle connections; Wait() blocks until Shutdown() has finished. The
// destructor shuts down if nobody did. Thread-safe.
#ifndef RWEXPORT_SERVER_SERVER_H_
#define RWEXPORT_SERVER_SERVER_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/durable/checkpoint_store.h"
#include "lib/durable/data_dir.h"
#include "lib/durable/export_journal.h"
#include "lib/durable/export_store.h"
#include "lib/durable/wal_ingest_journal.h"
#include "lib/export/export.h"
#include "lib/metrics/self_metrics.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/export_service.h"
#include "server/influx_endpoint.h"
#include "server/reflection_v1.h"
#include "server/security.h"

namespace rwexport {

struct ServerOptions {
  // host:port; port 0 picks a free one (see Server::port()).
  std::string listen = "127.0.0.1:0";
  // Largest gRPC message received (a sample batch).
  int max_message_bytes = 64 << 20;
  // Aggregation worker threads; 0 means one per core.
  size_t workers = 0;
  // Limits, windows, idle timeout and every target's delivery limits (sender_defaults).
  ExportOptions exports;
  // The spool (none by default).
  SenderOptions sender;
  // Non-empty: the data directory (lib/durable/data_dir.h), opened and locked before anything
  // listens; the export registry is recorded there and recovered from it at start
  // (lib/export/export.h). Empty: exports live in memory only.
  std::string data_dir;
  // With data_dir: how long a stopped export's figures are kept for a retried StopExport.
  absl::Duration stopped_retention = absl::Minutes(15);
  // With data_dir: when the write-ahead log of accepted batches (<data_dir>/wal) fsyncs.
  FsyncPolicy wal_fsync;
  // A new log segment once one holds this many bytes (truncation deletes whole segments).
  uint64_t wal_segment_bytes = 64u << 20;
  // TLS and client certificates for the listener (none: plaintext).
  ListenerSecurity security;
  // Non-empty: every ExportService call must carry it as a bearer token.
  std::string auth_token;
  // Non-empty (host:port): serve the self-metrics there: /metrics, /-/healthy, /-/ready and the
  // status page at / (lib/metrics/self_metrics.h).
  std::string metrics_listen;
  // Set: serve the InfluxDB write API (k6 --out influxdb) too; its auth_token is replaced by
  // this server's.
  std::optional<InfluxEndpointOptions> influx;
  // IngestSamples: the journal (none: acknowledged when applied) and the window.
  IngestOptions ingest;
  // At shutdown, after every export is delivered: how long idle connections get to close.
  absl::Duration shutdown_grace = absl::Seconds(2);
};

class Server {
 public:
  // Builds the engine and starts serving. INVALID_ARGUMENT for unusable delivery limits, spool
  // directory, data directory or TLS files; FAILED_PRECONDITION when the data directory is
  // locked by another server; UNAVAILABLE when an address cannot be listened on.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  // Shuts down (if not done yet), then frees the engine.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Health NOT_SERVING and /-/ready 503, every export stopped (flushed, delivered within the
  // default delivery timeout) while streams may still finish, then gRPC stopped after the
  // grace, then the self-metrics endpoint. Returns how many exports it stopped. Later calls
  // return 0 at once.
  //
  // With a data dir the exports are kept instead (a graceful stop is a restart): open streams
  // end UNAVAILABLE (IngestSamples calls with their acknowledged position, to resume), new
  // calls are refused, what was handed to the targets is delivered (within the default
  // delivery timeout) and each export's delivery mark recorded; the exports stay recorded as
  // running and the next start on the same data dir recovers them. Returns 0 then (kept()).
  size_t Shutdown();
  // How many exports Shutdown() kept for the next start (with a data dir).
  size_t kept() const;
  // Blocks until Shutdown() has finished (called from another thread).
  void Wait();

  // The listen host with the chosen port, e.g. "127.0.0.1:40123".
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  // The self-metrics port; 0 without metrics_listen.
  int metrics_port() const { return metrics_port_; }
  // The InfluxDB write API's port; 0 without options.influx.
  int influx_port() const { return influx_ != nullptr ? influx_->port() : 0; }
  size_t workers() const { return workers_; }
  // At the start (with a data dir): exports restored from their checkpoint, and checkpoints
  // set aside because they did not restore (those exports were replayed from the log).
  size_t checkpoints_restored() const { return checkpoints_restored_; }
  size_t checkpoints_set_aside() const { return checkpoints_set_aside_; }
  // A new stub on a new plaintext channel to the server.
  std::unique_ptr<v1::ExportService::Stub> NewStub() const;
  ExportRegistry& registry() { return *registry_; }

 private:
  Server() = default;
  absl::Status Build(ServerOptions options);
  absl::Status Listen(const ServerOptions& options);
  // With a data dir: opens <data_dir>/wal and replays it into the recovered exports.
  absl::Status OpenJournal(const ServerOptions& options);

  size_t workers_ = 0;
  absl::Duration shutdown_grace_;
  // Destroyed bottom-up: gRPC first, the data directory (and its lock) last.
  std::unique_ptr<DataDir> data_dir_;
  std::unique_ptr<ExportStore> store_;
  std::unique_ptr<CheckpointStore> checkpoints_;
  size_t checkpoints_restored_ = 0;  // at recovery
  size_t checkpoints_set_aside_ = 0;
  std::unique_ptr<ExportJournal> journal_;         // used by the registry and the service
  std::unique_ptr<IngestJournal> ingest_journal_;  // IngestSamples' view of journal_
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<Sender> sender_;
  std::unique_ptr<ExportRegistry> registry_;
  std::unique_ptr<ExportServiceImpl> service_;
  std::unique_ptr<ReflectionV1Service> reflection_v1_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<SelfMetricsServer> metrics_;
  std::unique_ptr<InfluxEndpoint> influx_;
  std::string address_;
  int port_ = 0;
  int metrics_port_ = 0;

  mutable Mutex mu_;
  CondVar cv_;
  bool shutdown_started_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_done_ ABSL_GUARDED_BY(mu_) = false;
  size_t kept_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_SERVER_H_
