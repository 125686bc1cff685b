// The InfluxDB 1.x HTTP write API, so a stock k6 streams its samples live:
//   k6 run --out influxdb=http://HOST:PORT/<test_run_id> script.js
//
// Served by libmicrohttpd (Debian's libmicrohttpd12) on its own port (--influx_listen):
//   POST /write?db=DB&precision=P   line protocol (lib/ingest/line_batch.h); `Content-Encoding:
//                                   gzip` accepted; rp, consistency, u ignored. 204 when every
//                                   line became an accepted sample; 400 partial write naming
//                                   the first bad line (good lines are kept); 404 unknown db;
//                                   413 body over max_body_bytes; 503 + Retry-After overloaded.
//   GET|POST /query?q=...           CREATE DATABASE (200, nothing to do: a db is an export) and
//                                   SHOW DATABASES (the running exports' test run ids).
//   GET|HEAD /ping                  204 with X-Influxdb-Version.
// Errors carry InfluxDB's JSON body {"error":"..."} and X-Influxdb-Error header.
//
// `db` is the test run id of a running export, or its export id. With an auto-export
// configuration, a write to an unknown db starts an export for that test run; such an export
// is stopped (flushed, delivered, figures logged) after `idle_stop` without writes.
//
// Samples go through StreamIngester as gRPC self-describing batches do. A request is answered
// once its samples are applied (so StopExport after the answer counts them); its connection is
// suspended meanwhile, never an HTTP thread. Beyond max_applying requests being applied, or
// max_pending_bytes of bodies held, requests are refused with 503 and Retry-After before any
// of their samples are accepted: what was accepted is never dropped.
//
// Thread-safe.
#ifndef RWEXPORT_SERVER_INFLUX_ENDPOINT_H_
#define RWEXPORT_SERVER_INFLUX_ENDPOINT_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/common/mutex.h"
#include "lib/export/export.h"
#include "rwexport/v1/export.pb.h"
#include "server/security.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace rwexport {

struct DecodedBatch;
class LineBatchBuilder;
namespace influx_http {
struct HttpError;
}  // namespace influx_http

struct InfluxEndpointOptions {
  // host:port; port 0 picks a free one.
  std::string listen = "127.0.0.1:8086";
  // Non-empty: writes and queries must carry it (Authorization Bearer or Token, basic-auth
  // password, or the p= parameter).
  std::string auth_token;
  // Set: a write to an unknown db starts an export with these targets (test_run_id = db).
  std::optional<v1::StartExportRequest> auto_export;
  // Auto-started exports are stopped after this long without writes.
  absl::Duration idle_stop = absl::Seconds(30);
  // InfluxDB's default max-body-size (after gzip decompression).
  size_t max_body_bytes = 25000000;
  size_t max_line_bytes = 64 << 10;
  // Overload bounds (503 beyond).
  size_t max_pending_bytes = size_t{256} << 20;
  int max_applying = 64;
  // HTTP threads.
  int threads = 2;
};

class InfluxEndpoint {
 public:
  // Listens and serves. UNAVAILABLE naming the address when it cannot listen (e.g. in use).
  // `registry` must outlive the endpoint.
  static absl::StatusOr<std::unique_ptr<InfluxEndpoint>> Start(ExportRegistry* registry,
                                                               InfluxEndpointOptions options);
  // Stops accepting, waits for the requests being applied, stops the HTTP server; exports it
  // auto-started and not yet idle-stopped are left to the registry.
  ~InfluxEndpoint();
  InfluxEndpoint(const InfluxEndpoint&) = delete;
  InfluxEndpoint& operator=(const InfluxEndpoint&) = delete;

  int port() const { return port_; }

  // The InfluxDB version the endpoint reports (X-Influxdb-Version).
  static constexpr const char* kVersion = "1.8.10";

 private:
  struct Request;
  struct Db;
  struct Handed;

  InfluxEndpoint(ExportRegistry* registry, InfluxEndpointOptions options);

  friend struct MhdCallbacks;  // libmicrohttpd's callbacks, in the .cc

  int Handle(MHD_Connection* connection, const char* url, const char* method,
             const char* upload_data, size_t* upload_data_size, void** con_cls);
  // The first call of a request: route, auth, size; answers at once or returns nullptr.
  int Begin(MHD_Connection* connection, const std::string& url, const std::string& method,
            void** con_cls);
  // POST /write: parses the body, hands its samples to the db's export, answers once applied.
  int Write(MHD_Connection* connection, Request* request);
  // The steps of Write. BeginApplying counts a write in applying_ (503 when stopping or beyond
  // max_applying); EndApplying uncounts it.
  std::optional<influx_http::HttpError> BeginApplying();
  void EndApplying();
  // Finds (or auto-starts) the db and hands `batch` to one of its ingesters, into `handed`.
  std::optional<influx_http::HttpError> Hand(const std::string& db_name, const DecodedBatch& batch,
                                             MHD_Connection* connection, Request* request,
                                             Handed* handed);
  // Run once the batch is applied: resumes the connection if suspended, ends applying.
  std::function<void()> Applied(MHD_Connection* connection, Request* request,
                                std::shared_ptr<Db> db);
  // With a write-ahead log (--data_dir): writes the batch to it; the answer waits until it is
  // durable, and is 507 (disk full) or 503 (I/O error) if it cannot be. Counted in applying_
  // until then.
  void Journal(MHD_Connection* connection, Request* request, const std::string& export_id,
               uint64_t sequence, const DecodedBatch& batch);
  // Returns the ingester, frees the body, answers (204 or partial write) or suspends until
  // the samples are applied.
  int Answer(MHD_Connection* connection, Request* request, const LineBatchBuilder& lines,
             Handed handed);
  int Query(MHD_Connection* connection, Request* request);
  // Authentication of `connection` (OK when no token is set).
  bool Authorized(MHD_Connection* connection, bool* sent_credentials) const;
  // The db's state: found by test run id or export id, or auto-started. NotFound otherwise.
  absl::StatusOr<std::shared_ptr<Db>> FindDb(const std::string& db);
  void IdleLoop();
  void StopIdle(std::shared_ptr<Db> db);

  ExportRegistry* const registry_;
  const InfluxEndpointOptions options_;
  const TokenAuthenticator auth_;
  MHD_Daemon* daemon_ = nullptr;
  int port_ = 0;
  std::atomic<size_t> pending_bytes_{0};

  Mutex mu_;
  CondVar cv_;
  absl::flat_hash_map<std::string, std::shared_ptr<Db>> dbs_ ABSL_GUARDED_BY(mu_);
  int applying_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> stoppers_ ABSL_GUARDED_BY(mu_);
  // Serializes auto-starts, so two first writes of one test run start one export.
  Mutex start_mu_;
  std::thread idle_thread_;
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_INFLUX_ENDPOINT_H_
