#include "lib/client/synthetic.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "lib/client/interruption.h"
#include "lib/client/sample_stream.h"

namespace rwexport {
namespace {

struct Endpoint {
  const char* name;
  const char* method;
  double median_ms;
  double failure_ratio;
};

constexpr Endpoint kEndpoints[] = {
    {"https://shop.test/", "GET", 40, 0.0},
    {"https://shop.test/api/products", "GET", 80, 0.01},
    {"https://shop.test/api/cart", "POST", 120, 0.03},
    {"https://shop.test/api/checkout", "POST", 250, 0.05},
};

using Tags = std::vector<std::pair<std::string, std::string>>;

}  // namespace

absl::StatusOr<SyntheticTotals> RunSyntheticLoad(v1::ExportService::StubInterface* stub,
                                                 const std::string& export_id,
                                                 const SyntheticOptions& options) {
  SyntheticTotals totals;
  SampleStream stream(stub, export_id, 2000);
  stream.Declare("checkout_step_duration", MetricType::kTrend, ValueKind::kTime);
  std::mt19937_64 rng(options.seed);
  std::lognormal_distribution<double> spread(0.0, 0.5);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);

  const Tags scenario = {{"scenario", "default"}};
  const absl::Time start = absl::Now();
  const absl::Duration tick = absl::Milliseconds(100);
  double owed_requests = 0;
  int last_progress = 0;
  for (absl::Time next = start; next < start + options.duration; next += tick) {
    if (WaitReadable(options.stop_fd, next - absl::Now())) break;
    const int64_t now_ns = absl::ToUnixNanos(absl::Now());
    stream.Add("vus", scenario, now_ns, options.vus);
    ++totals.samples;
    owed_requests += options.requests_per_second * absl::ToDoubleSeconds(tick);
    for (; owed_requests >= 1; owed_requests -= 1) {
      const Endpoint& e = kEndpoints[rng() % (sizeof(kEndpoints) / sizeof(kEndpoints[0]))];
      const bool failed = uniform(rng) < e.failure_ratio;
      const char* status = failed ? "503" : (e.method[0] == 'P' ? "201" : "200");
      const Tags tags = {{"expected_response", failed ? "false" : "true"},
                         {"method", e.method},
                         {"name", e.name},
                         {"proto", "HTTP/1.1"},
                         {"scenario", "default"},
                         {"status", status},
                         {"url", e.name}};
      const double duration = e.median_ms * spread(rng);
      const double sent = 200 + static_cast<double>(rng() % 300);
      const double received = failed ? 150 : 1000 + static_cast<double>(rng() % 4000);
      stream.Add("http_reqs", tags, now_ns, 1);
      stream.Add("http_req_duration", tags, now_ns, duration);
      stream.Add("http_req_failed", tags, now_ns, failed ? 1 : 0);
      stream.Add("data_sent", scenario, now_ns, sent);
      stream.Add("data_received", scenario, now_ns, received);
      stream.Add("checks", {{"check", "status is 2xx"}, {"scenario", "default"}}, now_ns,
                 failed ? 0 : 1);
      totals.samples += 6;
      ++totals.http_reqs;
      totals.http_reqs_failed += failed;
      ++totals.http_reqs_by_name[e.name];
      totals.data_sent += sent;
      totals.data_received += received;
      totals.max_duration_ms = std::max(totals.max_duration_ms, duration);
      // Every fourth request ends an iteration of the default function.
      if (totals.http_reqs % 4 == 0) {
        stream.Add("iterations", scenario, now_ns, 1);
        stream.Add("iteration_duration", scenario, now_ns, 1000 + duration * 4);
        stream.Add("checkout_step_duration", {{"step", "payment"}, {"scenario", "default"}}, now_ns,
                   duration / 2);
        totals.samples += 3;
        ++totals.iterations;
      }
    }
    absl::Status flushed = stream.Flush();
    if (!flushed.ok()) return flushed;
    const int elapsed = static_cast<int>(absl::ToInt64Seconds(absl::Now() - start));
    if (options.on_progress && elapsed > last_progress) {
      last_progress = elapsed;
      options.on_progress(elapsed);
    }
  }
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  if (!response.ok()) return response.status();
  totals.response = *std::move(response);
  return totals;
}

}  // namespace rwexport
