// Encode + snappy throughput, in points per second, for request shapes seen in practice:
// many series with one point (one window flush) and fewer series with several points.
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "lib/common/stable_hash.h"
#include "lib/model/series.h"
#include "lib/remote_write/encoder.h"

namespace rwexport {
namespace {

// Series laid out as an aggregator lays them out: per trend statistic a family holding the
// name and the test run id, per series its own labels (a few kept k6 tags).
struct Request {
  std::deque<SeriesFamily> families;
  std::deque<OwnLabels> own;
  std::deque<Series> series;
  std::vector<SeriesPoints> points;
};

std::unique_ptr<Request> MakeRequest(int series, int points_per_series) {
  static const char* const kStats[] = {"min", "max", "avg", "med", "p90", "p95", "p99", "count"};
  auto out = std::make_unique<Request>();
  for (const char* stat : kStats) {
    SeriesFamily& family = out->families.emplace_back();
    family.names.push_back(EncodeNameLabel(absl::StrCat("k6_http_req_duration_", stat)));
    family.common = EncodeLabelFields({{"test_run_id", "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"}});
    family.common_first = "test_run_id";
  }
  out->points.reserve(series);
  for (int i = 0; i < series; ++i) {
    std::vector<Label> labels = {
        {"method", i % 3 == 0 ? "POST" : "GET"},
        {"status", i % 7 == 0 ? "500" : "200"},
        {"name", absl::StrCat("https://shop.example.com/api/v2/products/", i / 8, "/reviews")},
        {"scenario", "checkout_flow"},
        {"expected_response", "true"},
    };
    const OwnLabels& own = out->own.emplace_back(EncodeOwnLabels(std::move(labels), "test_run_id"));
    SeriesPoints sp;
    sp.series =
        &out->series.emplace_back(&out->families[i % 8], own.bytes, own.name_at, own.common_at);
    for (int p = 0; p < points_per_series; ++p) {
      sp.points.push_back({1700000000000 + p * 3000, 0.0123 + 0.001 * ((i * 31 + p) % 97)});
    }
    out->points.push_back(std::move(sp));
  }
  return out;
}

void BM_Encode(benchmark::State& state) {
  const std::unique_ptr<Request> made = MakeRequest(state.range(0), state.range(1));
  const std::vector<SeriesPoints>& request = made->points;
  for (auto _ : state) {
    std::string bytes = EncodeWriteRequest(request);
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * state.range(1));
}

void BM_EncodeAndCompress(benchmark::State& state) {
  const std::unique_ptr<Request> made = MakeRequest(state.range(0), state.range(1));
  const std::vector<SeriesPoints>& request = made->points;
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

// The sender's shard choice, once per series per flush: the hash of its encoded labels.
// BM_ShardHash is StableHash64 (what the sender uses); BM_ShardHashFnv the byte-at-a-time
// FNV-1a with the same finalizer, for comparison.
template <bool kFnv>
void ShardHash(benchmark::State& state) {
  const std::unique_ptr<Request> made = MakeRequest(5000, 1);
  std::vector<std::string> labels;
  size_t bytes = 0;
  for (const SeriesPoints& sp : made->points) {
    labels.push_back(sp.series->encoded_labels(sp.name));
    bytes += labels.back().size();
  }
  for (auto _ : state) {
    uint64_t sum = 0;
    for (const std::string& l : labels) sum += kFnv ? Fmix64(Fnv1a64(l)) : StableHash64(l);
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * labels.size());
  state.counters["label_bytes"] = static_cast<double>(bytes) / labels.size();
}
void BM_ShardHash(benchmark::State& state) { ShardHash<false>(state); }
void BM_ShardHashFnv(benchmark::State& state) { ShardHash<true>(state); }
BENCHMARK(BM_ShardHash);
BENCHMARK(BM_ShardHashFnv);

BENCHMARK(BM_Encode)->Args({10000, 1})->Args({1000, 10})->Args({5000, 1});
BENCHMARK(BM_EncodeAndCompress)->Args({10000, 1})->Args({1000, 10})->Args({5000, 1});

}  // namespace
}  // namespace rwexport
