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
// Event time: by default samples are stamped with the wall clock. With an event span, a long
// test is replayed compressed: the stamps cover [end - span, end] (end: when the phase is due
// to finish) at span / duration times wall speed, so a 1-hour test fits in a few minutes and
// no stamp is ever ahead of the wall clock. Meanwhile the server's RSS is sampled from
// /proc/<pid>/status, to show whether memory stays flat over the test.
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
  // Zero: samples carry the wall-clock time. Otherwise the event time replayed over
  // `duration` (see BenchEventTime); must be at least `duration`.
  absl::Duration event_span = absl::ZeroDuration();
};

// The event time of a sample sent at wall time `now` of a load that started at `start` and
// lasts `duration`, replaying `event_span` (>= duration): end - event_span + (now - start) *
// event_span / duration, where end = start + duration. It runs from end - event_span to end
// and is never later than `now` (for start <= now <= end).
absl::Time BenchEventTime(absl::Time start, absl::Duration duration, absl::Duration event_span,
                          absl::Time now);

struct BenchLoadResult {
  uint64_t samples_sent = 0;
  // The server's counts, summed over the streams.
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  // From the first stream opening to the last one's response.
  absl::Duration elapsed;
  // Timestamps of the first and the last sample sent (any stream); unset if none was sent.
  absl::Time first_sample_time = absl::InfinitePast();
  absl::Time last_sample_time = absl::InfinitePast();
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
  // Bytes handed out by malloc and not freed (mallinfo2: uordblks + hblkhd), in KiB: the part
  // of the RSS that is live heap, as opposed to memory the allocator keeps for reuse.
  uint64_t heap_in_use_kb = 0;
};

// This process's usage: getrusage(RUSAGE_SELF), /proc/self/status and mallinfo2.
ProcessUsage CurrentProcessUsage();

// Resident memory (VmRSS) of process `pid`, from /proc/<pid>/status.
// Errors: the file cannot be read or has no VmRSS line (e.g. the process has exited).
absl::StatusOr<uint64_t> ProcessRssKb(int pid);

// One reading of the server's memory during the load.
struct RssSample {
  absl::Duration at;  // since the load started
  uint64_t rss_kb = 0;
  uint64_t heap_in_use_kb = 0;  // as the server reports it; 0 if it did not answer
  // Points the export's targets hold undelivered (GetExport); 0 for the null sink.
  uint64_t points_pending = 0;
};

// The RSS (or heap) readings of a phase, summarised. A figure "at p %" is the last reading
// taken at or before p % of the load's duration (the first reading if none was), i.e. of the
// event span when it is compressed.
struct RssProfile {
  size_t samples = 0;
  uint64_t at_10_kb = 0;
  uint64_t at_25_kb = 0;
  uint64_t at_50_kb = 0;
  uint64_t at_75_kb = 0;
  uint64_t at_100_kb = 0;
  uint64_t max_kb = 0;
  // (at_100 - at_25) / at_25 * 100: growth after the warm-up (the first quarter, by the end of
  // which every series exists), the "flat within 10 %" figure. 0 without readings.
  double growth_percent = 0;
  // The readings after 25 % and up to 100 % (after the warm-up): lowest and highest.
  uint64_t after_warmup_min_kb = 0;
  uint64_t after_warmup_max_kb = 0;
  // Means of the readings in (25 %, 50 %] and in (75 %, 100 %], and the growth from the one to
  // the other in percent: a trend figure that single readings' noise does not swing.
  uint64_t second_quarter_mean_kb = 0;
  uint64_t last_quarter_mean_kb = 0;
  double quarter_mean_growth_percent = 0;
};

// Summarises `samples` (in time order) of a load lasting `duration`: their rss_kb, or their
// heap_in_use_kb if `heap`.
RssProfile SummarizeRss(const std::vector<RssSample>& samples, absl::Duration duration,
                        bool heap = false);

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
  // How often the server's RSS is read during the load.
  absl::Duration rss_interval = absl::Seconds(1);
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
  // The server's RSS read every options.rss_interval during the load (the first reading as it
  // starts), its summary, and the RSS after StopExport returned.
  std::vector<RssSample> rss;
  RssProfile rss_profile;
  RssProfile heap_profile;
  uint64_t server_rss_after_stop_kb = 0;
  uint64_t server_heap_after_stop_kb = 0;
  // rwexport only: the export's figures and what the receiver counted.
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

struct BenchReport {
  size_t distinct_series = 0;  // in the workload
  std::vector<BenchPhase> phases;
  // The phase for (server, mode), or nullptr.
  const BenchPhase* Find(BenchServer server, BenchMode mode) const;
};

// Runs every phase: for each mode, the null sink (if asked) then rwexport.
absl::StatusOr<BenchReport> RunBench(const BenchOptions& options);

// The report as text: one line per phase, the memory during each phase, then the ratios.
std::string FormatBenchReport(const BenchReport& report, const BenchOptions& options);

// Every memory reading of every phase as CSV:
// server,mode,seconds,rss_kb,heap_in_use_kb,points_pending.
std::string FormatRssReadings(const BenchReport& report);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_BENCH_H_
