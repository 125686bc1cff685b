#include "lib/bench/workload.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace rwexport {
namespace {

using Tags = std::vector<std::pair<std::string, std::string>>;

}  // namespace

const char* BenchModeName(BenchMode mode) {
  return mode == BenchMode::kCompact ? "compact" : "self";
}

BenchWorkloadShape BenchWorkloadShapeFor(size_t series) {
  constexpr size_t kPerEndpoint = 27;  // 3 outcomes x 9 HTTP metrics
  constexpr size_t kOthers = 12;       // data_*, vus, iterations, iteration_duration, checks, steps
  BenchWorkloadShape shape;
  if (series < kPerEndpoint + kOthers) return shape;
  shape.endpoints = static_cast<int>((series - kOthers) / kPerEndpoint);
  shape.extra_steps =
      static_cast<int>(series - kOthers - kPerEndpoint * static_cast<size_t>(shape.endpoints));
  return shape;
}

BenchWorkload MakeBenchWorkload(int endpoints, uint64_t seed, int extra_steps) {
  static const char* const kResources[] = {"products", "cart", "checkout", "users", "search"};
  static const char* const kHttpMetrics[] = {
      "http_reqs",           "http_req_duration",        "http_req_blocked",
      "http_req_connecting", "http_req_tls_handshaking", "http_req_sending",
      "http_req_waiting",    "http_req_receiving",       "http_req_failed"};
  constexpr int kHttpMetricCount = sizeof(kHttpMetrics) / sizeof(kHttpMetrics[0]);
  constexpr int kOutcomes = 3;  // success, 404, 503
  BenchWorkload w;
  endpoints = std::max(endpoints, 1);
  // Series [0, endpoints * kOutcomes * kHttpMetricCount): endpoint e, outcome o, metric m at
  // ((e * kOutcomes) + o) * kHttpMetricCount + m.
  for (int e = 0; e < endpoints; ++e) {
    const bool post = e % 4 == 0;
    const std::string url = absl::StrCat("https://shop.test/api/v1/", kResources[e % 5], "/", e);
    for (int o = 0; o < kOutcomes; ++o) {
      const char* status = o == 0 ? (post ? "201" : "200") : (o == 1 ? "404" : "503");
      const Tags tags = {{"expected_response", o == 0 ? "true" : "false"},
                         {"method", post ? "POST" : "GET"},
                         {"name", url},
                         {"scenario", "checkout_flow"},
                         {"status", status},
                         {"url", url}};
      for (const char* metric : kHttpMetrics) w.series.push_back({metric, tags});
    }
  }
  const Tags scenario = {{"scenario", "checkout_flow"}};
  const uint32_t data_sent = w.series.size();
  w.series.push_back({"data_sent", scenario});
  const uint32_t data_received = w.series.size();
  w.series.push_back({"data_received", scenario});
  const uint32_t vus = w.series.size();
  w.series.push_back({"vus", {}});
  const uint32_t iterations = w.series.size();
  w.series.push_back({"iterations", scenario});
  const uint32_t iteration_duration = w.series.size();
  w.series.push_back({"iteration_duration", scenario});
  const uint32_t checks = w.series.size();
  w.series.push_back({"checks", {{"check", "status is 2xx"}, {"scenario", "checkout_flow"}}});
  w.series.push_back({"checks", {{"check", "body has items"}, {"scenario", "checkout_flow"}}});
  const uint32_t steps = w.series.size();
  for (const char* step : {"cart", "address", "shipping", "payment", "confirm"}) {
    w.series.push_back({kBenchCustomTrend, {{"scenario", "checkout_flow"}, {"step", step}}});
  }
  extra_steps = std::max(extra_steps, 0);
  for (int k = 0; k < extra_steps; ++k) {
    w.series.push_back(
        {kBenchCustomTrend, {{"scenario", "checkout_flow"}, {"step", absl::StrCat("step_", k)}}});
  }
  const uint32_t step_count = static_cast<uint32_t>(5 + extra_steps);

  // Rounds in which every endpoint is requested once, in a shuffled order; over 33 rounds each
  // endpoint answers 404 once and 503 once (6 % failures), so every series occurs in a cycle.
  constexpr int kRounds = 33;
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> latency(std::log(80.0), 0.6);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  auto add = [&](uint32_t series, double value) { w.cycle.emplace_back(series, value); };
  std::vector<int> order(static_cast<size_t>(endpoints));
  for (int e = 0; e < endpoints; ++e) order[static_cast<size_t>(e)] = e;
  uint64_t request = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::shuffle(order.begin(), order.end(), rng);
    for (int e : order) {
      const int phase = (round + e) % kRounds;
      const int outcome = phase == 0 ? 1 : (phase == kRounds / 2 ? 2 : 0);
      const uint32_t base = static_cast<uint32_t>((e * kOutcomes + outcome) * kHttpMetricCount);
      const double duration = latency(rng);
      const bool new_connection = request % 50 == 0;
      add(base + 0, 1);  // http_reqs
      add(base + 1, duration);
      add(base + 2, new_connection ? 3 + uniform(rng) * 10 : 0.002);  // blocked
      add(base + 3, new_connection ? 1 + uniform(rng) * 3 : 0);       // connecting
      add(base + 4, new_connection ? 2 + uniform(rng) * 5 : 0);       // tls_handshaking
      add(base + 5, 0.02 + uniform(rng) * 0.05);                      // sending
      add(base + 6, duration * 0.9);                                  // waiting
      add(base + 7, duration * 0.1);                                  // receiving
      add(base + 8, outcome == 0 ? 0 : 1);                            // http_req_failed
      add(data_sent, 200 + static_cast<double>(rng() % 300));
      add(data_received, outcome == 0 ? 1000 + static_cast<double>(rng() % 4000) : 150);
      if (request % 4 == 3) {
        add(iterations, 1);
        add(iteration_duration, 1000 + duration * 4);
        add(checks, outcome == 0 ? 1 : 0);
        add(checks + 1, uniform(rng) < 0.99 ? 1 : 0);
        add(steps + static_cast<uint32_t>(request / 4 % step_count), duration / 2);
      }
      if (request % 100 == 0) add(vus, 50 + static_cast<double>(rng() % 10));
      ++request;
    }
  }
  return w;
}

v1::StartExportRequest MakeBenchExportRequest(const std::string& remote_write_url,
                                              int resample_rate_s) {
  v1::StartExportRequest request;
  request.set_test_run_id(absl::StrCat("bench-", absl::ToUnixSeconds(absl::Now())));
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(remote_write_url);
  target->set_resample_rate(resample_rate_s);
  target->set_include_test_run_id(true);
  for (const char* metric : {"http_req_duration", "http_reqs"}) {
    v1::MetricEntry* by_endpoint = target->add_metrics();
    by_endpoint->set_source_metric(metric);
    by_endpoint->set_target_metric(absl::StrCat("k6_", metric, "_by_endpoint"));
    for (const char* tag : {"name", "method", "status"}) by_endpoint->add_keep_tags(tag);
  }
  target->add_metrics()->set_source_metric("http_req_failed");
  target->add_metrics()->set_source_metric("http_req_waiting");
  target->add_metrics()->set_source_metric("checks");
  v1::MetricEntry* steps = target->add_metrics();
  steps->set_source_metric(kBenchCustomTrend);
  steps->add_keep_tags("step");
  return request;
}

}  // namespace rwexport
