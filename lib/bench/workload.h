// The load of `rwexport bench`: k6's HTTP metrics (http_reqs, http_req_duration and its six
// phases, http_req_failed, data_sent, data_received) tagged method/name/status/url/
// expected_response/scenario for a few hundred endpoints, plus vus, iterations,
// iteration_duration, checks and a custom trend: a few thousand distinct series. Samples are
// drawn from a precomputed cycle, so generating them costs the load generator little.
// Functions here are reentrant.
#ifndef RWEXPORT_LIB_BENCH_WORKLOAD_H_
#define RWEXPORT_LIB_BENCH_WORKLOAD_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "rwexport/v1/export.pb.h"

namespace rwexport {

// The custom trend the workload declares (a checkout step's duration).
inline constexpr char kBenchCustomTrend[] = "checkout_step_duration";

enum class BenchMode {
  kSelfDescribing,  // every sample carries its metric and tags
  kCompact,         // series declared once per stream, samples as (ref, time, value)
};
const char* BenchModeName(BenchMode mode);  // "self", "compact"

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

// A deterministic workload for `seed`: `endpoints` URLs (27 series each) plus 12 series not
// per endpoint, of which 5 + `extra_steps` are steps of the custom trend.
BenchWorkload MakeBenchWorkload(int endpoints, uint64_t seed, int extra_steps = 0);

// The endpoints and extra steps of MakeBenchWorkload for exactly `series` distinct series
// (at least 39: one endpoint and the 12 others; fewer give 39).
struct BenchWorkloadShape {
  int endpoints = 1;
  int extra_steps = 0;
};
BenchWorkloadShape BenchWorkloadShapeFor(size_t series);

// The export configuration of the bench: the k6 defaults, per-endpoint duration and request
// series (keepTags name, method, status), http_req_failed, http_req_waiting, checks and the
// custom trend, to `remote_write_url`.
v1::StartExportRequest MakeBenchExportRequest(const std::string& remote_write_url,
                                              int resample_rate_s);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_BENCH_WORKLOAD_H_
