// How long after a window could close its points reach remote write, through the whole
// export: the registry's ticker, the aggregator's flush, the sender's queue (the target is a
// NullReceiver on loopback that answers 204).
//   BM_WindowDelay/<type>/<series>  live samples for N series (type 0: counters, 3: trends with
//                            the 8 default statistics), one per series and 1 s window, for
//                            kWindows windows; reports the export's window_delay figure: from
//                            the moment a window could close (its end plus the lateness) to its
//                            points handed to the sender, mean and max over the windows.
// Run with -c opt (the default here):
//   bazel run //tests/export:export_benchmark
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/bench/null_receiver.h"
#include "lib/export/export.h"
#include "lib/ingest/stream_ingester.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.pb.h"
#include "tests/testing/ingest.h"

namespace rwexport {
namespace {

constexpr int kWindows = 6;

void BM_WindowDelay(benchmark::State& state) {
  const bool trend = state.range(0) == 3;
  const int series = static_cast<int>(state.range(1));
  state.SetLabel(absl::StrCat(trend ? "trend" : "counter", " ", series, " series"));
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start();
  absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(SenderOptions());
  if (!receiver.ok() || !sender.ok()) {
    state.SkipWithError("cannot start the receiver or the sender");
    return;
  }
  WorkerPool pool(2);
  ExportOptions options;
  options.aggregator.lateness = absl::Milliseconds(500);
  options.sender_defaults.max_queued_points = 100000000;
  ExportRegistry registry(&pool, sender->get(), options);

  const char* metric = trend ? "http_req_duration" : "http_reqs";
  v1::StartExportRequest request;
  request.set_test_run_id("window-delay");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url((*receiver)->Url());
  target->set_resample_rate(1);
  target->set_include_default_metrics(false);
  v1::MetricEntry* entry = target->add_metrics();
  entry->set_source_metric(metric);
  entry->add_keep_tags("name");
  absl::StatusOr<v1::StartExportResponse> started = registry.Start(request);
  if (!started.ok()) {
    state.SkipWithError(std::string(started.status().message()).c_str());
    return;
  }
  std::shared_ptr<Export> exp = registry.Find(started->export_id());
  StreamIngester ingester(exp->aggregator());

  // One batch per 1,000 series; names built once, timestamps set per window.
  std::vector<v1::SampleBatch> batches;
  for (int s0 = 0; s0 < series; s0 += 1000) {
    v1::SampleBatch& batch = batches.emplace_back();
    for (int s = s0; s < std::min(series, s0 + 1000); ++s) {
      v1::Sample* sample = batch.add_samples();
      sample->set_metric(metric);
      v1::Tag* tag = sample->add_tags();
      tag->set_key("name");
      tag->set_value(absl::StrCat("https://shop.test/api/v1/products/", s));
      sample->set_value(trend ? 120.5 : 1);
    }
  }
  for (auto _ : state) {
    // Each window: every series' sample early in the second, then nothing until the next one.
    for (int w = 0; w < kWindows; ++w) {
      const absl::Time second = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 1);
      absl::SleepFor(second + absl::Milliseconds(50) - absl::Now());
      const int64_t ts = absl::ToUnixNanos(absl::Now());
      for (v1::SampleBatch& batch : batches) {
        for (v1::Sample& sample : *batch.mutable_samples()) sample.set_time_unix_nano(ts);
        if (!IngestAndWait(ingester, batch).ok()) std::abort();
      }
    }
    // The last window closes by the clock alone: end + lateness.
    absl::SleepFor(absl::Seconds(2));
  }
  const AggregatorFigures figures = exp->aggregator()->Figures();
  state.counters["windows"] = static_cast<double>(figures.window_delay.count());
  state.counters["delay_mean_ms"] = figures.window_delay.count() == 0
                                        ? 0
                                        : 1e3 * figures.window_delay.sum_seconds() /
                                              static_cast<double>(figures.window_delay.count());
  state.counters["delay_max_ms"] = 1e3 * figures.window_delay.max_seconds();
  state.counters["flush_mean_ms"] = figures.flush_duration.count() == 0
                                        ? 0
                                        : 1e3 * figures.flush_duration.sum_seconds() /
                                              static_cast<double>(figures.flush_duration.count());
  registry.Stop(started->export_id(), absl::Seconds(30)).IgnoreError();
}
BENCHMARK(BM_WindowDelay)
    ->Args({0, 100000})
    ->Args({3, 100000})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace
}  // namespace rwexport
