// The HTTP listener of --metrics_listen (civetweb, the server prometheus-cpp's Exposer uses):
// GET /metrics (Prometheus text format from the collectables), /-/healthy (200 while the
// process serves), /-/ready (200 when `ready` says so, 503 otherwise; Prometheus's own
// endpoints and answers) and / (`page`, HTML). Any other path is 404. Handlers run on the
// listener's threads; the callbacks must be thread-safe and outlive the server.
#ifndef RWEXPORT_LIB_METRICS_HTTP_SERVER_H_
#define RWEXPORT_LIB_METRICS_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"

class CivetServer;

namespace rwexport {

class MetricsHttpServer {
 public:
  struct Handlers {
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
    std::function<bool()> ready;
    std::function<std::string()> page;
  };
  // Listens on `listen` ("host:port"; port 0 picks one). UNAVAILABLE when it cannot.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& listen,
                                                                  Handlers handlers);
  // Stops listening; requests in progress finish first.
  ~MetricsHttpServer();

  int port() const { return port_; }

 private:
  class Handler;
  MetricsHttpServer() = default;

  Handlers handlers_;
  std::vector<std::unique_ptr<Handler>> handler_objects_;
  std::unique_ptr<CivetServer> server_;
  int port_ = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_METRICS_HTTP_SERVER_H_
