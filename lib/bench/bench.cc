#include "lib/bench/bench.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "lib/bench/child_process.h"
#include "lib/bench/null_receiver.h"
#include "lib/bench/report.h"
#include "lib/client/acked_stream.h"
#include "lib/client/sample_stream.h"
#include "lib/common/allocator.h"
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

namespace {

using Stub = v1::ExportService::Stub;

absl::StatusOr<std::vector<std::string>> StartExports(Stub& stub, const BenchOptions& options,
                                                      const std::string& url) {
  std::vector<std::string> ids;
  for (int e = 0; e < std::max(options.exports, 1); ++e) {
    grpc::ClientContext context;
    v1::StartExportResponse started;
    absl::Status status = FromGrpcStatus(
        stub.StartExport(&context, MakeBenchExportRequest(url, options.resample_rate_s), &started));
    if (!status.ok()) return status;
    ids.push_back(started.export_id());
  }
  return ids;
}

// Stops every export of the phase; adds their figures to `phase`.
absl::Status StopExports(Stub& stub, const std::vector<std::string>& ids, BenchPhase* phase) {
  for (const std::string& id : ids) {
    v1::StopExportResponse stopped;
    grpc::ClientContext context;
    v1::StopExportRequest request;
    request.set_export_id(id);
    request.set_delivery_timeout_ms(60000);
    absl::Status status = FromGrpcStatus(stub.StopExport(&context, request, &stopped));
    if (!status.ok()) return status;
    for (const v1::TargetFigures& t : stopped.targets()) {
      phase->series += t.series();
      phase->points_sent += t.points_sent();
      phase->points_dropped += t.points_dropped();
      phase->highest_point_time =
          std::max(phase->highest_point_time, absl::FromUnixMillis(t.highest_timestamp_ms()));
    }
  }
  return absl::OkStatus();
}

// The first export's points held undelivered and its streams' retained bytes, for the memory
// readings. Only the first: a GetExport per export every reading would add to the server CPU
// of many small exports.
std::function<void(RssSample*)> ExportFiguresReader(Stub& stub, const std::string& id) {
  return [&stub, id](RssSample* sample) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetExportRequest request;
    request.set_export_id(id);
    v1::ExportStatus status;
    if (!stub.GetExport(&context, request, &status).ok()) return;
    for (const v1::TargetFigures& t : status.figures())
      sample->points_pending += t.points_pending();
    sample->stream_retained_bytes = status.stream_retained_bytes();
  };
}

// The load of a phase: every export gets a stream; with more exports than streams, the
// streams feed them in rounds of options.load.streams exports, each round an equal share of
// the duration.
absl::StatusOr<BenchLoadResult> RunPhaseLoad(const std::string& address,
                                             const std::vector<std::string>& ids,
                                             const BenchWorkload& workload,
                                             BenchLoadOptions options) {
  const size_t per_round = static_cast<size_t>(std::max(options.streams, 1));
  const size_t rounds = (ids.size() + per_round - 1) / per_round;
  if (rounds <= 1) return RunBenchLoad(address, ids, workload, options);
  options.duration = options.duration / static_cast<double>(rounds);
  BenchLoadResult total;
  for (size_t r = 0; r < rounds; ++r) {
    const std::vector<std::string> round(
        ids.begin() + static_cast<std::ptrdiff_t>(r * per_round),
        ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), (r + 1) * per_round)));
    absl::StatusOr<BenchLoadResult> load = RunBenchLoad(address, round, workload, options);
    if (!load.ok()) return load.status();
    total.samples_sent += load->samples_sent;
    total.accepted += load->accepted;
    total.rejected += load->rejected;
    total.elapsed += load->elapsed;
    if (total.first_sample_time == absl::InfinitePast()) {
      total.first_sample_time = load->first_sample_time;
    }
    total.last_sample_time = std::max(total.last_sample_time, load->last_sample_time);
  }
  return total;
}

