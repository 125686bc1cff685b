// A synthetic k6 load test, streamed live into an export: virtual users making HTTP requests
// to a few endpoints, with the samples k6 would emit for them (http_reqs, http_req_duration,
// http_req_failed, data_sent, data_received, iterations, iteration_duration, vus, checks) and
// one custom trend. Deterministic for a seed. Used by `rwexport demo`.
#ifndef RWEXPORT_LIB_CLIENT_SYNTHETIC_H_
#define RWEXPORT_LIB_CLIENT_SYNTHETIC_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

struct SyntheticOptions {
  int vus = 10;
  absl::Duration duration = absl::Seconds(30);
  // HTTP requests per second over all VUs.
  double requests_per_second = 100;
  uint64_t seed = 1;
  // Called about once a second with the seconds elapsed.
  std::function<void(int seconds)> on_progress;
  // Once readable (Interruption::fd()), the load test ends early, its stream finished
  // normally. -1: none.
  int stop_fd = -1;
};

// What the load test did, computed while generating it: the truth to compare Prometheus with.
struct SyntheticTotals {
  uint64_t samples = 0;
  uint64_t http_reqs = 0;
  uint64_t http_reqs_failed = 0;
  uint64_t iterations = 0;
  double data_sent = 0;
  double data_received = 0;
  // http_reqs per endpoint name.
  std::map<std::string, uint64_t> http_reqs_by_name;
  double max_duration_ms = 0;
  v1::StreamSamplesResponse response;
};

// Streams the load test into `export_id` in real time (bounded by options.duration, or cut
// short by options.stop_fd).
absl::StatusOr<SyntheticTotals> RunSyntheticLoad(v1::ExportService::StubInterface* stub,
                                                 const std::string& export_id,
                                                 const SyntheticOptions& options);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_SYNTHETIC_H_
