// The server's memory during a `rwexport bench` phase: read every interval on a thread of its
// own, and summarised (at 10/25/50/75/100 % of the load, growth after the warm-up, ...).
#ifndef RWEXPORT_LIB_BENCH_RSS_SAMPLER_H_
#define RWEXPORT_LIB_BENCH_RSS_SAMPLER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "lib/bench/child_process.h"
#include "lib/common/mutex.h"

namespace rwexport {

// One reading of the server's memory during the load.
struct RssSample {
  absl::Duration at;  // since the load started
  uint64_t rss_kb = 0;
  uint64_t heap_in_use_kb = 0;  // as the server reports it; 0 if it did not answer
  // Points the export's targets hold undelivered (GetExport); 0 for the null sink.
  uint64_t points_pending = 0;
  // Bytes the export's open streams keep for their declarations (GetExport's
  // stream_retained_bytes); 0 for the null sink.
  uint64_t stream_retained_bytes = 0;
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

// Reads a child's RSS (from /proc) and heap in use (its answer) every `interval` on a thread of
// its own, from construction until Stop(); the child must not be used meanwhile.
// Thread-compatible (Stop from the constructing thread).
class RssSampler {
 public:
  // `export_figures` (may be null) fills a reading's points_pending and stream_retained_bytes.
  RssSampler(ChildProcess* child, absl::Duration interval,
             std::function<void(RssSample*)> export_figures);
  ~RssSampler() { Stop(); }
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;

  // Stops sampling (after one last reading) and returns the readings, in time order.
  std::vector<RssSample> Stop();

 private:
  // One reading; none for a process that has exited (the phase reports its own error then).
  void Read(absl::Time start);
  void Run();

  ChildProcess* const child_;
  const absl::Duration interval_;
  const std::function<void(RssSample*)> export_figures_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<RssSample> samples_;  // the thread's until joined
  std::thread thread_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_BENCH_RSS_SAMPLER_H_