absl::StatusOr<BenchPhase> RunPhase(const BenchOptions& options, const BenchWorkload& workload,
                                    NullReceiver& receiver, BenchServer server, BenchMode mode) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn(options.command(server));
  if (!child.ok()) return child.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*child)->port());
  std::unique_ptr<Stub> stub = v1::ExportService::NewStub(NewBenchChannel(address));

  absl::StatusOr<ProcessUsage> cold = (*child)->Usage();
  if (!cold.ok()) return cold.status();
  if (server == BenchServer::kRwexport && options.warm_up) {
    // A small export shaped like the measured one: as many streams, in the same mode, on one
    // endpoint's series, for a moment.
    BenchOptions one = options;
    one.exports = 1;
    absl::StatusOr<std::vector<std::string>> warm_ids = StartExports(*stub, one, receiver.Url());
    if (!warm_ids.ok()) return warm_ids.status();
    BenchLoadOptions warm = options.load;
    warm.mode = mode;
    warm.duration = absl::Milliseconds(200);
    warm.event_span = absl::ZeroDuration();
    warm.before_finish = nullptr;
    absl::StatusOr<BenchLoadResult> warm_load =
        RunBenchLoad(address, *warm_ids, MakeBenchWorkload(1, options.seed), warm);
    if (!warm_load.ok()) return warm_load.status();
    BenchPhase ignored;
    if (absl::Status stopped = StopExports(*stub, *warm_ids, &ignored); !stopped.ok()) {
      return stopped;
    }
  }
  absl::StatusOr<ProcessUsage> before = (*child)->Usage();
  if (!before.ok()) return before.status();
  const NullReceiverCounts received_before = receiver.Counts();
  absl::StatusOr<std::vector<std::string>> ids = StartExports(*stub, options, receiver.Url());
  if (!ids.ok()) return ids.status();
  BenchLoadOptions load_options = options.load;
  load_options.mode = mode;
  const ProcessUsage client_before = CurrentProcessUsage();
  std::function<void(RssSample*)> export_figures;
  if (server == BenchServer::kRwexport) export_figures = ExportFiguresReader(*stub, ids->front());
  auto sampler =
      std::make_unique<RssSampler>(child->get(), options.rss_interval, std::move(export_figures));
  std::vector<RssSample> rss;
  bool sampled = false;
  BenchPhase phase;
  absl::Status held = absl::OkStatus();
  // Not with exports fed in rounds (RunPhaseLoad): the hold is one moment of one load.
  const bool hold = server == BenchServer::kRwexport && options.hold > absl::ZeroDuration() &&
                    ids->size() <= static_cast<size_t>(std::max(options.load.streams, 1));
  if (hold) {
    // The streams are done and still open: the sampler's last reading, then the hold.
    load_options.before_finish = [&] {
      rss = sampler->Stop();
      sampled = true;
      absl::SleepFor(options.hold);
      absl::StatusOr<ProcessUsage> open = (*child)->Usage();
      if (!open.ok()) {
        held = open.status();
        return;
      }
      phase.server_streams_open = *open;
      RssSample figures;
      ExportFiguresReader(*stub, ids->front())(&figures);
      phase.stream_retained_held_bytes = figures.stream_retained_bytes;
    };
  }
  absl::StatusOr<BenchLoadResult> load = RunPhaseLoad(address, *ids, workload, load_options);
  if (!sampled) rss = sampler->Stop();
  const ProcessUsage client_after = CurrentProcessUsage();
  if (!load.ok()) return load.status();
  if (!held.ok()) return held;
  if (hold && phase.server_streams_open.rss_kb > 0) {
    // The server frees a stream's state when gRPC is done with its call, just after the
    // client's Finish: a moment for the last of them.
    absl::SleepFor(absl::Seconds(1));
    absl::StatusOr<ProcessUsage> closed = (*child)->Usage();
    if (!closed.ok()) return closed.status();
    phase.server_streams_closed = *closed;
    phase.held = true;
  }
  if (absl::Status stopped = StopExports(*stub, *ids, &phase); !stopped.ok()) return stopped;
  absl::StatusOr<ProcessUsage> after = (*child)->Usage();
  if (!after.ok()) return after.status();
  const NullReceiverCounts received_after = receiver.Counts();

  phase.server = server;
  phase.mode = mode;
  phase.exports = static_cast<int>(ids->size());
  phase.load = *load;
  const double seconds = absl::ToDoubleSeconds(load->elapsed);
  phase.samples_per_second = seconds > 0 ? static_cast<double>(load->accepted) / seconds : 0;
  phase.server_cpu_seconds = after->cpu_seconds - before->cpu_seconds;
  phase.server_cpu_seconds_per_million =
      load->accepted > 0 ? phase.server_cpu_seconds / static_cast<double>(load->accepted) * 1e6 : 0;
  phase.server_peak_rss_kb = after->peak_rss_kb;
  phase.rss_profile = SummarizeRss(rss, load_options.duration);
  phase.heap_profile = SummarizeRss(rss, load_options.duration, /*heap=*/true);
  for (const RssSample& r : rss) {
    phase.stream_retained_max_bytes =
        std::max(phase.stream_retained_max_bytes, r.stream_retained_bytes);
    if (r.stream_retained_bytes > 0) phase.stream_retained_last_bytes = r.stream_retained_bytes;
  }
  phase.rss = std::move(rss);
  phase.server_before = *before;
  phase.server_cold = *cold;
  phase.server_after_stop = *after;
  phase.server_rss_before_kb = before->rss_kb;
  phase.server_heap_before_kb = before->heap_in_use_kb;
  phase.server_rss_after_stop_kb = after->rss_kb;
  phase.server_heap_after_stop_kb = after->heap_in_use_kb;
  phase.points_received = received_after.points - received_before.points;
  phase.requests_received = received_after.requests - received_before.requests;
  phase.client_cpu_seconds = client_after.cpu_seconds - client_before.cpu_seconds;
  return phase;
}

