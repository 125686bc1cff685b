#include "client/bench_command.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/bench/bench.h"
#include "lib/bench/child_process.h"
#include "lib/bench/null_sink.h"
#include "lib/bench/report.h"
#include "lib/client/cli_flags.h"
#include "lib/client/cli_json.h"
#include "lib/common/log.h"
#include "server/server.h"

// --duration, --batch_size, --resample_rate and --json are shared with other commands
// (lib/client/cli_flags.h).
ABSL_FLAG(int, streams, 4, "bench: concurrent streams, each on its own connection.");
ABSL_FLAG(std::string, mode, "both", "bench: self, compact or both (stream modes measured).");
ABSL_FLAG(std::string, rpc, "acked",
          "bench: acked (IngestSamples, acknowledged batches) or stream (StreamSamples).");
ABSL_FLAG(bool, null_sink, true, "bench: also measure the null sink, for the ratios.");
ABSL_FLAG(int, server_workers, 0, "bench: aggregation threads of the server; 0: one per core.");
ABSL_FLAG(int, endpoints, 200, "bench: distinct URLs in the load (about 27 series each).");
ABSL_FLAG(int64_t, series, 0,
          "bench: distinct series in the load (at least 39; e.g. 1000, 100000), generated "
          "deterministically; overrides --endpoints. 0: as --endpoints makes them.");
ABSL_FLAG(int, exports, 1,
          "bench: exports started per phase, each fed its share of the samples: stream i feeds "
          "export i % exports; more exports than streams are fed in rounds.");
ABSL_FLAG(int, export_cycles, 0,
          "bench: instead of the load phases, measure the fixed cost of an export: this many "
          "cycles (after one of warm-up) of StartExport, one acknowledged stream of "
          "--cycle_batches batches of --batch_size samples, StopExport; prints the server CPU "
          "per export in each --mode. 0: the load phases.");
ABSL_FLAG(int, cycle_batches, 1, "bench --export_cycles: batches in each export's stream.");
ABSL_FLAG(absl::Duration, event_span, absl::ZeroDuration(),
          "bench: replay this much event time in each phase's --duration (e.g. 1h in 3m): "
          "sample timestamps run from span before the phase's end to its end; 0: wall clock.");
ABSL_FLAG(absl::Duration, hold, absl::ZeroDuration(),
          "bench: after each rwexport phase's load, keep its streams open and idle this long, "
          "then report the server's heap with them open and once they ended (the export still "
          "open): what the streams keep per declared series, apart from the export. 0: off.");
ABSL_FLAG(bool, warmup_export, true,
          "bench: before each rwexport phase's export, run one small export (as many streams "
          "for 200 ms on 39 series), so that the RSS before the export includes what any export "
          "leaves behind; the RSS as started is reported too.");
ABSL_FLAG(std::string, rss_csv, "",
          "bench: also write every memory reading (server,mode,seconds,rss_kb,heap_in_use_kb,"
          "points_pending,stream_retained_bytes) to this CSV file.");
ABSL_FLAG(std::string, data_dir, "",
          "bench: run the measured rwexport server with this data directory (its write-ahead "
          "log and registry, as rwexport_server --data_dir, default fsync policy): the durable "
          "ingest figures. Each phase gets a fresh subdirectory bench-<pid>-<n>, removed when "
          "the bench succeeds (kept when it fails). Empty: in memory.");
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::ZeroDuration(),
          "bench, with --data_dir: the measured server checkpoints each export this often "
          "(rwexport_server --checkpoint_interval; scripts/bench_recovery.sh's checkpoint case). "
          "0: no checkpoints.");
ABSL_FLAG(std::string, bench_serve, "",
          "bench (internal): serve as the child process of a bench phase: rwexport or null_sink.");

