// Aggregator::SaveState / RestoreState (checkpoints, lib/durable/checkpoints.md): an export whose
// state was saved part-way, restored into a fresh aggregator that then gets the rest of the
// samples, ends with the same figures and, with the points flushed before the save, the same
// points as one that got every sample. Counters (with a kept tag), gauges, rates, trends
// (exact, and past the switch to the sketch), native histograms (open windows and cumulative),
// and the outputs of a "*" entry (numbered in the order their metrics were first seen).
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/ingest/stream_ingester.h"
#include "lib/model/series.h"
#include "rwexport/v1/export.pb.h"
#include "tests/testing/ingest.h"

namespace rwexport {
namespace {

constexpr int64_t kSecond = 1000000000;
constexpr int64_t kOrigin = int64_t{1796600000} * kSecond;

// Every point a sink got: series -> (ms after kOrigin, value), in the order received.
using Points = std::map<std::string, std::vector<std::pair<int64_t, double>>>;
// Every native-histogram point: series -> (ms after kOrigin, HistogramText).
using Histograms = std::map<std::string, std::vector<std::pair<int64_t, std::string>>>;

ExportConfig Config(bool native_histograms, bool all_metrics) {
  v1::StartExportRequest request;
  request.set_test_run_id("checkpoint");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url("http://127.0.0.1:9/w");
  target->set_resample_rate(1);
  target->set_include_default_metrics(false);
  target->set_include_test_run_id(true);  // a label every series of an output shares
  v1::MetricEntry* reqs = target->add_metrics();
  reqs->set_source_metric("http_reqs");
  reqs->add_keep_tags("status");
  target->add_metrics()->set_source_metric("vus");
  target->add_metrics()->set_source_metric("checks");
  target->add_metrics()->set_source_metric("http_req_duration");
  target->add_trend_stats("p(95)");
  target->add_trend_stats("avg");
  target->add_trend_stats("max");
  target->set_native_histograms(native_histograms);
  if (all_metrics) target->add_metrics()->set_source_metric("*");
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  EXPECT_TRUE(config.ok()) << config.status();
  return *std::move(config);
}

// A native-histogram point as text (every field, NaN sums included), for comparisons.
std::string HistogramText(const HistogramPoint& p) {
  std::string text = absl::StrCat("count=", p.count, " sum=", p.sum, " schema=", p.schema,
                                  " zero=", p.zero_count, " pos=");
  for (const HistogramSpan& span : p.positive_spans) {
    absl::StrAppend(&text, span.offset, ":", span.length, ",");
  }
  absl::StrAppend(&text, " deltas=", absl::StrJoin(p.positive_deltas, ","), " neg=");
  for (const HistogramSpan& span : p.negative_spans) {
    absl::StrAppend(&text, span.offset, ":", span.length, ",");
  }
  absl::StrAppend(&text, " deltas=", absl::StrJoin(p.negative_deltas, ","));
  return text;
}

// The samples of second `s` (at s + 0.5 s). `more`: metrics only a "*" entry exports, first
// seen in an order that is not their names' (vus_max from second 1, data_received from 4,
// iteration_duration, a trend, from 16).
v1::SampleBatch BatchAt(int64_t s, bool more = false) {
  v1::SampleBatch batch;
  auto add = [&](const std::string& metric, double value, const char* status) {
    v1::Sample* sample = batch.add_samples();
    sample->set_metric(metric);
    sample->set_time_unix_nano(kOrigin + s * kSecond + kSecond / 2);
    sample->set_value(value);
    if (status != nullptr) {
      v1::Tag* tag = sample->add_tags();
      tag->set_key("status");
      tag->set_value(status);
    }
  };
  add("http_reqs", 1, "200");
  if (s % 2 == 1) add("http_reqs", 2, "500");
  if (s % 5 != 0) add("vus", static_cast<double>(s), nullptr);  // a gauge with gaps
  add("checks", s % 3 == 0 ? 0 : 1, nullptr);
  // A trend: 10 samples a second; 100 in seconds divisible by 7 (past the 64 exact values,
  // so that window's accumulator is a sketch).
  const int durations = s % 7 == 0 ? 100 : 10;
  for (int i = 0; i < durations; ++i) add("http_req_duration", 10.0 + (i * 37 + s) % 91, nullptr);
  if (more) {
    add("vus_max", 10, nullptr);
    if (s >= 4) add("data_received", 100 * s, nullptr);
    if (s >= 16) add("iteration_duration", 1000 + s, nullptr);
  }
  return batch;
}

// One aggregator with a fake clock, collecting its points.
struct Export {
  explicit Export(WorkerPool* pool, bool native_histograms = false, bool all_metrics = false)
      : more(all_metrics) {
    AggregatorOptions options;
    options.lateness = absl::Seconds(1);
    options.clock = [this] { return absl::FromUnixNanos(clock_ns.load()); };
    aggregator = Aggregator::Create(
        Config(native_histograms, all_metrics), pool,
        [this](size_t, PointBatch batch) {
          MutexLock lock(&mu);
          for (const SeriesPoints& sp : batch.series) {
            for (const Point& p : sp.points) {
              points[sp.series->ToString(sp.name)].emplace_back(p.timestamp_ms - kOrigin / 1000000,
                                                                p.value);
            }
            for (const HistogramPoint& p : sp.histograms) {
              histograms[sp.series->ToString(sp.name)].emplace_back(
                  p.timestamp_ms - kOrigin / 1000000, HistogramText(p));
            }
          }
        },
        options);
    ingester = std::make_unique<StreamIngester>(aggregator);
  }
  void IngestSeconds(int64_t from, int64_t to) {
    for (int64_t s = from; s <= to; ++s) {
      clock_ns = kOrigin + s * kSecond + kSecond / 2;
      ASSERT_TRUE(IngestAndWait(*ingester, BatchAt(s, more)).ok());
      aggregator->AwaitFlushes();
    }
  }
  void StopAt(int64_t s) {
    clock_ns = kOrigin + s * kSecond;
    aggregator->Stop();
  }
  Points Taken() {
    MutexLock lock(&mu);
    return points;
  }
  Histograms TakenHistograms() {
    MutexLock lock(&mu);
    return histograms;
  }

