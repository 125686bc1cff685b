// Durable queue (issue 12): batches per second through Sender::Enqueue into a write-through
// queue on disk (SenderOptions::write_through) until every one of them is durable (its file
// written and synced), with 1 and 4 enqueueing threads, each with its own target (as exports
// have), the target down so that every batch stays queued. What is measured is the disk under
// TEST_TMPDIR (or /tmp). Uses only the Sender's public API, so that a build of an earlier commit
// can run it too. Run by hand:
//   bazel run -c opt //tests/remote_write:queue_benchmark -- --benchmark_repetitions=3
#include <stdlib.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "lib/model/series.h"
#include "lib/remote_write/sender.h"
#include "tests/testing/series.h"

namespace rwexport {
namespace {

constexpr int kSeries = 100;

// One window of kSeries series, one point each, at `timestamp_ms`.
PointBatch Window(const std::vector<const Series*>& series, int64_t timestamp_ms) {
  PointBatch batch;
  for (size_t i = 0; i < series.size(); ++i) {
    batch.series.push_back({series[i], {{timestamp_ms, static_cast<double>(i)}}});
  }
  return batch;
}

void BM_DurableQueue(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int batches = static_cast<int>(state.range(1));  // per thread
  std::vector<const Series*> series;
  for (int i = 0; i < kSeries; ++i) {
    series.push_back(TestSeries({{"__name__", "bench_points"}, {"i", absl::StrCat(i)}}));
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  for (auto _ : state) {
    std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/queue-bench-XXXXXX");
    if (mkdtemp(&dir[0]) == nullptr) {
      state.SkipWithError("mkdtemp failed");
      return;
    }
    SenderOptions options;
    options.spool_dir = dir;
    options.write_through = true;
    absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(options);
    if (!sender.ok()) {
      state.SkipWithError(std::string(sender.status().message()).c_str());
      return;
    }
    std::vector<Sender::TargetId> targets;
    for (int t = 0; t < threads; ++t) {
      TargetOptions target;
      target.url = "http://127.0.0.1:9/api/v1/write";  // nothing listens: every batch stays
      target.queue_scope = absl::StrCat("bench/", t);
      target.min_backoff = absl::Seconds(1);
      target.max_backoff = absl::Seconds(1);
      targets.push_back(*(*sender)->AddTarget(target));
    }
    const absl::Time start = absl::Now();
    std::vector<std::thread> enqueuers;
    for (int t = 0; t < threads; ++t) {
      enqueuers.emplace_back([&, t] {
        for (int b = 1; b <= batches; ++b) (*sender)->Enqueue(targets[t], Window(series, b * 1000));
      });
    }
    for (std::thread& e : enqueuers) e.join();
    // Durable: every batch's file committed (at once before group commit).
    for (Sender::TargetId t : targets) {
      while (!(*sender)->Figures(t).queue_durable) absl::SleepFor(absl::Microseconds(100));
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
    for (Sender::TargetId t : targets) (*sender)->RemoveTarget(t, absl::Now());
    sender->reset();
    std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
  }
  state.counters["batches_per_s"] = benchmark::Counter(
      static_cast<double>(threads) * batches, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DurableQueue)
    ->Args({1, 200})
    ->Args({4, 100})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace
}  // namespace rwexport
