// For tests of the InfluxDB write API: a plain HTTP client (libcurl), and a stand-in for k6's
// InfluxDB v1 output (grafana/k6 internal/output/influxdb over influxdata/influxdb1-client)
// that writes the samples of a recorded k6 run the way k6 writes them live:
//   - first `POST /query?q=CREATE DATABASE <db>` (k6's Start());
//   - then one `POST /write?db=<db>&rp=&precision=ns&consistency=` per push interval (1 s) of
//     samples, the body one line per sample, '\n'-terminated;
//   - a line: measurement (commas and spaces escaped), the tags sorted by key with empty values
//     left out (keys and values: commas, equals signs, spaces escaped), the `tagsAsFields`
//     tags (default vu, iter, url) as string fields, the field `value` (Go's
//     strconv.FormatFloat(v, 'f', -1, 64)), fields sorted by key, and the time in ns.
// Test-only; reads the run through tests/testing/reference_aggregation (no lib/ code).
// Thread-compatible.
#ifndef RWEXPORT_TESTS_TESTING_INFLUX_WRITER_H_
#define RWEXPORT_TESTS_TESTING_INFLUX_WRITER_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/testing/reference_aggregation.h"

namespace rwexport {

struct HttpAnswer {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-cased
};

// One HTTP request; an error only when no answer came (connection refused, timeout).
absl::StatusOr<HttpAnswer> HttpCall(const std::string& method, const std::string& url,
                                    const std::vector<std::string>& headers = {},
                                    const std::string& body = "");

// One sample as k6's InfluxDB output writes it (without the '\n'), its time shifted by
// `shift_ns`.
std::string K6InfluxLine(const reference::RefSample& sample, int64_t shift_ns,
                         const std::vector<std::string>& tags_as_fields = {"vu", "iter", "url"});

struct K6InfluxWrite {
  std::vector<HttpAnswer> answers;  // CREATE DATABASE's first, then each write's
  size_t lines = 0;
};

// Writes `run` to `base_url` (http://host:port) into database `db` as k6 does, in batches of
// `push_interval` of sample time, with `headers` on every request (e.g. authorization).
absl::StatusOr<K6InfluxWrite> WriteRunAsK6(const std::string& base_url, const std::string& db,
                                           const reference::RefRun& run, int64_t shift_ns,
                                           const std::vector<std::string>& headers = {},
                                           absl::Duration push_interval = absl::Seconds(1));

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_INFLUX_WRITER_H_
