// rwexport's own metrics, in Prometheus text format on an HTTP endpoint (--metrics_listen).
//
// Names follow Prometheus's own remote-write family (prometheus_remote_storage_*): a
// `rwexport_remote_storage_*` series per export and target (labels export_id, test_run_id,
// url — the URL with credentials redacted), plus process totals that count every export,
// running or stopped, so they never go backwards. Values are read from the export registry at
// scrape time: what a scrape shows is what GetExport and StopExport report. Thread-safe.
#ifndef RWEXPORT_LIB_METRICS_SELF_METRICS_H_
#define RWEXPORT_LIB_METRICS_SELF_METRICS_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/export/export.h"
#include "lib/metrics/http_server.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace rwexport {

class SelfMetricsCollector : public prometheus::Collectable {
 public:
  // `registry` must outlive the collector.
  explicit SelfMetricsCollector(const ExportRegistry* registry);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const ExportRegistry* const registry_;
};

// Serves, on `listen` ("host:port"; port 0 picks one): /metrics (these figures, process_* and
// rwexport_build_info), /-/healthy, /-/ready (after SetReady(true)) and the status page at /
// (lib/metrics/http_server.h, lib/metrics/status_page.h).
class SelfMetricsServer {
 public:
  static absl::StatusOr<std::unique_ptr<SelfMetricsServer>> Start(const std::string& listen,
                                                                  const ExportRegistry* registry);
  int port() const { return http_->port(); }
  // Ready means accepting exports: true once the gRPC server is serving, false from shutdown.
  void SetReady(bool ready) { ready_.store(ready); }

 private:
  SelfMetricsServer() = default;
  std::atomic<bool> ready_{false};
  std::unique_ptr<MetricsHttpServer> http_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_METRICS_SELF_METRICS_H_
