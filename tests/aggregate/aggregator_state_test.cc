// Aggregator::SaveState / RestoreState (checkpoints, lib/durable/checkpoints.md): an export whose
// state was saved part-way, restored into a fresh aggregator that then gets the rest of the
// samples, ends with the same figures and, with the points flushed before the save, the same
// points as one that got every sample. Counters (with a kept tag), gauges, rates and trends
// (exact, and past the switch to the sketch); what is not covered (native histograms, "*"
// entries) is refused.
#include <atomic>
#include <cstdint>
#include <map>
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
#include "rwexport/v1/export.pb.h"
#include "tests/testing/ingest.h"

namespace rwexport {
namespace {

constexpr int64_t kSecond = 1000000000;
constexpr int64_t kOrigin = int64_t{1796600000} * kSecond;

// Every point a sink got: series -> (ms after kOrigin, value), in the order received.
using Points = std::map<std::string, std::vector<std::pair<int64_t, double>>>;

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

// The samples of second `s` (at s + 0.5 s).
v1::SampleBatch BatchAt(int64_t s) {
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
  return batch;
}

// One aggregator with a fake clock, collecting its points.
struct Export {
  explicit Export(WorkerPool* pool, bool native_histograms = false, bool all_metrics = false) {
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
          }
        },
        options);
    ingester = std::make_unique<StreamIngester>(aggregator);
  }
  void IngestSeconds(int64_t from, int64_t to) {
    for (int64_t s = from; s <= to; ++s) {
      clock_ns = kOrigin + s * kSecond + kSecond / 2;
      ASSERT_TRUE(IngestAndWait(*ingester, BatchAt(s)).ok());
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

  std::atomic<int64_t> clock_ns{kOrigin};
  std::shared_ptr<Aggregator> aggregator;
  std::unique_ptr<StreamIngester> ingester;
  Mutex mu;
  Points points;
};

TEST(AggregatorStateTest, ARestoredExportEndsWithTheSameFiguresAndPoints) {
  WorkerPool pool(2);
  Export full(&pool);
  full.IngestSeconds(1, 30);
  full.StopAt(40);
  const AggregatorFigures want = full.aggregator->Figures();
  const Points want_points = full.Taken();
  ASSERT_EQ(want.samples_accepted, 30u + 15u + 24u + 30u + 26u * 10 + 4u * 100);
  ASSERT_EQ(want_points.size(), 7u);  // two http_reqs_total, vus, checks_rate, 3 trend stats

  Export before(&pool);
  before.IngestSeconds(1, 14);  // window 14 (a sketch) is open at the save
  absl::StatusOr<std::string> state = before.aggregator->SaveState();
  ASSERT_TRUE(state.ok()) << state.status();
  const Points flushed_before = before.Taken();
  ASSERT_FALSE(flushed_before.empty());

  Export after(&pool);
  after.clock_ns = before.clock_ns.load();
  ASSERT_TRUE(after.aggregator->RestoreState(*state).ok());
  EXPECT_EQ(after.aggregator->Figures().samples_accepted,
            before.aggregator->Figures().samples_accepted);
  after.IngestSeconds(15, 30);
  after.StopAt(40);

  const AggregatorFigures got = after.aggregator->Figures();
  EXPECT_EQ(got.samples_accepted, want.samples_accepted);
  EXPECT_EQ(got.samples_rejected, want.samples_rejected);
  EXPECT_EQ(got.samples_late, want.samples_late);
  EXPECT_EQ(got.windows_flushed, want.windows_flushed);
  EXPECT_EQ(got.series_per_target, want.series_per_target);
  EXPECT_EQ(got.exported_series_per_target, want.exported_series_per_target);

  Points got_points = flushed_before;
  for (const auto& [series, points] : after.Taken()) {
    got_points[series].insert(got_points[series].end(), points.begin(), points.end());
  }
  EXPECT_EQ(got_points, want_points);
  // The counter's last point is its exact total: 30 samples of 1 for status 200.
  const std::string total = "k6_http_reqs_total{status=\"200\",test_run_id=\"checkpoint\"}";
  ASSERT_EQ(got_points.count(total), 1u) << ::testing::PrintToString(got_points);
  EXPECT_EQ(got_points[total].back().second, 30);
  before.aggregator->Stop();
}

TEST(AggregatorStateTest, WhatIsNotCoveredIsRefusedAndAStateNeedsAFreshAggregator) {
  WorkerPool pool(1);
  Export trend(&pool, /*native_histograms=*/true);
  v1::SampleBatch batch;
  v1::Sample* sample = batch.add_samples();
  sample->set_metric("http_req_duration");
  sample->set_time_unix_nano(kOrigin + kSecond / 2);
  sample->set_value(12);
  trend.clock_ns = kOrigin + kSecond / 2;
  ASSERT_TRUE(IngestAndWait(*trend.ingester, batch).ok());
  EXPECT_EQ(trend.aggregator->SaveState().status().code(), absl::StatusCode::kUnimplemented);
  trend.aggregator->Stop();

  Export all(&pool, false, /*all_metrics=*/true);
  EXPECT_EQ(all.aggregator->SaveState().status().message(),
            "checkpoint: exports with a \"*\" entry are not covered yet");
  all.aggregator->Stop();

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
