#include "lib/metrics/http_server.h"

#include <exception>
#include <utility>

#include "CivetServer.h"
#include "absl/strings/str_cat.h"
#include "lib/common/listen_check.h"
#include "prometheus/text_serializer.h"

namespace rwexport {
namespace {

void Respond(mg_connection* conn, int status, const char* reason, const char* content_type,
             const std::string& body) {
  const std::string head =
      absl::StrCat("HTTP/1.1 ", status, " ", reason, "\r\nContent-Type: ", content_type,
                   "\r\nContent-Length: ", body.size(),
                   "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n");
  mg_write(conn, head.data(), head.size());
  mg_write(conn, body.data(), body.size());
}

}  // namespace

// One handler object per path; `kind` picks the answer.
class MetricsHttpServer::Handler : public CivetHandler {
 public:
  enum class Kind { kMetrics, kHealthy, kReady, kPage };
  Handler(const Handlers* handlers, Kind kind) : handlers_(handlers), kind_(kind) {}

  bool handleGet(CivetServer* server, mg_connection* conn) override {
    const mg_request_info* request = mg_get_request_info(conn);
    switch (kind_) {
      case Kind::kMetrics: {
        std::vector<prometheus::MetricFamily> families;
        for (const auto& collectable : handlers_->collectables) {
          std::vector<prometheus::MetricFamily> more = collectable->Collect();
          families.insert(families.end(), std::make_move_iterator(more.begin()),
                          std::make_move_iterator(more.end()));
        }
        Respond(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                prometheus::TextSerializer().Serialize(families));
        return true;
      }
      case Kind::kHealthy:
        Respond(conn, 200, "OK", "text/plain; charset=utf-8", "rwexport is Healthy.\n");
        return true;
      case Kind::kReady:
        if (handlers_->ready && handlers_->ready()) {
          Respond(conn, 200, "OK", "text/plain; charset=utf-8", "rwexport is Ready.\n");
        } else {
          Respond(conn, 503, "Service Unavailable", "text/plain; charset=utf-8",
                  "rwexport is not ready.\n");
        }
        return true;
      case Kind::kPage:
        // "/" also matches every path no other handler takes.
        if (request->local_uri == nullptr || std::string(request->local_uri) != "/") {
          Respond(conn, 404, "Not Found", "text/plain; charset=utf-8", "404 page not found\n");
        } else {
          Respond(conn, 200, "OK", "text/html; charset=utf-8",
                  handlers_->page ? handlers_->page() : std::string());
        }
        return true;
    }
    return false;
  }

 private:
  const Handlers* const handlers_;
  const Kind kind_;
};

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, Handlers handlers) {
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->handlers_ = std::move(handlers);
  try {  // civetweb's C++ wrapper reports a busy or malformed address by throwing
    server->server_ = std::make_unique<CivetServer>(
        std::vector<std::string>{"listening_ports", listen, "num_threads", "2"});
  } catch (const std::exception& e) {
    // civetweb's message does not say why ("possible problem binding to port"): ask the system.
    absl::Status cause = CheckCanListen(listen);
    return absl::UnavailableError(absl::StrCat(
        "--metrics_listen=", listen,
        ": cannot listen: ", cause.ok() ? std::string(e.what()) : std::string(cause.message())));
  }
  const std::pair<const char*, Handler::Kind> paths[] = {
      {"/metrics", Handler::Kind::kMetrics},
      {"/-/healthy", Handler::Kind::kHealthy},
      {"/-/ready", Handler::Kind::kReady},
      {"/", Handler::Kind::kPage},
  };
  for (const auto& [path, kind] : paths) {
    server->handler_objects_.push_back(std::make_unique<Handler>(&server->handlers_, kind));
    server->server_->addHandler(path, server->handler_objects_.back().get());
  }
  const std::vector<int> ports = server->server_->getListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("--metrics_listen=", listen, ": no port"));
  }
  server->port_ = ports.front();
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (server_ != nullptr) server_->close();  // before the handlers go
}

}  // namespace rwexport
