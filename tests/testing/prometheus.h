// A real Prometheus server for integration tests: starts Debian's /usr/bin/prometheus (2.42)
// on 127.0.0.1 with its remote-write receiver on, a fresh TSDB in a temporary directory and no
// scrape jobs, and queries it back over its HTTP API.
//
// Starting Prometheus takes about a second: share one instance per test binary (Shared(), or
// a test suite's SetUpTestSuite) and give each test its own metric names.
//
// What the TSDB of a fresh server accepts (measured on 2.42 by prometheus_test.cc):
//  - The very first sample written may be of any age (a 2 hours old one is accepted): an empty
//    head takes its time range from the first sample it is given.
//  - From then on the head accepts only samples newer than (newest sample written so far - 1h)
//    (half the 2h block range); an older one is "out of bounds". A sample 1 minute old is
//    fine, a 2 hours old one is not once anything recent was written. Within a series, a
//    sample older than the series' last one is "out of order" (there is no out-of-order window
//    by default), and the same timestamp with another value is a "duplicate sample".
//  - The remote-write receiver appends a WriteRequest as one transaction: one rejected sample
//    makes it answer 400 and *none* of the request's samples are stored.
// So tests write samples near now, in increasing time order per series, and never write old
// samples to a server that has already taken recent ones.
//
// Thread-safety: a PrometheusServer may be queried from several threads at once (each call
// uses its own HTTP handle); Start() and the destructor are not concurrent with anything.
#ifndef RWEXPORT_TESTS_TESTING_PROMETHEUS_H_
#define RWEXPORT_TESTS_TESTING_PROMETHEUS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/model/series.h"
#include "prometheus/remote.pb.h"

namespace rwexport {

// A loopback port that was free a moment ago: bind 127.0.0.1:0, read it back, close.
absl::StatusOr<int> PickFreePort();

using PromLabels = std::map<std::string, std::string>;

// A native histogram as the query API returns it.
struct PromHistogram {
  struct Bucket {
    // 0: (lower, upper], 1: [lower, upper), 2: (lower, upper), 3: [lower, upper]
    int boundary_rule = 0;
    double lower = 0;
    double upper = 0;
    double count = 0;
  };
  double count = 0;
  double sum = 0;
  std::vector<Bucket> buckets;
};

// One sample of a query result. For an instant vector the timestamp is the evaluation time,
// not the sample's own: query a range selector (`metric[10m]`) to get the stored samples with
// their own timestamps (a matrix result is flattened into one QueryResult per sample).
struct QueryResult {
  PromLabels labels;  // includes __name__ where the result has it
  double value = 0;   // NaN for a histogram sample
  int64_t timestamp_ms = 0;
  std::optional<PromHistogram> histogram;
};

// One series of a range query, its points in time order.
struct RangeSeries {
  PromLabels labels;
  std::vector<Point> points;
  std::vector<std::pair<int64_t, PromHistogram>> histograms;  // (timestamp_ms, histogram)
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

class PrometheusServer {
 public:
  struct Options {
    std::string binary = "/usr/bin/prometheus";
    // Added to the command line, e.g. "--enable-feature=native-histograms",
    // "--web.config.file=/path/web.yml".
    std::vector<std::string> extra_flags;
    // The loopback port to listen on; 0: a free one. A test sets it to bring a target up on a
    // port that was closed until then.
    int port = 0;
    // Bound on the wait for /-/ready.
    absl::Duration startup_timeout = absl::Seconds(30);
    // How the harness itself (readiness, queries, RemoteWrite) talks to a server started with
    // a --web.config.file: "https" with the CA to trust, a client certificate when the server
    // requires one, basic-auth credentials when it asks for them.
    std::string scheme = "http";
    std::string ca_file;
    std::string client_cert_file;
    std::string client_key_file;
    std::string username;
    std::string password;
  };

  // Starts a server on a free loopback port and waits until it is ready. On failure the error
  // carries the last lines of Prometheus's log. Call it from a thread that outlives the
  // server (e.g. the main thread): the child is killed when the starting thread exits.
  static absl::StatusOr<std::unique_ptr<PrometheusServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<PrometheusServer>> Start() { return Start(Options()); }

  // One server with default options for the whole test binary, started on first use and
  // stopped at exit. Returns the same error to every caller if it could not start.
  static absl::StatusOr<PrometheusServer*> Shared();

  // Stops the server (SIGTERM, SIGKILL after 10 s) and removes its directory.
  ~PrometheusServer();

  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }
  // <scheme>://127.0.0.1:<port> (scheme http unless Options say otherwise)
  std::string base_url() const;
  // base_url() + /api/v1/write
  std::string remote_write_url() const;
  // The temporary directory holding the config, the TSDB and prometheus.log.
  const std::string& dir() const { return dir_; }

  // The last `lines` lines Prometheus logged.
  std::string LogTail(int lines = 20) const;

  // Instant query via /api/v1/query at `at`. Vector, scalar and matrix results are returned
  // as a flat list (matrix: every sample of every series). A PromQL error is
  // InvalidArgumentError with Prometheus's message.
  absl::StatusOr<std::vector<QueryResult>> Query(absl::string_view promql, absl::Time at);
  // Range query via /api/v1/query_range.
  absl::StatusOr<std::vector<RangeSeries>> QueryRange(absl::string_view promql, absl::Time start,
                                                      absl::Time end, absl::Duration step);
  // The label sets of the series matching `match` (a series selector), via /api/v1/series.
  absl::StatusOr<std::vector<PromLabels>> Series(absl::string_view match);

  // POSTs `request` as remote write 1.0 (snappy-compressed protobuf and its headers) to
  // remote_write_url(). An error Status only for transport failures: the HTTP answer (204
  // when stored, 400 with the reason when rejected) is returned as is.
  absl::StatusOr<HttpResponse> RemoteWrite(const prometheus::WriteRequest& request);

  // GET base_url() + path_and_query.
  absl::StatusOr<HttpResponse> Get(absl::string_view path_and_query);

 private:
  PrometheusServer(std::string dir, int port, pid_t pid, Options options)
      : dir_(std::move(dir)), port_(port), pid_(pid), options_(std::move(options)) {}
  void Stop();

  std::string dir_;
  int port_;
  pid_t pid_;
  Options options_;
};

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_PROMETHEUS_H_