// One export's life on `stub`: StartExport, one acknowledged stream of options.cycle_batches
// batches (compact mode: declaring just the series it samples), StopExport. Returns the
// samples accepted.
absl::StatusOr<uint64_t> RunExportCycle(Stub& stub, const BenchOptions& options,
                                        const BenchWorkload& workload, const std::string& url,
                                        BenchMode mode) {
  BenchOptions one = options;
  one.exports = 1;
  absl::StatusOr<std::vector<std::string>> ids = StartExports(stub, one, url);
  if (!ids.ok()) return ids.status();
  AckedStreamOptions acked;
  acked.batch_size = std::max<size_t>(options.load.batch_size, 1);
  acked.resume_timeout = options.load.resume_timeout;
  uint64_t accepted = 0;
  {
    AckedStream stream(&stub, ids->front(), acked);
    stream.Declare(kBenchCustomTrend, MetricType::kTrend, ValueKind::kTime);
    std::vector<bool> declared(workload.series.size());
    const int64_t ts = absl::ToUnixNanos(absl::Now());
    const size_t samples = acked.batch_size * std::max<size_t>(options.cycle_batches, 1);
    for (size_t k = 0; k < samples; ++k) {
      const auto& [series, value] = workload.cycle[k % workload.cycle.size()];
      const BenchSeries& s = workload.series[series];
      if (mode == BenchMode::kCompact) {
        if (!declared[series]) stream.DeclareSeries(series, s.metric, s.tags);
        declared[series] = true;
        stream.AddCompact(series, ts, value);
      } else {
        stream.Add(s.metric, s.tags, ts, value);
      }
      if ((k + 1) % acked.batch_size == 0) {
        if (absl::Status flushed = stream.Flush(); !flushed.ok()) return flushed;
      }
    }
    absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
    if (!response.ok()) return response.status();
    accepted = response->accepted();
  }
  BenchPhase ignored;
  if (absl::Status stopped = StopExports(stub, *ids, &ignored); !stopped.ok()) return stopped;
  return accepted;
}

// The fixed cost of an export in `mode`: options.export_cycles cycles (after one of warm-up)
// against a fresh server, its CPU read before and after.
absl::StatusOr<BenchCycles> RunCycles(const BenchOptions& options, const BenchWorkload& workload,
                                      NullReceiver& receiver, BenchMode mode) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn(options.command(BenchServer::kRwexport));
  if (!child.ok()) return child.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*child)->port());
  std::unique_ptr<Stub> stub = v1::ExportService::NewStub(NewBenchChannel(address));
  absl::StatusOr<uint64_t> warm = RunExportCycle(*stub, options, workload, receiver.Url(), mode);
  if (!warm.ok()) return warm.status();
  absl::StatusOr<ProcessUsage> before = (*child)->Usage();
  if (!before.ok()) return before.status();
  BenchCycles cycles;
  cycles.mode = mode;
  const absl::Time start = absl::Now();
  for (int c = 0; c < options.export_cycles; ++c) {
    absl::StatusOr<uint64_t> accepted =
        RunExportCycle(*stub, options, workload, receiver.Url(), mode);
    if (!accepted.ok()) return accepted.status();
    cycles.samples += *accepted;
    ++cycles.cycles;
  }
  const absl::Duration wall = absl::Now() - start;
  absl::StatusOr<ProcessUsage> after = (*child)->Usage();
  if (!after.ok()) return after.status();
  cycles.server_cpu_seconds = after->cpu_seconds - before->cpu_seconds;
  cycles.server_cpu_ms_per_export = cycles.server_cpu_seconds * 1e3 / cycles.cycles;
  cycles.wall_ms_per_export = absl::ToDoubleMilliseconds(wall) / cycles.cycles;
  return cycles;
}

}  // namespace

absl::StatusOr<BenchReport> RunBench(const BenchOptions& options) {
  if (!options.command) return absl::InvalidArgumentError("BenchOptions.command: required");
  if (options.rss_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("BenchOptions.rss_interval: must be positive");
  }
  NullReceiverOptions receiver_options;
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start(receiver_options);
  if (!receiver.ok()) return receiver.status();
  BenchWorkloadShape shape;
  shape.endpoints = options.endpoints;
  if (options.series > 0) shape = BenchWorkloadShapeFor(options.series);
  const BenchWorkload workload =
      MakeBenchWorkload(shape.endpoints, options.seed, shape.extra_steps);
  BenchReport report;
  report.distinct_series = workload.series.size();
  report.allocator = AllocatorDescription();
  std::vector<BenchServer> servers;
  if (options.null_sink) servers.push_back(BenchServer::kNullSink);
  servers.push_back(BenchServer::kRwexport);

  if (options.export_cycles > 0) {
    for (BenchMode mode : options.modes) {
      absl::StatusOr<BenchCycles> cycles = RunCycles(options, workload, **receiver, mode);
      if (!cycles.ok()) return cycles.status();
      report.cycles.push_back(*cycles);
      if (options.on_progress) options.on_progress(FormatBenchCycles(report.cycles.back()));
    }
    return report;
  }
  for (BenchMode mode : options.modes) {
    for (BenchServer server : servers) {
      absl::StatusOr<BenchPhase> phase = RunPhase(options, workload, **receiver, server, mode);
      if (!phase.ok()) return phase.status();
      report.phases.push_back(*std::move(phase));
      if (options.on_progress) options.on_progress(FormatBenchProgress(report.phases.back()));
    }
  }
  return report;
}

}  // namespace rwexport
