// An independent, deliberately naive re-computation of what rwexport must export for a recorded
// k6 run, for fidelity tests. It reads the raw k6 result file itself (JSON `--out json` or CSV
// `--out csv`, without lib/k6), keeps every sample in memory, and computes each window's value
// from first principles (sorting for percentiles, k6's rule), sharing no code with
// lib/aggregate, lib/k6, lib/config or lib/model. It follows the semantics documented in
// lib/aggregate/aggregator.h and README.md for an export whose windows all close at StopExport:
//
//   - a point's window is w = floor(ts_ns / R_ns) on the shifted timestamp, its timestamp
//     (w + 1) * R in milliseconds;
//   - counter -> `<base>_total`, the cumulative total at each window's end;
//   - gauge   -> `<base>`, the value of the sample with the latest timestamp in the window (on a
//     tie, the later one in the file);
//   - rate    -> `<base>_rate`, non-zero samples / samples in the window;
//   - trend   -> `<base>_{min,max,avg,med,p90,p95,p99,count}` over the window's samples;
//   - counters, gauges and rates are also emitted, repeating the last value, for the windows
//     without samples from the series' first window through the export's last window (that of
//     the run's newest sample), at most 60 windows past a window with samples; trends only
//     for windows with samples;
//   - time values (milliseconds) are divided by 1000 (a trend's count is not);
//   - labels: the kept tags with a non-empty value (tag name = label name), `test_run_id` when
//     asked, and `__name__`.
//
// Test-only. Every function is reentrant.
#ifndef RWEXPORT_TESTS_TESTING_REFERENCE_AGGREGATION_H_
#define RWEXPORT_TESTS_TESTING_REFERENCE_AGGREGATION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rwexport {
namespace reference {

enum class RefType { kCounter, kGauge, kRate, kTrend };

struct RefMetric {
  RefType type = RefType::kCounter;
  bool is_time = false;  // values in milliseconds, exported in seconds

  bool operator==(const RefMetric& o) const { return type == o.type && is_time == o.is_time; }
};

// The type of one of k6's built-in metrics (as documented by k6), or nullopt.
std::optional<RefMetric> K6BuiltinMetric(absl::string_view name);

// Tags in file order; a JSON tag with an empty value is kept, a CSV empty cell is not a tag.
using RefTags = std::vector<std::pair<std::string, std::string>>;

struct RefSample {
  std::string metric;
  RefTags tags;
  int64_t ts_ns = 0;  // as in the file
  double value = 0;
};

struct RefRun {
  // `Metric` lines of a JSON file (none in CSV).
  std::map<std::string, RefMetric> declared;
  std::vector<RefSample> samples;  // in file order

  // The highest sample timestamp; INT64_MIN without samples.
  int64_t LastTimestampNs() const;
};

// Reads a `k6 run --out json=...` file. Errors: unreadable file, a line that is not a k6
// Metric or Point object (the message names the line).
absl::StatusOr<RefRun> ReadK6JsonFile(const std::string& path);

// Reads a `k6 run --out csv=...` file with its header row (timestamps in Unix seconds, with
// or without a fraction). `extra_tags` (k=v&k=v) become tags; `metadata` is dropped. Errors:
// unreadable file, quoted cells (not supported), a malformed row (the message names the line).
absl::StatusOr<RefRun> ReadK6CsvFile(const std::string& path);

// One exported metric entry.
struct RefOutput {
  std::string source_metric;
  // The entry's tag selector; empty: every sample of source_metric.
  std::function<bool(const RefTags&)> selects;
  std::string base_name;               // "k6_<metric>" or the targetMetric
  std::vector<std::string> keep_tags;  // each must already be a valid label name
};

struct RefConfig {
  int resample_rate_s = 3;
  std::string test_run_id;  // non-empty: every series gets label test_run_id
  std::vector<RefOutput> outputs;
  int64_t shift_ns = 0;  // added to every sample timestamp
};

using RefLabels = std::map<std::string, std::string>;  // __name__ included

enum class RefStat { kValue, kMin, kMax, kAvg, kMed, kP90, kP95, kP99, kCount };

struct RefPoint {
  double value = 0;
  RefStat stat = RefStat::kValue;
  // Samples in the point's window (0 for a repeated counter/gauge/rate value).
  uint64_t window_samples = 0;
};

// Points keyed by (series labels, timestamp in ms).
using RefPointKey = std::pair<RefLabels, int64_t>;
using RefPoints = std::map<RefPointKey, RefPoint>;

struct RefExport {
  RefPoints points;
  // Distinct (output, kept label values) combinations that received a sample.
  size_t aggregation_series = 0;
  // Per exported series (labels), the index of its last window with samples and its type.
  struct SeriesEnd {
    RefType type;
    int64_t last_window;
  };
  std::map<RefLabels, SeriesEnd> series_ends;
};

// The points rwexport must export for `run` under `config`. A sample whose metric is neither
// declared in the file nor built into k6 is an error; samples of metrics no output takes are
// ignored.
absl::StatusOr<RefExport> ComputeExpectedExport(const RefRun& run, const RefConfig& config);

// k6's percentile: sort, then interpolate linearly at index p * (n - 1). `sorted` must be
// sorted ascending and non-empty; p in [0, 1].
double K6Percentile(const std::vector<double>& sorted, double p);

// "name{a=\"b\",...}" for messages.
std::string FormatLabels(const RefLabels& labels);

}  // namespace reference
}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_REFERENCE_AGGREGATION_H_