namespace rwexport {
namespace {

// The report as `--json` prints it: per phase its figures, counts as numbers.
nlohmann::ordered_json BenchJson(const BenchReport& report) {
  using Json = nlohmann::ordered_json;
  Json phases = Json::array();
  for (const BenchPhase& p : report.phases) {
    phases.push_back(
        Json{{"server", BenchServerName(p.server)},
             {"mode", BenchModeName(p.mode)},
             {"samplesSent", p.load.samples_sent},
             {"samplesAccepted", p.load.accepted},
             {"samplesRejected", p.load.rejected},
             {"elapsedSeconds", absl::ToDoubleSeconds(p.load.elapsed)},
             {"samplesPerSecond", p.samples_per_second},
             {"serverCpuSeconds", p.server_cpu_seconds},
             {"serverCpuSecondsPerMillion", p.server_cpu_seconds_per_million},
             {"serverPeakRssKb", p.server_peak_rss_kb},
             {"exports", p.exports},
             {"serverRssColdKb", p.server_cold.rss_kb},
             {"serverHeapColdKb", p.server_cold.heap_in_use_kb},
             {"serverRssBeforeKb", p.server_rss_before_kb},
             {"serverRssAt100Kb", p.rss_profile.at_100_kb},
             {"serverRssMaxKb", p.rss_profile.max_kb},
             {"serverRssAfterStopKb", p.server_rss_after_stop_kb},
             {"serverHeapBeforeKb", p.server_heap_before_kb},
             {"serverHeapAt100Kb", p.heap_profile.at_100_kb},
             {"serverHeapMaxKb", p.heap_profile.max_kb},
             {"serverRssEndKb", p.rss.empty() ? 0 : p.rss.back().rss_kb},
             {"serverHeapEndKb", p.rss.empty() ? 0 : p.rss.back().heap_in_use_kb},
             {"serverHeapAfterStopKb", p.server_heap_after_stop_kb},
             {"serverRssAnonBeforeKb", p.server_before.rss_anon_kb},
             {"serverRssAnonAfterStopKb", p.server_after_stop.rss_anon_kb},
             {"serverRssFileBeforeKb", p.server_before.rss_file_kb},
             {"serverRssFileAfterStopKb", p.server_after_stop.rss_file_kb},
             {"serverThreadsBefore", p.server_before.threads},
             {"serverThreadsAfterStop", p.server_after_stop.threads},
             {"serverAllocatorResidentBeforeKb", p.server_before.allocator_resident_kb},
             {"serverAllocatorResidentAfterStopKb", p.server_after_stop.allocator_resident_kb},
             {"serverAllocatorMetadataAfterStopKb", p.server_after_stop.allocator_metadata_kb},
             {"streamRetainedMaxBytes", p.stream_retained_max_bytes},
             {"streamRetainedLastBytes", p.stream_retained_last_bytes},
             {"held", p.held},
             {"serverHeapStreamsOpenKb", p.server_streams_open.heap_in_use_kb},
             {"serverHeapStreamsClosedKb", p.server_streams_closed.heap_in_use_kb},
             {"serverRssStreamsOpenKb", p.server_streams_open.rss_kb},
             {"serverRssStreamsClosedKb", p.server_streams_closed.rss_kb},
             {"streamRetainedHeldBytes", p.stream_retained_held_bytes},
             {"serverRssGrowthPercent", p.rss_profile.growth_percent},
             {"series", p.series},
             {"pointsSent", p.points_sent},
             {"pointsDropped", p.points_dropped},
             {"pointsReceived", p.points_received},
             {"requestsReceived", p.requests_received},
             {"clientCpuSeconds", p.client_cpu_seconds}});
  }
  Json cycles = Json::array();
  for (const BenchCycles& c : report.cycles) {
    cycles.push_back(Json{{"mode", BenchModeName(c.mode)},
                          {"exports", c.cycles},
                          {"samplesAccepted", c.samples},
                          {"serverCpuSeconds", c.server_cpu_seconds},
                          {"serverCpuMsPerExport", c.server_cpu_ms_per_export},
                          {"wallMsPerExport", c.wall_ms_per_export}});
  }
  return Json{{"distinctSeries", report.distinct_series},
              {"allocator", report.allocator},
              {"phases", std::move(phases)},
              {"exportCycles", std::move(cycles)}};
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "rwexport: %s\n", message.c_str());
  return 1;
}

// The child of a phase: serves until stdin closes, then stops the server.
int ServeChild(int port) {
  absl::Status served = ServeBenchChild(port);
  if (!served.ok()) {
    std::fprintf(stderr, "rwexport bench: %s\n", std::string(served.message()).c_str());
    return 1;
  }
  return 0;
}

// rwexport_server's wiring with its default options; `workers` 0: one per core; `data_dir`
// non-empty: with that data directory (write-ahead log, default fsync policy).
int ServeRwexport(size_t workers, const std::string& data_dir, absl::Duration checkpoint_interval) {
  SetLogLevel(LogLevel::kWarning);  // the parent's stdout is the protocol; keep stderr quiet
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.workers = workers;
  options.data_dir = data_dir;
  options.exports.checkpoint_interval = checkpoint_interval;
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "rwexport bench: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  return ServeChild((*server)->port());
}

int ServeNullSink() {
  NullSinkService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "rwexport bench: cannot listen on 127.0.0.1:0\n");
    return 1;
  }
  const int code = ServeChild(port);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return code;
}

}  // namespace

