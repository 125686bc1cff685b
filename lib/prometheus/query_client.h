// A minimal client for Prometheus's HTTP query API (/api/v1/query), used to read back what
// was exported (`rwexport demo`, integration tests). Blocking; thread-compatible.
#ifndef RWEXPORT_LIB_PROMETHEUS_QUERY_CLIENT_H_
#define RWEXPORT_LIB_PROMETHEUS_QUERY_CLIENT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rwexport {

struct InstantSample {
  std::map<std::string, std::string> labels;  // __name__ included when Prometheus returns it
  double value = 0;
  absl::Time timestamp;
};

class QueryClient {
 public:
  // `base_url`: e.g. "http://127.0.0.1:9090".
  explicit QueryClient(std::string base_url, absl::Duration timeout = absl::Seconds(10));

  // Instant query at `at` (an instant vector or scalar result). Errors: transport, HTTP
  // status, or Prometheus's own error message.
  absl::StatusOr<std::vector<InstantSample>> Query(absl::string_view promql, absl::Time at) const;

 private:
  std::string base_url_;
  absl::Duration timeout_;
};

// Parses the JSON body of an /api/v1/query answer.
absl::StatusOr<std::vector<InstantSample>> ParseQueryResponse(absl::string_view body);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_PROMETHEUS_QUERY_CLIENT_H_
