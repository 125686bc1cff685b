// Parsing speed of the k6 result readers, the hot path of `rwexport replay`: finance-run.json
// (and .csv) repeated in memory, parsed with callbacks that only count. Reports lines/s and
// bytes/s; asserts nothing.
#include <benchmark/benchmark.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "lib/k6/results_reader.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

constexpr int kRepeats = 100;  // ~80k lines, ~20 MB of JSON

const std::string& Repeated(const char* name) {
  static auto* cache = new std::map<std::string, std::string>();
  std::string& data = (*cache)[name];
  if (data.empty()) {
    std::ifstream in(K6TestdataFile(name), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string once = ss.str();
    if (absl::EndsWith(name, ".csv")) {
      // Keep one header.
      std::string body = once.substr(once.find('\n') + 1);
      data = once;
      for (int i = 1; i < kRepeats; ++i) data += body;
    } else {
      for (int i = 0; i < kRepeats; ++i) data += once;
    }
  }
  return data;
}

void ReadRepeated(benchmark::State& state, const char* name, K6Format format) {
  const std::string& data = Repeated(name);
  int64_t lines = 0;
  double sum = 0;
  K6ResultsReader::Callbacks callbacks;
  callbacks.on_sample = [&sum](K6Sample&& sample) { sum += sample.value; };
  for (auto _ : state) {
    absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadBuffer(data, format, callbacks);
    if (!stats.ok() || stats->errors != 0) {
      state.SkipWithError("read failed");
      break;
    }
    lines += stats->lines;
  }
  benchmark::DoNotOptimize(sum);
  state.counters["lines/s"] =
      benchmark::Counter(static_cast<double>(lines), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(data.size()));
}

void BM_ReadJson(benchmark::State& state) {
  ReadRepeated(state, "finance-run.json", K6Format::kJson);
}
BENCHMARK(BM_ReadJson)->Unit(benchmark::kMillisecond);

void BM_ReadCsv(benchmark::State& state) { ReadRepeated(state, "finance-run.csv", K6Format::kCsv); }
BENCHMARK(BM_ReadCsv)->Unit(benchmark::kMillisecond);

void BM_ParseRfc3339(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(ParseRfc3339UnixNanos("2024-10-30T16:20:21.635558127Z"));
  }
}
BENCHMARK(BM_ParseRfc3339);

}  // namespace
}  // namespace rwexport
