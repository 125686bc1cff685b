#include "server/server.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "lib/common/listen_check.h"
#include "lib/common/log.h"
#include "lib/export/journal_replay.h"

namespace rwexport {

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> server(new Server());
  if (absl::Status built = server->Build(options); !built.ok()) return built;
  if (absl::Status listening = server->Listen(options); !listening.ok()) return listening;
  return server;
}

absl::Status Server::Build(ServerOptions options) {
  // First: a second server on the same data directory stops here, before it touches anything.
  if (!options.data_dir.empty()) {
    absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(options.data_dir);
    if (!dir.ok()) return dir.status();
    data_dir_ = *std::move(dir);
    absl::StatusOr<std::unique_ptr<ExportStore>> store =
        ExportStore::Open(*data_dir_, {options.stopped_retention, nullptr});
    if (!store.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--data_dir: ", store.status().message()));
    }
    store_ = *std::move(store);
    options.exports.store = store_.get();
    absl::StatusOr<std::unique_ptr<CheckpointStore>> checkpoints =
        CheckpointStore::Open(*data_dir_);
    if (!checkpoints.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data_dir: ", checkpoints.status().message()));
    }
    checkpoints_ = *std::move(checkpoints);
    options.exports.checkpoints = checkpoints_.get();
  }
  if (absl::Status limits = CheckTargetLimits(options.exports.sender_defaults); !limits.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("delivery limits: ", limits.message()));
  }
  if (data_dir_ != nullptr) {
    // One mechanism: the targets' durable queues are the spool, in the data dir.
    if (!options.sender.spool_dir.empty()) {
      return absl::InvalidArgumentError(
          "--spool_dir: not used with --data_dir (the target queues are in <data_dir>/queue)");
    }
    options.sender.spool_dir = absl::StrCat(options.data_dir, "/queue");
    options.sender.write_through = true;
  }
  absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(std::move(options.sender));
  if (!sender.ok()) return sender.status();
  sender_ = *std::move(sender);
  workers_ = options.workers > 0 ? options.workers
                                 : std::max<size_t>(1, std::thread::hardware_concurrency());
  shutdown_grace_ = options.shutdown_grace;
  pool_ = std::make_unique<WorkerPool>(workers_);
  registry_ = std::make_unique<ExportRegistry>(pool_.get(), sender_.get(), options.exports);
  absl::StatusOr<RecoveryReport> recovered = registry_->Recover();  // before anything listens
  if (!recovered.ok()) {
    return absl::Status(recovered.status().code(),
                        absl::StrCat("--data_dir: ", recovered.status().message()));
  }
  // The recovered exports took over their targets' queue files; the rest belong to exports
  // that are no longer running.
  if (data_dir_ != nullptr) sender_->DiscardUnclaimed();
  if (absl::Status opened = OpenJournal(options); !opened.ok()) return opened;
  IngestOptions ingest = options.ingest;
  if (journal_ != nullptr) {  // IngestSamples acknowledges once a batch is in the WAL
    ingest_journal_ = std::make_unique<WalIngestJournal>(journal_.get());
    ingest.journal = ingest_journal_.get();
  }
  service_ = std::make_unique<ExportServiceImpl>(registry_.get(),
                                                 TokenAuthenticator(options.auth_token), ingest);
  return absl::OkStatus();
}