  std::atomic<int64_t> clock_ns{kOrigin};
  std::shared_ptr<Aggregator> aggregator;
  std::unique_ptr<StreamIngester> ingester;
  const bool more;
  Mutex mu;
  Points points;
  Histograms histograms;
};

// How an export ends: its figures and every point it sent.
struct Ending {
  AggregatorFigures figures;
  Points points;
  Histograms histograms;
};

// `want`: an export that got seconds 1..30; `got`: one saved after second 14 (window 14, a
// sketch, open), restored into a fresh aggregator that gets seconds 15..30, with the points
// flushed before the save.
void RunFullAndRestored(bool native_histograms, bool all_metrics, Ending* want, Ending* got) {
  WorkerPool pool(2);
  Export full(&pool, native_histograms, all_metrics);
  full.IngestSeconds(1, 30);
  full.StopAt(40);
  want->figures = full.aggregator->Figures();
  want->points = full.Taken();
  want->histograms = full.TakenHistograms();

  Export before(&pool, native_histograms, all_metrics);
  before.IngestSeconds(1, 14);
  absl::StatusOr<std::string> state = before.aggregator->SaveState();
  ASSERT_TRUE(state.ok()) << state.status();
  got->points = before.Taken();
  got->histograms = before.TakenHistograms();
  ASSERT_FALSE(got->points.empty());

  Export after(&pool, native_histograms, all_metrics);
  after.clock_ns = before.clock_ns.load();
  ASSERT_TRUE(after.aggregator->RestoreState(*state).ok());
  EXPECT_EQ(after.aggregator->Figures().samples_accepted,
            before.aggregator->Figures().samples_accepted);
  after.IngestSeconds(15, 30);
  after.StopAt(40);
  got->figures = after.aggregator->Figures();
  for (const auto& [series, points] : after.Taken()) {
    got->points[series].insert(got->points[series].end(), points.begin(), points.end());
  }
  for (const auto& [series, points] : after.TakenHistograms()) {
    got->histograms[series].insert(got->histograms[series].end(), points.begin(), points.end());
  }
  before.aggregator->Stop();
}

void ExpectSameEnding(const Ending& got, const Ending& want) {
  EXPECT_EQ(got.figures.samples_accepted, want.figures.samples_accepted);
  EXPECT_EQ(got.figures.samples_rejected, want.figures.samples_rejected);
  EXPECT_EQ(got.figures.samples_late, want.figures.samples_late);
  EXPECT_EQ(got.figures.windows_flushed, want.figures.windows_flushed);
  EXPECT_EQ(got.figures.series_per_target, want.figures.series_per_target);
  EXPECT_EQ(got.figures.exported_series_per_target, want.figures.exported_series_per_target);
  EXPECT_EQ(got.points, want.points);
  EXPECT_EQ(got.histograms, want.histograms);
}

TEST(AggregatorStateTest, ARestoredExportEndsWithTheSameFiguresAndPoints) {
  Ending want, got;
  RunFullAndRestored(false, false, &want, &got);
  ASSERT_EQ(want.figures.samples_accepted, 30u + 15u + 24u + 30u + 26u * 10 + 4u * 100);
  ASSERT_EQ(want.points.size(), 7u);  // two http_reqs_total, vus, checks_rate, 3 trend stats
  ExpectSameEnding(got, want);
  // The counter's last point is its exact total: 30 samples of 1 for status 200.
  const std::string total = "k6_http_reqs_total{status=\"200\",test_run_id=\"checkpoint\"}";
  ASSERT_EQ(got.points.count(total), 1u) << ::testing::PrintToString(got.points);
  EXPECT_EQ(got.points[total].back().second, 30);
}

TEST(AggregatorStateTest, ARestoredNativeHistogramEndsAsOneThatGotEverySample) {
  Ending want, got;
  RunFullAndRestored(/*native_histograms=*/true, false, &want, &got);
  ASSERT_EQ(want.points.size(), 4u);  // two http_reqs_total, vus, checks_rate
  ASSERT_EQ(want.histograms.size(), 1u);
  const std::string name = "k6_http_req_duration_seconds{test_run_id=\"checkpoint\"}";
  ASSERT_EQ(want.histograms.count(name), 1u) << ::testing::PrintToString(want.histograms);
  // 37 cumulative points (windows 1..30 with samples, 31..37 repeated up to the stop) and the
  // stale marker; the last histogram counts every duration sample.
  const auto& histograms = want.histograms.at(name);
  ASSERT_EQ(histograms.size(), 38u);
  EXPECT_EQ(histograms[36].second.substr(0, histograms[36].second.find(' ')), "count=660");
  ExpectSameEnding(got, want);
}

TEST(AggregatorStateTest, ARestoredAllMetricsExportKeepsItsOutputsInTheirCreationOrder) {
  Ending want, got;
  RunFullAndRestored(false, /*all_metrics=*/true, &want, &got);
  // Explicit: two http_reqs_total, vus, checks_rate, 3 trend stats; "*": k6_vus_max,
  // k6_data_received_total, 3 stats of k6_iteration_duration (first seen after the save).
  ASSERT_EQ(want.points.size(), 7u + 5u) << ::testing::PrintToString(want.points);
  EXPECT_EQ(want.points.count("k6_vus_max{test_run_id=\"checkpoint\"}"), 1u);
  EXPECT_EQ(want.points.count("k6_data_received_total{test_run_id=\"checkpoint\"}"), 1u);
  EXPECT_EQ(want.points.count("k6_iteration_duration_p95{test_run_id=\"checkpoint\"}"), 1u);
  ExpectSameEnding(got, want);
}

TEST(AggregatorStateTest, ARestoredAllMetricsExportWithNativeHistograms) {
  Ending want, got;
  RunFullAndRestored(true, true, &want, &got);
  // http_req_duration and k6_iteration_duration as native histograms.
  ASSERT_EQ(want.histograms.size(), 2u) << ::testing::PrintToString(want.histograms);
  ExpectSameEnding(got, want);
}

TEST(AggregatorStateTest, AStateNeedsAFreshAggregatorOfTheSameConfiguration) {
  WorkerPool pool(1);
  // A state with outputs of a "*" entry does not restore into an export without one.
  Export all(&pool, false, /*all_metrics=*/true);
  all.IngestSeconds(1, 2);
  absl::StatusOr<std::string> all_state = all.aggregator->SaveState();
  ASSERT_TRUE(all_state.ok()) << all_state.status();
  Export explicit_only(&pool);
  EXPECT_EQ(explicit_only.aggregator->RestoreState(*all_state).code(), absl::StatusCode::kDataLoss);
  all.aggregator->Stop();
  explicit_only.aggregator->Stop();

  Export used(&pool);
  used.IngestSeconds(1, 2);
  absl::StatusOr<std::string> state = used.aggregator->SaveState();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(used.aggregator->RestoreState(*state).code(), absl::StatusCode::kFailedPrecondition);
  Export fresh(&pool);
  EXPECT_EQ(fresh.aggregator->RestoreState("\xff\xff").code(), absl::StatusCode::kDataLoss);
  used.aggregator->Stop();
  fresh.aggregator->Stop();
}

}  // namespace
}  // namespace rwexport
