#include "lib/bench/bench.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "lib/bench/child_process.h"
#include "lib/bench/null_receiver.h"
#include "lib/bench/report.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

const char* BenchServerName(BenchServer server) {
  return server == BenchServer::kNullSink ? "null_sink" : "rwexport";
}

const BenchPhase* BenchReport::Find(BenchServer server, BenchMode mode) const {
  for (const BenchPhase& p : phases) {
    if (p.server == server && p.mode == mode) return &p;
  }
  return nullptr;
}

absl::StatusOr<BenchReport> RunBench(const BenchOptions& options) {
  if (!options.command) return absl::InvalidArgumentError("BenchOptions.command: required");
  if (options.rss_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("BenchOptions.rss_interval: must be positive");
  }
  NullReceiverOptions receiver_options;
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start(receiver_options);
  if (!receiver.ok()) return receiver.status();
  const BenchWorkload workload = MakeBenchWorkload(options.endpoints, options.seed);
  BenchReport report;
  report.distinct_series = workload.series.size();
  std::vector<BenchServer> servers;
  if (options.null_sink) servers.push_back(BenchServer::kNullSink);
  servers.push_back(BenchServer::kRwexport);

  for (BenchMode mode : options.modes) {
    for (BenchServer server : servers) {
      absl::StatusOr<std::unique_ptr<ChildProcess>> child =
          ChildProcess::Spawn(options.command(server));
      if (!child.ok()) return child.status();
      const std::string address = absl::StrCat("127.0.0.1:", (*child)->port());
      std::unique_ptr<v1::ExportService::Stub> stub =
          v1::ExportService::NewStub(NewBenchChannel(address));

      absl::StatusOr<ProcessUsage> before = (*child)->Usage();
      if (!before.ok()) return before.status();
      const NullReceiverCounts received_before = (*receiver)->Counts();
      v1::StartExportResponse started;
      {
        grpc::ClientContext context;
        absl::Status status = FromGrpcStatus(stub->StartExport(
            &context, MakeBenchExportRequest((*receiver)->Url(), options.resample_rate_s),
            &started));
        if (!status.ok()) return status;
      }
      BenchLoadOptions load_options = options.load;
      load_options.mode = mode;
      const ProcessUsage client_before = CurrentProcessUsage();
      std::function<uint64_t()> pending;
      if (server == BenchServer::kRwexport) {
        pending = [&stub, &started] {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          v1::GetExportRequest request;
          request.set_export_id(started.export_id());
          v1::ExportStatus status;
          uint64_t points = 0;
          if (!stub->GetExport(&context, request, &status).ok()) return points;
          for (const v1::TargetFigures& t : status.figures()) points += t.points_pending();
          return points;
        };
      }
      auto sampler =
          std::make_unique<RssSampler>(child->get(), options.rss_interval, std::move(pending));
      absl::StatusOr<BenchLoadResult> load =
          RunBenchLoad(address, started.export_id(), workload, load_options);
      std::vector<RssSample> rss = sampler->Stop();
      const ProcessUsage client_after = CurrentProcessUsage();
      if (!load.ok()) return load.status();
      v1::StopExportResponse stopped;
      {
        grpc::ClientContext context;
        v1::StopExportRequest request;
        request.set_export_id(started.export_id());
        request.set_delivery_timeout_ms(60000);
        absl::Status status = FromGrpcStatus(stub->StopExport(&context, request, &stopped));
        if (!status.ok()) return status;
      }
      absl::StatusOr<ProcessUsage> after = (*child)->Usage();
      if (!after.ok()) return after.status();
      const NullReceiverCounts received_after = (*receiver)->Counts();

      BenchPhase phase;
      phase.server = server;
      phase.mode = mode;
      phase.load = *load;
      const double seconds = absl::ToDoubleSeconds(load->elapsed);
      phase.samples_per_second = seconds > 0 ? static_cast<double>(load->accepted) / seconds : 0;
      phase.server_cpu_seconds = after->cpu_seconds - before->cpu_seconds;
      phase.server_cpu_seconds_per_million =
          load->accepted > 0 ? phase.server_cpu_seconds / static_cast<double>(load->accepted) * 1e6
                             : 0;
      phase.server_peak_rss_kb = after->peak_rss_kb;
      phase.rss_profile = SummarizeRss(rss, load_options.duration);
      phase.heap_profile = SummarizeRss(rss, load_options.duration, /*heap=*/true);
      phase.rss = std::move(rss);
      phase.server_rss_after_stop_kb = after->rss_kb;
      phase.server_heap_after_stop_kb = after->heap_in_use_kb;
      for (const v1::TargetFigures& t : stopped.targets()) {
        phase.series += t.series();
        phase.points_sent += t.points_sent();
        phase.points_dropped += t.points_dropped();
        phase.highest_point_time =
            std::max(phase.highest_point_time, absl::FromUnixMillis(t.highest_timestamp_ms()));
      }
      phase.points_received = received_after.points - received_before.points;
      phase.requests_received = received_after.requests - received_before.requests;
      phase.client_cpu_seconds = client_after.cpu_seconds - client_before.cpu_seconds;
      report.phases.push_back(phase);
      if (options.on_progress) {
        options.on_progress(FormatBenchProgress(phase));
      }
    }
  }
  return report;
}

}  // namespace rwexport
