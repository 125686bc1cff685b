// Cost of QuantileSketch::Add (the ingest hot path), of a percentile query on a sketch and on a
// TrendAccumulator, and of merging. Run with -c opt:
//   bazel run -c opt //tests/aggregate:sketch_benchmark
#include <cstdint>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "lib/aggregate/sketch.h"
#include "lib/aggregate/trend.h"

namespace rwexport {
namespace {

// Latency-like values in ms: log-uniform over 1 µs .. 60 s.
std::vector<double> LatencyValues(size_t n) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exponent(-3, 4.78);
  std::vector<double> values(n);
  for (double& v : values) v = std::pow(10.0, exponent(rng));
  return values;
}

void BM_SketchAdd(benchmark::State& state) {
  const std::vector<double> values = LatencyValues(1 << 16);
  QuantileSketch sketch;
  size_t i = 0;
  for (auto _ : state) {
    sketch.Add(values[i]);
    i = (i + 1) & (values.size() - 1);
  }
  benchmark::DoNotOptimize(sketch.count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SketchAdd);

void BM_SketchAddNarrow(benchmark::State& state) {
  // Typical HTTP durations: 5..500 ms.
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(3.5, 0.8);
  std::vector<double> values(1 << 16);
  for (double& v : values) v = dist(rng);
  QuantileSketch sketch;
  size_t i = 0;
  for (auto _ : state) {
    sketch.Add(values[i]);
    i = (i + 1) & (values.size() - 1);
  }
  benchmark::DoNotOptimize(sketch.count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SketchAddNarrow);

void BM_TrendAdd(benchmark::State& state) {
  const std::vector<double> values = LatencyValues(1 << 16);
  TrendAccumulator trend;
  for (int j = 0; j < 100; ++j) trend.Add(values[j]);  // Past the exact limit.
  size_t i = 0;
  for (auto _ : state) {
    trend.Add(values[i]);
    i = (i + 1) & (values.size() - 1);
  }
  benchmark::DoNotOptimize(trend.count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TrendAdd);

void BM_TrendAddExactWindow(benchmark::State& state) {
  // A small window: 64 values kept exactly (sorted insert), then cleared.
  const std::vector<double> values = LatencyValues(64);
  for (auto _ : state) {
    TrendAccumulator trend;
    for (double v : values) trend.Add(v);
    benchmark::DoNotOptimize(trend.count());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_TrendAddExactWindow);

void BM_SketchValueAtRank(benchmark::State& state) {
  const std::vector<double> values = LatencyValues(100000);
  QuantileSketch sketch;
  for (double v : values) sketch.Add(v);
  uint64_t rank = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sketch.ValueAtRank(rank));
    rank = (rank + 9973) % sketch.count();
  }
}
BENCHMARK(BM_SketchValueAtRank);

void BM_TrendPercentileSketch(benchmark::State& state) {
  const std::vector<double> values = LatencyValues(100000);
  TrendAccumulator trend;
  for (double v : values) trend.Add(v);
  for (auto _ : state) benchmark::DoNotOptimize(trend.Percentile(99.9));
}
BENCHMARK(BM_TrendPercentileSketch);

void BM_TrendPercentileExact(benchmark::State& state) {
  const std::vector<double> values = LatencyValues(60);
  TrendAccumulator trend;
  for (double v : values) trend.Add(v);
  for (auto _ : state) benchmark::DoNotOptimize(trend.Percentile(95));
}
BENCHMARK(BM_TrendPercentileExact);

void BM_SketchMerge(benchmark::State& state) {
  const std::vector<double> values = LatencyValues(100000);
  QuantileSketch a;
  QuantileSketch b;
  for (size_t i = 0; i < values.size(); ++i) (i % 2 ? a : b).Add(values[i]);
  for (auto _ : state) {
    QuantileSketch merged = a;
    benchmark::DoNotOptimize(merged.Merge(b).ok());
  }
}
BENCHMARK(BM_SketchMerge);

}  // namespace
}  // namespace rwexport
