// The process's own figures, named as Prometheus's client libraries name them (process_*),
// read from /proc/self at scrape time, and rwexport_build_info{version,revision,build_date} = 1.
// Thread-safe.
#ifndef RWEXPORT_LIB_METRICS_PROCESS_METRICS_H_
#define RWEXPORT_LIB_METRICS_PROCESS_METRICS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace rwexport {

struct ProcessFigures {
  double cpu_seconds = 0;     // user + system
  double resident_bytes = 0;  // RSS
  double virtual_bytes = 0;
  double open_fds = 0;
  double max_fds = 0;             // the soft RLIMIT_NOFILE
  double start_time_seconds = 0;  // since the epoch
};

// Reads /proc/self/stat, /proc/stat and /proc/self/fd. UNAVAILABLE if /proc cannot be read.
absl::StatusOr<ProcessFigures> ReadProcessFigures();

class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_METRICS_PROCESS_METRICS_H_
