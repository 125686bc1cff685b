// Issue 13, item 13: which windows a silent series is sent again for does not depend on when
// flushes ran. The rule (window_state.h, README "What reaches Prometheus"): a counter, gauge,
// rate or native histogram repeats its last value through the 60 windows after its last window
// with samples, then leaves a gap until its next sample; at the end, through the export's last
// window (that of its newest sample, or a later one its clock passed before StopExport).
//
// One series per run, 1 s windows. The aggregator's clock is a fake moved in different
// patterns (a flush every window, every 7, every 45, irregular flushes, none between the
// samples, none before StopExport); every pattern must give exactly the same points, with
// per-series timestamps strictly increasing and counter totals exact.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/ingest/stream_ingester.h"
#include "lib/model/series.h"
#include "tests/testing/ingest.h"

namespace rwexport {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
// Window-aligned origin (ns).
constexpr int64_t kOrigin = int64_t{1'700'000'000} * kSecond;
constexpr int64_t kOriginMs = kOrigin / 1'000'000;

// When flushes run: Tick() at these seconds (the clock at second + 0.5 s) between the first
// sample and StopExport, besides the ones samples trigger themselves.
struct FlushPattern {
  std::string name;
  int every = 0;            // a flush every this many windows, or
  std::vector<int64_t> at;  // at these seconds
  absl::Duration lateness;  // large: no window closes before StopExport
};

std::vector<FlushPattern> Patterns() {
  return {
      {"a flush every window", 1, {}, absl::ZeroDuration()},
      {"a flush every 7 windows", 7, {}, absl::ZeroDuration()},
      {"a flush every 45 windows", 45, {}, absl::ZeroDuration()},
      {"irregular flushes",
       0,
       {1, 2, 3, 30, 59, 60, 61, 62, 63, 97, 150, 161, 162, 250},
       absl::ZeroDuration()},
      {"no flush but the ones samples cause", 0, {}, absl::ZeroDuration()},
      {"only the final flush at StopExport", 0, {}, absl::Seconds(1000)},
  };
}

// One series' samples and when the export stops.
struct Scenario {
  std::string metric;
  std::vector<std::pair<int64_t, double>> samples;  // (second, value), in time order
  int64_t stop_at = 0;                              // second
  bool stale_markers = false;
  bool native_histograms = false;
  std::vector<std::string> trend_stats;
};

// A point as (ms after kOrigin, value): a histogram's value is its count, a stale marker NaN.
using Points = std::vector<std::pair<int64_t, double>>;

// Every point of the run, in the order the sink received them.
Points Run(const Scenario& scenario, const FlushPattern& pattern) {
  v1::StartExportRequest request;
  request.set_test_run_id("silence");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url("http://127.0.0.1:9/w");
  target->set_resample_rate(1);
  target->set_include_default_metrics(false);
  target->set_stale_markers(scenario.stale_markers);
  target->set_native_histograms(scenario.native_histograms);
  for (const std::string& stat : scenario.trend_stats) target->add_trend_stats(stat);
  target->add_metrics()->set_source_metric(scenario.metric);
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  EXPECT_TRUE(config.ok()) << config.status();

  Mutex mu;
  Points points;
  std::atomic<int64_t> clock_ns{kOrigin};
  AggregatorOptions options;
  options.lateness = pattern.lateness;
  options.clock = [&clock_ns] { return absl::FromUnixNanos(clock_ns.load()); };
  WorkerPool pool(2);
  std::shared_ptr<Aggregator> aggregator = Aggregator::Create(
      *std::move(config), &pool,
      [&](size_t, PointBatch batch) {
        MutexLock lock(&mu);
        for (const SeriesPoints& sp : batch.series) {
          for (const Point& p : sp.points) points.emplace_back(p.timestamp_ms - kOriginMs, p.value);
          for (const HistogramPoint& h : sp.histograms) {
            points.emplace_back(h.timestamp_ms - kOriginMs,
                                IsStaleNaN(h.sum) ? StaleNaN() : static_cast<double>(h.count));
          }
        }
      },
      options);
  StreamIngester ingester(aggregator);
  auto set_clock = [&](int64_t second) { clock_ns = kOrigin + second * kSecond + kSecond / 2; };
  auto tick_at = [&](int64_t second) {
    set_clock(second);
    aggregator->Tick();
    aggregator->AwaitFlushes();
  };
  auto is_sample_second = [&](int64_t second) {
    for (const auto& [s, v] : scenario.samples) {
      if (s == second) return true;
    }
    return false;
  };
  std::vector<int64_t> ticks;
  for (int64_t second = 1; second < scenario.stop_at; ++second) {
    const bool due = pattern.every > 0 ? second % pattern.every == 0
                                       : std::count(pattern.at.begin(), pattern.at.end(), second);
    if (due && !is_sample_second(second)) ticks.push_back(second);
  }
  size_t next_tick = 0;
  for (const auto& [second, value] : scenario.samples) {
    for (; next_tick < ticks.size() && ticks[next_tick] < second; ++next_tick) {
      tick_at(ticks[next_tick]);
    }
    v1::SampleBatch batch;
    v1::Sample* s = batch.add_samples();
    s->set_metric(scenario.metric);
    s->set_time_unix_nano(kOrigin + second * kSecond + kSecond / 2);
    s->set_value(value);
    set_clock(second);
    EXPECT_TRUE(IngestAndWait(ingester, batch).ok());
    aggregator->AwaitFlushes();
  }
  for (; next_tick < ticks.size(); ++next_tick) tick_at(ticks[next_tick]);
  set_clock(scenario.stop_at);
  aggregator->Stop();
  EXPECT_EQ(aggregator->Figures().samples_accepted, scenario.samples.size());
  EXPECT_EQ(aggregator->Figures().samples_late, 0u);
  MutexLock lock(&mu);
  return points;
}

// The points as runs of consecutive seconds with one value, e.g. "1-61s=3 101s=5"; a stale
// marker as "161001ms=stale".
std::string Runs(const Points& points) {
  std::string out;
  for (size_t i = 0; i < points.size();) {
    absl::StrAppend(&out, out.empty() ? "" : " ");
    if (std::isnan(points[i].second)) {
      absl::StrAppend(&out, points[i].first, "ms=", IsStaleNaN(points[i].second) ? "stale" : "nan");
      ++i;
      continue;
    }
    size_t j = i;
    while (j + 1 < points.size() && points[j + 1].first == points[j].first + 1000 &&
           points[j + 1].second == points[i].second) {
      ++j;
    }
    absl::StrAppend(&out, points[i].first / 1000);
    if (j > i) absl::StrAppend(&out, "-", points[j].first / 1000);
    absl::StrAppend(&out, "s=", points[i].second);
    i = j + 1;
  }
  return out;
}

// Runs `scenario` with every pattern of `patterns`: each gives `want`, in timestamp order.
void ExpectSamePoints(const Scenario& scenario, const std::vector<FlushPattern>& patterns,
                      const std::string& want) {
  for (const FlushPattern& pattern : patterns) {
    SCOPED_TRACE(pattern.name);
    const Points points = Run(scenario, pattern);
    EXPECT_EQ(Runs(points), want);
    for (size_t i = 1; i < points.size(); ++i) {
      EXPECT_LT(points[i - 1].first, points[i].first) << "point " << i;
    }
  }
}

// A sample in window 0, silence, a sample in window 100, StopExport at once.
Scenario SilenceThenSample(std::string metric, double first, double second) {
  return Scenario{std::move(metric), {{0, first}, {100, second}}, 100};
}

TEST(LongSilenceTest, GaugeRepeatsThrough60WindowsThenGap) {
  // Window k ends at (k + 1) s: the sample's window, 60 repeats, a gap, the next sample.
  ExpectSamePoints(SilenceThenSample("vus", 3, 5), Patterns(), "1-61s=3 101s=5");
}

TEST(LongSilenceTest, CounterTotalStaysExact) {
  ExpectSamePoints(SilenceThenSample("iterations", 3, 5), Patterns(), "1-61s=3 101s=8");
}

TEST(LongSilenceTest, RateRepeatsLikeAGauge) {
  ExpectSamePoints(SilenceThenSample("checks", 1, 0), Patterns(), "1-61s=1 101s=0");
}

TEST(LongSilenceTest, TrendOnlyInWindowsWithSamples) {
  Scenario scenario = SilenceThenSample("iteration_duration", 3000, 5000);  // ms, sent in s
  scenario.trend_stats = {"max"};
  ExpectSamePoints(scenario, Patterns(), "1s=3 101s=5");
}

TEST(LongSilenceTest, NativeHistogramRepeatsItsCumulativeCount) {
  Scenario scenario = SilenceThenSample("iteration_duration", 3000, 5000);
  scenario.native_histograms = true;
  ExpectSamePoints(scenario, Patterns(), "1-61s=1 101s=2");
}

TEST(LongSilenceTest, SilencesAtTheLimit) {
  // Silences of 59 empty windows (1-59) and of 60 (61-120) are filled; one of 78 (122-199)
  // gets its first 60 windows (122-181) and a gap (182-199).
  const Scenario scenario{"vus", {{0, 1}, {60, 2}, {121, 3}, {200, 4}}, 200};
  ExpectSamePoints(scenario, Patterns(), "1-60s=1 61-121s=2 122-182s=3 201s=4");
}

TEST(LongSilenceTest, IdleExportBeforeStop) {
  // StopExport 200 windows after the last sample: the windows the export's clock passed are
  // filled, 60 of them, whether or not flushes closed them before; the stale marker follows
  // the last point. (With a lateness of 1000 s the clock has not passed them: not tested.)
  Scenario scenario{"vus", {{0, 3}, {100, 5}}, 300};
  scenario.stale_markers = true;
  std::vector<FlushPattern> patterns = Patterns();
  patterns.pop_back();
  ExpectSamePoints(scenario, patterns, "1-61s=3 101-161s=5 161001ms=stale");
}

TEST(LongSilenceTest, StopJustAfterTheLastSampleAddsNoTail) {
  Scenario scenario = SilenceThenSample("iterations", 3, 5);
  scenario.stale_markers = true;
  ExpectSamePoints(scenario, Patterns(), "1-61s=3 101s=8 101001ms=stale");
}

}  // namespace
}  // namespace rwexport