int RunBenchCommand(const std::vector<char*>& args) {
  if (!args.empty()) return Fail("bench takes no arguments (see rwexport bench --help)");
  if (absl::GetFlag(FLAGS_server_workers) < 0) return Fail("--server_workers: must be >= 0");
  const size_t workers = static_cast<size_t>(absl::GetFlag(FLAGS_server_workers));
  const std::string serve = absl::GetFlag(FLAGS_bench_serve);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  const absl::Duration checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  if (checkpoint_interval < absl::ZeroDuration())
    return Fail("--checkpoint_interval: must be >= 0");
  if (serve == "rwexport") return ServeRwexport(workers, data_dir, checkpoint_interval);
  if (serve == "null_sink") return ServeNullSink();
  if (!serve.empty()) return Fail("--bench_serve: expected rwexport or null_sink");

  BenchOptions options;
  options.load.streams = absl::GetFlag(FLAGS_streams);
  options.load.duration = absl::GetFlag(FLAGS_duration) == absl::ZeroDuration()
                              ? absl::Seconds(10)
                              : absl::GetFlag(FLAGS_duration);
  if (options.load.streams < 1) return Fail("--streams: must be at least 1");
  if (options.load.duration < absl::ZeroDuration()) return Fail("--duration: must be positive");
  if (absl::GetFlag(FLAGS_batch_size) < 1) return Fail("--batch_size: must be at least 1");
  options.load.batch_size = absl::GetFlag(FLAGS_batch_size);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "self") {
    options.modes = {BenchMode::kSelfDescribing};
  } else if (mode == "compact") {
    options.modes = {BenchMode::kCompact};
  } else if (mode != "both") {
    return Fail(absl::StrCat("--mode: expected self, compact or both, got \"", mode, "\""));
  }
  const std::string rpc = absl::GetFlag(FLAGS_rpc);
  if (rpc != "acked" && rpc != "stream") {
    return Fail(absl::StrCat("--rpc: expected acked or stream, got \"", rpc, "\""));
  }
  options.load.acked = rpc == "acked";
  options.load.resume_timeout = absl::GetFlag(FLAGS_resume_timeout);
  if (options.load.resume_timeout <= absl::ZeroDuration()) {
    return Fail("--resume_timeout: must be positive");
  }
  options.null_sink = absl::GetFlag(FLAGS_null_sink);
  options.endpoints = absl::GetFlag(FLAGS_endpoints);
  if (options.endpoints < 1) return Fail("--endpoints: must be at least 1");
  const int64_t series = absl::GetFlag(FLAGS_series);
  if (series != 0 && (series < 39 || series > 10000000)) {
    return Fail(absl::StrCat("--series: must be 0 or from 39 to 10000000, got ", series));
  }
  options.series = static_cast<size_t>(series);
  options.exports = absl::GetFlag(FLAGS_exports);
  if (options.exports < 1 || options.exports > 10000) {
    return Fail(absl::StrCat("--exports: must be from 1 to 10000, got ", options.exports));
  }
  options.export_cycles = absl::GetFlag(FLAGS_export_cycles);
  if (options.export_cycles < 0 || options.export_cycles > 100000) {
    return Fail(
        absl::StrCat("--export_cycles: must be from 0 to 100000, got ", options.export_cycles));
  }
  if (absl::GetFlag(FLAGS_cycle_batches) < 1) return Fail("--cycle_batches: must be at least 1");
  options.cycle_batches = static_cast<size_t>(absl::GetFlag(FLAGS_cycle_batches));
  options.resample_rate_s = absl::GetFlag(FLAGS_resample_rate);
  options.hold = absl::GetFlag(FLAGS_hold);
  if (options.hold < absl::ZeroDuration()) return Fail("--hold: must be >= 0");
  if (options.hold > absl::ZeroDuration() && options.exports > options.load.streams) {
    return Fail("--hold: not with more --exports than --streams (fed in rounds)");
  }
  options.warm_up = absl::GetFlag(FLAGS_warmup_export);
  options.load.event_span = absl::GetFlag(FLAGS_event_span);
  if (options.load.event_span < absl::ZeroDuration() ||
      (options.load.event_span > absl::ZeroDuration() &&
       options.load.event_span < options.load.duration)) {
    return Fail(absl::StrCat("--event_span: must be 0 or at least --duration (",
                             absl::FormatDuration(options.load.duration), "), got ",
                             absl::FormatDuration(options.load.event_span)));
  }
  if (options.exports > options.load.streams && options.load.event_span != absl::ZeroDuration()) {
    return Fail("--event_span: not with more --exports than --streams (fed in rounds)");
  }
  // The non-throwing form: a path that cannot be read (EACCES) is "not a directory" too.
  if (std::error_code error; !data_dir.empty() && !std::filesystem::is_directory(data_dir, error)) {
    return Fail(absl::StrCat("--data_dir: ", data_dir, " is not a directory"));
  }
  // With --data_dir each rwexport phase gets DIR/bench-<pid>-<n>, removed once the bench ends.
  auto phase_dirs = std::make_shared<std::vector<std::string>>();
  options.command = [workers, data_dir, phase_dirs, checkpoint_interval](BenchServer server) {
    std::vector<std::string> argv = {"/proc/self/exe", "bench",
                                     absl::StrCat("--bench_serve=", BenchServerName(server)),
                                     absl::StrCat("--server_workers=", workers)};
    if (!data_dir.empty() && server == BenchServer::kRwexport) {
      phase_dirs->push_back(
          absl::StrCat(data_dir, "/bench-", getpid(), "-", phase_dirs->size() + 1));
      argv.push_back(absl::StrCat("--data_dir=", phase_dirs->back()));
      argv.push_back(
          absl::StrCat("--checkpoint_interval=", absl::FormatDuration(checkpoint_interval)));
    }
    return argv;
  };
  options.on_progress = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  if (options.export_cycles > 0) {
    std::fprintf(stderr, "rwexport bench: %d export cycles in each of %zu mode(s)\n",
                 options.export_cycles, options.modes.size());
  } else {
    std::fprintf(stderr, "rwexport bench: %zu phases of %s each\n",
                 options.modes.size() * (options.null_sink ? 2 : 1),
                 absl::FormatDuration(options.load.duration).c_str());
  }
  absl::StatusOr<BenchReport> report = RunBench(options);
  // Kept when the bench failed (e.g. its server was killed), for inspection or a restart.
  for (const std::string& dir : *phase_dirs) {
    std::error_code ignored;
    if (report.ok()) std::filesystem::remove_all(dir, ignored);
  }
  if (!report.ok()) {
    if (absl::IsDeadlineExceeded(report.status())) {  // resuming gave up (--resume_timeout)
      Fail(absl::StrCat("DEADLINE_EXCEEDED: ", report.status().message()));
      return 5;  // kExitResumeGaveUp (lib/client/cli.h)
    }
    return Fail(absl::StrCat(absl::StatusCodeToString(report.status().code()), ": ",
                             report.status().message()));
  }
  std::printf("%s", absl::GetFlag(FLAGS_json) ? JsonText(BenchJson(*report)).c_str()
                                              : FormatBenchReport(*report, options).c_str());
  const std::string rss_csv = absl::GetFlag(FLAGS_rss_csv);
  if (!rss_csv.empty()) {
    const std::string text = FormatRssReadings(*report);
    std::FILE* f = std::fopen(rss_csv.c_str(), "w");
    bool written = f != nullptr && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (f != nullptr) written = std::fclose(f) == 0 && written;
    if (!written) {
      return Fail(absl::StrCat("--rss_csv: cannot write ", rss_csv, ": ", std::strerror(errno)));
    }
  }
  return 0;
}

}  // namespace rwexport
