// `rwexport bench`: how many samples per second one export takes, what each costs the server,
// and how that compares with a server that merely receives the stream.
//
// A measurement ("phase") runs one server in a child process (lib/bench/child_process.h),
// starts one export in it whose target is a NullReceiver in this process, streams the workload
// (lib/bench/workload.h) into that export from N concurrent streams for a fixed time
// (lib/bench/load.h), stops the export, and reads the child's resource usage before and after,
// and its memory meanwhile (lib/bench/rss_sampler.h). The same load is run against the null
// sink (lib/bench/null_sink.h), in self-describing and in compact stream mode, so every ratio
// comes from one run (lib/bench/report.h prints them). With `exports` > 1 a phase starts that
// many exports and the streams share their time among them, for the fixed cost of an export.
//
// The child is this program again (`command` below), which must start the server on
// 127.0.0.1:0 and then call ServeBenchChild. Everything stays on loopback.
//
// RunBench runs one phase at a time.
#ifndef RWEXPORT_LIB_BENCH_BENCH_H_
#define RWEXPORT_LIB_BENCH_BENCH_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/bench/child_process.h"
#include "lib/bench/load.h"
#include "lib/bench/rss_sampler.h"
#include "lib/bench/workload.h"

namespace rwexport {

enum class BenchServer {
  kRwexport,  // the real service (server/server.h)
  kNullSink,  // parses and drops (lib/bench/null_sink.h)
};
const char* BenchServerName(BenchServer server);  // "rwexport", "null_sink"

struct BenchOptions {
  BenchLoadOptions load;  // `mode` is set per phase
  std::vector<BenchMode> modes = {BenchMode::kSelfDescribing, BenchMode::kCompact};
  bool null_sink = true;  // also measure the null sink
  int endpoints = 200;
  // Distinct series of the workload (BenchWorkloadShapeFor); 0: as `endpoints` makes them.
  size_t series = 0;
  // Exports started in each phase, each fed its share of the streams' time (RunBenchLoad).
  int exports = 1;
  // Non-zero: instead of the load phases, measure the fixed cost of an export per mode: this
  // many cycles of StartExport, one stream of `cycle_batches` batches, StopExport, one after
  // another on one connection, after one cycle of warm-up (RunBench's BenchCycles).
  int export_cycles = 0;
  size_t cycle_batches = 1;
  int resample_rate_s = 1;
  uint64_t seed = 1;
  // How often the server's RSS is read during the load.
  absl::Duration rss_interval = absl::Seconds(1);
  // Non-zero (rwexport phases): after the load the streams stay open and idle this long, then
  // the server's usage is read with them open (BenchPhase.server_streams_open) and again once
  // they ended, the export still open (server_streams_closed): the difference is what the
  // streams keep, apart from the export's series and windows (which are the same in both).
  absl::Duration hold = absl::ZeroDuration();
  // rwexport phases: before the measured export, one small export shaped like it (StartExport,
  // as many streams in the phase's mode for 200 ms on one endpoint's 39 series, StopExport), so
  // that the usage "before" holds what any export leaves behind (code paged in, gRPC's lazily
  // made state, the threads such a load wakes); the usage before it is BenchPhase.server_cold.
  bool warm_up = true;
  // argv of the child process serving `server` (argv[0] is the program to run).
  std::function<std::vector<std::string>(BenchServer server)> command;
  // Called after each phase, for progress output.
  std::function<void(const std::string& line)> on_progress;
};

struct BenchPhase {
  BenchServer server;
  BenchMode mode;
  int exports = 1;
  BenchLoadResult load;
  double samples_per_second = 0;  // accepted / elapsed
  // Of the server process, from before StartExport to after StopExport returned.
  double server_cpu_seconds = 0;
  double server_cpu_seconds_per_million = 0;
  uint64_t server_peak_rss_kb = 0;
  // The server's RSS read every options.rss_interval during the load (the first reading as it
  // starts), its summary, and the RSS after StopExport returned.
  std::vector<RssSample> rss;
  RssProfile rss_profile;
  RssProfile heap_profile;
  uint64_t server_rss_after_stop_kb = 0;
  uint64_t server_heap_after_stop_kb = 0;
  // The streams' declarations as the server counts them (ExportStatus.stream_retained_bytes of
  // the first export): the highest reading, and the last one taken while streams were open
  // (the last non-zero one).
  uint64_t stream_retained_max_bytes = 0;
  uint64_t stream_retained_last_bytes = 0;
  // Before the first StartExport of the phase (after the warm-up export, if any).
  uint64_t server_rss_before_kb = 0;
  uint64_t server_heap_before_kb = 0;
  // The server as it started, before the warm-up export (equal to server_before without one).
  ProcessUsage server_cold;
  // BenchOptions.hold: the server's usage with the streams open and idle after the load, and
  // after they ended (the export still open); the server's stream_retained_bytes at the first.
  bool held = false;
  ProcessUsage server_streams_open;
  ProcessUsage server_streams_closed;
  uint64_t stream_retained_held_bytes = 0;
  // The server's usage before the first StartExport and after the last StopExport returned
  // (its RssAnon / RssFile split and threads among them).
  ProcessUsage server_before;
  ProcessUsage server_after_stop;
  // rwexport only: the exports' figures (summed) and what the receiver counted.
  uint64_t series = 0;
  uint64_t points_sent = 0;
  uint64_t points_dropped = 0;
  uint64_t points_received = 0;
  uint64_t requests_received = 0;
  // Highest point timestamp the target acknowledged (0 if none).
  absl::Time highest_point_time = absl::UnixEpoch();
  // This process (load generator and receiver) during the load.
  double client_cpu_seconds = 0;
};

// The fixed cost of an export in one mode (BenchOptions.export_cycles).
struct BenchCycles {
  BenchMode mode;
  int cycles = 0;
  uint64_t samples = 0;  // accepted, over all cycles
  // Of the server process over the measured cycles (warm-up excluded).
  double server_cpu_seconds = 0;
  double server_cpu_ms_per_export = 0;
  double wall_ms_per_export = 0;
};

struct BenchReport {
  size_t distinct_series = 0;  // in the workload
  // The malloc of the server processes (they run this program): AllocatorDescription().
  std::string allocator;
  std::vector<BenchPhase> phases;
  std::vector<BenchCycles> cycles;  // with BenchOptions.export_cycles, instead of phases
  // The phase for (server, mode), or nullptr.
  const BenchPhase* Find(BenchServer server, BenchMode mode) const;
};

// Runs every phase: for each mode, the null sink (if asked) then rwexport.
absl::StatusOr<BenchReport> RunBench(const BenchOptions& options);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_BENCH_BENCH_H_