absl::Status Server::OpenJournal(const ServerOptions& options) {
  if (data_dir_ == nullptr) return absl::OkStatus();
  WalOptions wal;
  wal.dir = absl::StrCat(options.data_dir, "/wal");
  wal.fsync = options.wal_fsync;
  wal.segment_bytes = options.wal_segment_bytes;
  WalRecoveryReport report;
  JournalReplayer replayer(registry_.get());
  // Checkpoints first: a running export restored from its checkpoint replays only the log
  // after it (lib/durable/checkpoints.md). One that does not restore is set aside and the
  // export replayed from what the log has.
  std::vector<std::pair<std::string, WalPosition>> used;
  size_t set_aside = 0;
  if (absl::StatusOr<LoadedCheckpoints> loaded = checkpoints_->Load(); !loaded.ok()) {
    LogWarning("checkpoints cannot be read; the running exports are replayed from the log",
               {{"error", std::string(loaded.status().message())}});
  } else {
    for (const auto& [export_id, checkpoint] : loaded->checkpoints) {
      std::shared_ptr<Export> e = registry_->Find(export_id);
      if (e == nullptr) {  // stopped (a crash before its removal) or set aside
        (void)checkpoints_->Remove(export_id);
        continue;
      }
      if (absl::Status restored = e->aggregator()->RestoreState(checkpoint.aggregation_state());
          !restored.ok()) {
        ++set_aside;
        checkpoints_->SetAside(export_id,
                               absl::StrCat("it does not restore (", restored.message(),
                                            "); the export is replayed from what the log has"));
        continue;
      }
      e->MarkRestoredFromCheckpoint(checkpoint);
      replayer.UseCheckpoint(checkpoint);
      used.emplace_back(export_id, CheckpointPosition(checkpoint));
    }
  }
  absl::StatusOr<std::unique_ptr<ExportJournal>> journal = ExportJournal::Open(
      wal, &report, [&replayer](const JournalRecord& record) { return replayer.Apply(record); });
  for (const std::string& message : report.messages) LogWarning(message, {});
  if (!journal.ok()) {
    return absl::Status(journal.status().code(),
                        absl::StrCat("--data_dir: the wal: ", journal.status().message()));
  }
  LogInfo(report.Summary(), {{"fsync", FsyncPolicyToString(options.wal_fsync)}});
  replayer.Finish();
  for (const auto& [export_id, position] : used) {
    if (std::shared_ptr<Export> e = registry_->Find(export_id)) {
      const v1::ExportStatus status = e->Status();
      LogInfo(
          "export restored from a checkpoint",
          {{"export_id", export_id},
           {"checkpoint_age",
            absl::FormatDuration(absl::Now() - absl::FromUnixMillis(status.checkpoint_unix_ms()))},
           {"batches_replayed_after_it", absl::StrCat(status.checkpoint_replayed_batches())}});
    }
    // The log behind the checkpoint is no longer needed.
    if (absl::Status covered = (*journal)->CheckpointCovered(export_id, position); !covered.ok()) {
      LogWarning("the log cannot be truncated behind a checkpoint",
                 {{"export_id", export_id}, {"error", std::string(covered.message())}});
    }
  }
  checkpoints_restored_ = used.size();
  checkpoints_set_aside_ = set_aside;
  journal_ = *std::move(journal);
  registry_->AttachJournal(journal_.get());
  return absl::OkStatus();
}

absl::Status Server::Listen(const ServerOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.security);
  if (!credentials.ok()) return credentials.status();
  if (options.influx.has_value()) {
    InfluxEndpointOptions influx = *options.influx;
    influx.auth_token = options.auth_token;
    absl::StatusOr<std::unique_ptr<InfluxEndpoint>> started =
        InfluxEndpoint::Start(registry_.get(), std::move(influx));
    if (!started.ok()) return started.status();
    influx_ = *std::move(started);
  }
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
  reflection_v1_ = std::make_unique<ReflectionV1Service>(
      std::vector<std::string>{v1::ExportService::service_full_name(), "grpc.health.v1.Health",
                               "grpc.reflection.v1alpha.ServerReflection"});
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, *credentials, &port_);
  // No SO_REUSEPORT: a second server on a port in use must fail, not share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(service_.get());
  builder.RegisterService(reflection_v1_.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    absl::Status cause = CheckCanListen(options.listen);  // gRPC does not say why
    return absl::UnavailableError(
        absl::StrCat("--listen: cannot listen on ", cause.ok() ? options.listen : cause.message()));
  }
  if (grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService()) {
    health->SetServingStatus(v1::ExportService::service_full_name(), true);
  }
  if (metrics_ != nullptr) metrics_->SetReady(true);  // /-/ready: accepting exports
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
  if (metrics_ != nullptr) metrics_->SetReady(false);  // /-/ready too
  influx_.reset();  // no new writes (nor auto-started exports) while the exports stop
  // Answer open streams with their counts first, then flush and deliver every export (or, with
  // a data dir, keep them for the next start); then stop gRPC.
  if (service_ != nullptr) {
    // Logged only when there were any: a server that failed to start says one line.
    const size_t streams = service_->StopStreams();
    if (streams > 0) LogInfo("open streams answered", {{"streams", absl::StrCat(streams)}});
  }
  if (registry_ != nullptr && data_dir_ != nullptr) {
    // A graceful stop with a data dir is a restart: what was accepted is in the log, the
    // exports stay recorded, and the next start recovers them; only what was handed to the
    // targets is delivered first, so that it is not sent again.
    const absl::Time deadline = absl::Now() + registry_->options().default_delivery_timeout;
    if (service_ != nullptr) {
      if (const size_t open = service_->AwaitStreamsEnded(deadline); open > 0) {
        LogWarning("streams still open at the delivery deadline",
                   {{"streams", absl::StrCat(open)}});
      }
    }
    const size_t kept = registry_->KeepAll(deadline);
    MutexLock lock(&mu_);
    kept_ = kept;
  } else if (registry_ != nullptr) {
    stopped = registry_->StopAll();
  }
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

size_t Server::kept() const {
  MutexLock lock(&mu_);
  return kept_;
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
  store_.reset();
  data_dir_.reset();
}

std::unique_ptr<v1::ExportService::Stub> Server::NewStub() const {
  return v1::ExportService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
}

}  // namespace rwexport
