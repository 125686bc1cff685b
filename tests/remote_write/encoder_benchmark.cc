// Encode + snappy throughput, in points per second, for request shapes seen in practice:
// many series with one point (one window flush) and fewer series with several points.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "lib/model/series.h"
#include "lib/remote_write/encoder.h"

namespace rwexport {
namespace {

// Labels as a k6 export with a few kept tags and the test run id produces them.
std::vector<SeriesPoints> MakeRequest(int series, int points_per_series) {
  static const char* const kStats[] = {"min", "max", "avg", "med", "p90", "p95", "p99", "count"};
  std::vector<SeriesPoints> out;
  out.reserve(series);
  for (int i = 0; i < series; ++i) {
    std::vector<Label> labels = {
        {"__name__", absl::StrCat("k6_http_req_duration_", kStats[i % 8])},
        {"test_run_id", "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"},
        {"method", i % 3 == 0 ? "POST" : "GET"},
        {"status", i % 7 == 0 ? "500" : "200"},
        {"name", absl::StrCat("https://shop.example.com/api/v2/products/", i / 8, "/reviews")},
        {"scenario", "checkout_flow"},
        {"expected_response", "true"},
    };
    SeriesPoints sp;
    sp.series = std::make_shared<const Series>(std::move(labels));
    for (int p = 0; p < points_per_series; ++p) {
      sp.points.push_back({1700000000000 + p * 3000, 0.0123 + 0.001 * ((i * 31 + p) % 97)});
    }
    out.push_back(std::move(sp));
  }
  return out;
}

void BM_Encode(benchmark::State& state) {
  const std::vector<SeriesPoints> request = MakeRequest(state.range(0), state.range(1));
  for (auto _ : state) {
    std::string bytes = EncodeWriteRequest(request);
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
}

void BM_EncodeAndCompress(benchmark::State& state) {
  const std::vector<SeriesPoints> request = MakeRequest(state.range(0), state.range(1));
  size_t raw = 0, compressed = 0;
  for (auto _ : state) {
    const std::string bytes = EncodeWriteRequest(request);
    absl::StatusOr<std::string> body = SnappyCompress(bytes);
    benchmark::DoNotOptimize(body);
    raw = bytes.size();
    compressed = body->size();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
  state.counters["raw_bytes"] = raw;
  state.counters["body_bytes"] = compressed;
}

BENCHMARK(BM_Encode)->Args({10000, 1})->Args({1000, 10})->Args({5000, 1});
BENCHMARK(BM_EncodeAndCompress)->Args({10000, 1})->Args({1000, 10})->Args({5000, 1});

}  // namespace
}  // namespace rwexport
