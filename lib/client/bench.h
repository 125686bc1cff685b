// `rwexport bench`: how many samples per second one export takes, what each costs the server,
// and how that compares with a server that merely receives the stream.
//
// A measurement ("phase") runs one server in a child process (so its CPU time and peak
// memory are its own, apart from the load generator's), starts one export in it whose target
// is a NullReceiver in this process, streams realistic k6 samples into that export from N
// concurrent streams for a fixed time, stops the export, and reads the child's resource usage
// before and after. The same load is run against the null sink (server/null_sink.h), in
// self-describing and in compact stream mode, so every ratio comes from one run.
//
// The child is this program again (`command` below), which must start the server on
// 127.0.0.1:0 and then call ServeBenchChild. Everything stays on loopback.
//
// The load: k6's HTTP metrics (http_reqs, http_req_duration and its six phases,
// http_req_failed, data_sent, data_received) tagged method/name/status/url/
// expected_response/scenario for a few hundred endpoints, plus vus, iterations,
// iteration_duration, checks and a custom trend: a few thousand distinct series. Samples are
// drawn from a precomputed cycle, so generating them costs the load generator little.
//
// Functions here are reentrant; RunBench runs one phase at a time.
#ifndef RWEXPORT_LIB_CLIENT_BENCH_H_
#define RWEXPORT_LIB_CLIENT_BENCH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

enum class BenchMode {
  kSelfDescribing,  // every sample carries its metric and tags
  kCompact,         // series declared once per stream, samples as (ref, time, value)
};
const char* BenchModeName(BenchMode mode);  // "self", "compact"

enum class BenchServer {
  kRwexport,  // the real service (server/in_process_server.h)
  kNullSink,  // parses and drops (server/null_sink.h)
};
const char* BenchServerName(BenchServer server);  // "rwexport", "null_sink"

// One series of the generated load.
struct BenchSeries {
  std::string metric;
  std::vector<std::pair<std::string, std::string>> tags;
};

// The generated load: its series, and the custom metric it declares.
struct BenchWorkload {
  std::vector<BenchSeries> series;
  // Samples in the order they are sent (series index, value); cycled over.
  std::vector<std::pair<uint32_t, double>> cycle;
};

// A deterministic workload for `seed`: `endpoints` URLs (the distinct series grow with it:
// about 27 per endpoint).
BenchWorkload MakeBenchWorkload(int endpoints, uint64_t seed);

// The export configuration of the bench: the k6 defaults, per-endpoint duration and request
// series (keepTags name, method, status), http_req_failed, http_req_waiting, checks and the
// custom trend, to `remote_write_url`.
v1::StartExportRequest MakeBenchExportRequest(const std::string& remote_write_url,
                                              int resample_rate_s);

struct BenchLoadOptions {
  int streams = 4;
  absl::Duration duration = absl::Seconds(10);
  BenchMode mode = BenchMode::kSelfDescribing;
  size_t batch_size = 1000;
};

struct BenchLoadResult {
  uint64_t samples_sent = 0;
  // The server's counts, summed over the streams.
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  // From the first stream opening to the last one's response.
  absl::Duration elapsed;
};

// Streams `workload` into `export_id` at `address` from options.streams threads, each with its
// own channel (its own connection), as fast as the server takes it, for options.duration.
// Errors: a stream the server ended (its status).
absl::StatusOr<BenchLoadResult> RunBenchLoad(const std::string& address,
                                             const std::string& export_id,
                                             const BenchWorkload& workload,
                                             const BenchLoadOptions& options);

// CPU and memory of a process, as the child reports them.
struct ProcessUsage {
  double cpu_seconds = 0;    // user + system
  uint64_t peak_rss_kb = 0;  // VmHWM
  uint64_t rss_kb = 0;       // VmRSS
};

// This process's usage: getrusage(RUSAGE_SELF) and /proc/self/status.
ProcessUsage CurrentProcessUsage();

// The child side of a phase: tells the parent `port` on stdout, then answers each "usage"
// line on stdin with its usage, until stdin closes. Returns then (the caller stops its server).
absl::Status ServeBenchChild(int port);

struct BenchOptions {
  BenchLoadOptions load;  // `mode` is set per phase
  std::vector<BenchMode> modes = {BenchMode::kSelfDescribing, BenchMode::kCompact};
  bool null_sink = true;  // also measure the null sink
  int endpoints = 200;
  int resample_rate_s = 1;
  uint64_t seed = 1;
  // argv of the child process serving `server` (argv[0] is the program to run).
  std::function<std::vector<std::string>(BenchServer server)> command;
  // Called after each phase, for progress output.
  std::function<void(const std::string& line)> on_progress;
};

struct BenchPhase {
  BenchServer server;
  BenchMode mode;
  BenchLoadResult load;
  double samples_per_second = 0;  // accepted / elapsed
  // Of the server process, from before StartExport to after StopExport returned.
  double server_cpu_seconds = 0;
  double server_cpu_seconds_per_million = 0;
  uint64_t server_peak_rss_kb = 0;
  // rwexport only: the export's figures and what the receiver counted.
  uint64_t series = 0;
  uint64_t points_sent = 0;
  uint64_t points_dropped = 0;
  uint64_t points_received = 0;
  uint64_t requests_received = 0;
  // This process (load generator and receiver) during the load.
  double client_cpu_seconds = 0;
};

struct BenchReport {
  size_t distinct_series = 0;  // in the workload
  std::vector<BenchPhase> phases;
  // The phase for (server, mode), or nullptr.
  const BenchPhase* Find(BenchServer server, BenchMode mode) const;
};

// Runs every phase: for each mode, the null sink (if asked) then rwexport.
absl::StatusOr<BenchReport> RunBench(const BenchOptions& options);

// The report as text: one line per phase, then the ratios.
std::string FormatBenchReport(const BenchReport& report, const BenchOptions& options);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_BENCH_H_
