#include "lib/aggregate/aggregator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/ingest/stream_ingester.h"
#include "tests/testing/ingest.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// A window-aligned origin: 1.7e9 s is a multiple of every resample rate used here.
constexpr int64_t kT0 = int64_t{1700000000} * 1000000000;
constexpr int64_t kMs = 1000000;
constexpr int64_t kT0Ms = kT0 / kMs;

// Collects what the aggregator hands to remote write, by exported series.
class Collector {
 public:
  void Add(size_t target, PointBatch batch) {
    MutexLock lock(&mu_);
    for (SeriesPoints& sp : batch.series) {
      // Remote write wants every series' labels sorted by name, __name__ included.
      const std::vector<Label> labels = sp.series->labels(sp.name);
      EXPECT_TRUE(std::is_sorted(labels.begin(), labels.end(), [](const Label& a, const Label& b) {
        return a.name < b.name;
      })) << sp.series->ToString(sp.name);
      auto& points = series_[{target, sp.series->ToString(sp.name)}];
      points.insert(points.end(), sp.points.begin(), sp.points.end());
    }
    ++batches_;
    cv_.SignalAll();
  }
  // Waits (bounded) until `n` batches arrived in all.
  bool WaitForBatches(int n) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (batches_ < n) {
      if (absl::Now() > deadline) return false;
      cv_.WaitFor(&mu_, std::chrono::milliseconds(50));
    }
    return true;
  }
  // (offset from kT0 in ms, value) pairs of one series of target 0.
  std::vector<std::pair<int64_t, double>> Points(const std::string& series, size_t target = 0) {
    MutexLock lock(&mu_);
    std::vector<std::pair<int64_t, double>> out;
    for (const Point& p : series_[{target, series}])
      out.emplace_back(p.timestamp_ms - kT0Ms, p.value);
    return out;
  }
  std::vector<std::string> Names(size_t target = 0) {
    MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [key, points] : series_) {
      if (key.first == target) out.push_back(key.second);
    }
    return out;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::map<std::pair<size_t, std::string>, std::vector<Point>> series_ ABSL_GUARDED_BY(mu_);
  int batches_ ABSL_GUARDED_BY(mu_) = 0;
};

class AggregatorTest : public ::testing::Test {
 protected:
  // Builds the aggregator for a validated request; the clock (clock_ns_) stands still at
  // kT0 + 1 h unless a test moves it, so the watermark is the newest sample's timestamp.
  void Start(const v1::StartExportRequest& request,
             absl::Duration lateness = absl::ZeroDuration()) {
    absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
    ASSERT_TRUE(config.ok()) << config.status();
    AggregatorOptions options;
    options.lateness = lateness;
    options.clock = [this] { return absl::FromUnixNanos(clock_ns_.load()); };
    aggregator_ = Aggregator::Create(
        *std::move(config), &pool_,
        [this](size_t target, PointBatch batch) { collector_.Add(target, std::move(batch)); },
        options);
    ingester_ = std::make_unique<StreamIngester>(aggregator_);
  }

  static v1::StartExportRequest Request(int resample_rate) {
    v1::StartExportRequest request;
    request.set_test_run_id("run-1");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
    target->set_resample_rate(resample_rate);
    target->add_metrics()->set_source_metric("checks");
    return request;
  }

  // Ingests one batch and waits until the workers applied it.
  void Ingest(const v1::SampleBatch& batch) { ASSERT_TRUE(IngestAndWait(*ingester_, batch).ok()); }

  static void AddSample(v1::SampleBatch* batch, const std::string& metric, double offset_s,
                        double value, std::vector<std::pair<std::string, std::string>> tags = {}) {
    v1::Sample* s = batch->add_samples();
    s->set_metric(metric);
    s->set_time_unix_nano(kT0 + static_cast<int64_t>(std::llround(offset_s * 1e9)));
    s->set_value(value);
    for (auto& [k, v] : tags) {
      v1::Tag* t = s->add_tags();
      t->set_key(k);
      t->set_value(v);
    }
  }

  // The aggregator's clock; stands still unless a test moves it.
  std::atomic<int64_t> clock_ns_{kT0 + int64_t{3600} * 1000000000};
  WorkerPool pool_{2};
  Collector collector_;
  std::shared_ptr<Aggregator> aggregator_;
  std::unique_ptr<StreamIngester> ingester_;
};

TEST_F(AggregatorTest, EveryTypeAndStatisticPerWindow) {
  Start(Request(2));
  v1::SampleBatch batch;
  // Window [0 s, 2 s).
  AddSample(&batch, "http_reqs", 0.1, 1);
  AddSample(&batch, "http_reqs", 0.5, 1);
  AddSample(&batch, "http_reqs", 1.9, 1);
  AddSample(&batch, "vus", 0.2, 5);
  AddSample(&batch, "vus", 1.5, 7);
  AddSample(&batch, "vus", 1.2, 9);  // older than the 7: the 7 is the window's last value
  AddSample(&batch, "checks", 0.3, 1);
  AddSample(&batch, "checks", 0.4, 0);
  AddSample(&batch, "checks", 0.6, 1);
  AddSample(&batch, "checks", 0.7, 1);
  for (double ms : {300.0, 100.0, 400.0, 200.0}) AddSample(&batch, "http_req_duration", 1.0, ms);
  AddSample(&batch, "data_sent", 0.1, 1500);
  // Window [2 s, 4 s).
  AddSample(&batch, "http_reqs", 2.5, 1);
  AddSample(&batch, "checks", 3.0, 0);
  AddSample(&batch, "http_req_duration", 2.2, 50);
  AddSample(&batch, "data_sent", 3.9, 500);
  Ingest(batch);

  aggregator_->Tick();  // the watermark is 3.9 s: window [0, 2) closes
  ASSERT_TRUE(collector_.WaitForBatches(1));
  EXPECT_THAT(collector_.Points("k6_http_reqs_total{}"), ElementsAre(Pair(2000, 3)));
  EXPECT_THAT(collector_.Points("k6_vus{}"), ElementsAre(Pair(2000, 7)));
  EXPECT_THAT(collector_.Points("k6_checks_rate{}"), ElementsAre(Pair(2000, 0.75)));
  EXPECT_THAT(collector_.Points("k6_data_sent_total{}"), ElementsAre(Pair(2000, 1500)));
  // Durations in seconds; k6 percentiles interpolate at p*(n-1) over {100,200,300,400} ms.
  EXPECT_THAT(collector_.Points("k6_http_req_duration_min{}"), ElementsAre(Pair(2000, 0.1)));
  EXPECT_THAT(collector_.Points("k6_http_req_duration_max{}"), ElementsAre(Pair(2000, 0.4)));
  EXPECT_THAT(collector_.Points("k6_http_req_duration_avg{}"), ElementsAre(Pair(2000, 0.25)));
  EXPECT_THAT(collector_.Points("k6_http_req_duration_med{}"), ElementsAre(Pair(2000, 0.25)));
  auto p90 = collector_.Points("k6_http_req_duration_p90{}");
  ASSERT_EQ(p90.size(), 1u);
  EXPECT_DOUBLE_EQ(p90[0].second, 0.37);
  auto p95 = collector_.Points("k6_http_req_duration_p95{}");
  ASSERT_EQ(p95.size(), 1u);
  EXPECT_DOUBLE_EQ(p95[0].second, 0.385);
  auto p99 = collector_.Points("k6_http_req_duration_p99{}");
  ASSERT_EQ(p99.size(), 1u);
  EXPECT_DOUBLE_EQ(p99[0].second, 0.397);
  EXPECT_THAT(collector_.Points("k6_http_req_duration_count{}"), ElementsAre(Pair(2000, 4)));

  // A late counter sample for the closed window goes into the next open one; a sample at
  // 6.5 s moves the watermark so [2, 4) and the empty [4, 6) close.
  v1::SampleBatch later;
  AddSample(&later, "http_reqs", 0.7, 1);
  AddSample(&later, "vus", 6.5, 3);
  Ingest(later);
  aggregator_->Tick();
  ASSERT_TRUE(collector_.WaitForBatches(2));
  EXPECT_THAT(collector_.Points("k6_http_reqs_total{}"),
              ElementsAre(Pair(2000, 3), Pair(4000, 5), Pair(6000, 5)));
  // Gauges and rates are sent again for a window without samples; trends are not.
  EXPECT_THAT(collector_.Points("k6_vus{}"),
              ElementsAre(Pair(2000, 7), Pair(4000, 7), Pair(6000, 7)));
  EXPECT_THAT(collector_.Points("k6_checks_rate{}"),
              ElementsAre(Pair(2000, 0.75), Pair(4000, 0), Pair(6000, 0)));
  EXPECT_THAT(collector_.Points("k6_http_req_duration_count{}"),
              ElementsAre(Pair(2000, 4), Pair(4000, 1)));
  EXPECT_THAT(collector_.Points("k6_data_sent_total{}"),
              ElementsAre(Pair(2000, 1500), Pair(4000, 2000), Pair(6000, 2000)));

  aggregator_->Stop();  // flushes [6, 8)
  EXPECT_THAT(collector_.Points("k6_vus{}"),
              ElementsAre(Pair(2000, 7), Pair(4000, 7), Pair(6000, 7), Pair(8000, 3)));
  const AggregatorFigures figures = aggregator_->Figures();
  EXPECT_EQ(figures.samples_accepted, 21u);  // 19 in the first batch, 2 in the second
  EXPECT_EQ(figures.samples_late, 1u);
  EXPECT_EQ(figures.samples_rejected, 0u);
}

TEST_F(AggregatorTest, KeepTagsSelectorsTargetNamesAndTestRunId) {
  v1::StartExportRequest request = Request(1);
  v1::Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  target->set_include_test_run_id(true);
  v1::MetricEntry* ok = target->add_metrics();
  ok->set_source_metric("http_reqs{status=~\"2..\"}");
  ok->set_target_metric("ok_requests");
  ok->add_keep_tags("method");
  v1::MetricEntry* all = target->add_metrics();
  all->set_source_metric("http_reqs");
  Start(request);

  v1::SampleBatch batch;
  AddSample(&batch, "http_reqs", 0.1, 1, {{"status", "200"}, {"method", "GET"}});
  AddSample(&batch, "http_reqs", 0.2, 1, {{"status", "201"}, {"method", "POST"}});
  AddSample(&batch, "http_reqs", 0.3, 1, {{"status", "500"}, {"method", "GET"}});
  AddSample(&batch, "http_reqs", 0.4, 1, {{"status", "1200"}, {"method", "GET"}});
  AddSample(&batch, "http_reqs", 0.5, 1, {{"status", "204"}, {"method", ""}});  // empty: no label
  Ingest(batch);
  aggregator_->Stop();

  EXPECT_THAT(collector_.Names(),
              ElementsAre("k6_http_reqs_total{test_run_id=\"run-1\"}",
                          "ok_requests_total{method=\"GET\",test_run_id=\"run-1\"}",
                          "ok_requests_total{method=\"POST\",test_run_id=\"run-1\"}",
                          "ok_requests_total{test_run_id=\"run-1\"}"));
  EXPECT_THAT(collector_.Points("k6_http_reqs_total{test_run_id=\"run-1\"}"),
              ElementsAre(Pair(1000, 5)));
  EXPECT_THAT(collector_.Points("ok_requests_total{method=\"GET\",test_run_id=\"run-1\"}"),
              ElementsAre(Pair(1000, 1)));
  EXPECT_THAT(collector_.Points("ok_requests_total{method=\"POST\",test_run_id=\"run-1\"}"),
              ElementsAre(Pair(1000, 1)));
  EXPECT_THAT(collector_.Points("ok_requests_total{test_run_id=\"run-1\"}"),
              ElementsAre(Pair(1000, 1)));
  EXPECT_EQ(aggregator_->Figures().series_per_target, std::vector<uint64_t>{4});
}

TEST_F(AggregatorTest, StarStaticLabelsAndTheRunIdLabelInSortOrder) {
  v1::StartExportRequest request = Request(1);
  v1::Target* target = request.mutable_targets(0);
  target->clear_metrics();
  target->set_include_test_run_id(true);
  target->set_test_run_id_label("TestId");  // sorts before __name__
  (*target->mutable_labels())["zone"] = "eu";
  (*target->mutable_labels())["app"] = "shop";
  v1::MetricEntry* all = target->add_metrics();
  all->set_source_metric("*");
  all->add_keep_tags("name");
  v1::MetricEntry* reqs = target->add_metrics();
  reqs->set_source_metric("http_reqs");
  reqs->set_target_metric("requests");
  Start(request);

  v1::SampleBatch batch;
  v1::MetricDeclaration* decl = batch.add_metrics();
  decl->set_name("cart_items");
  decl->set_type(v1::COUNTER);
  AddSample(&batch, "cart_items", 0.1, 2, {{"name", "x"}, {"other", "dropped"}});
  AddSample(&batch, "cart_items", 0.2, 3, {{"name", "x"}});
  AddSample(&batch, "http_reqs", 0.3, 1, {{"name", "home"}});
  AddSample(&batch, "undeclared", 0.3, 1);
  Ingest(batch);
  aggregator_->Stop();

  const std::string common = "TestId=\"run-1\",app=\"shop\"";
  EXPECT_THAT(
      collector_.Names(),
      ElementsAre(absl::StrCat("k6_cart_items_total{", common, ",name=\"x\",zone=\"eu\"}"),
                  absl::StrCat("k6_http_reqs_total{", common, ",name=\"home\",zone=\"eu\"}"),
                  absl::StrCat("requests_total{", common, ",zone=\"eu\"}")));
  EXPECT_THAT(
      collector_.Points(absl::StrCat("k6_cart_items_total{", common, ",name=\"x\",zone=\"eu\"}")),
      ElementsAre(Pair(1000, 5)));
  EXPECT_EQ(ingester_->accepted(), 3u);  // "undeclared" is unknown, "*" or not
}

TEST_F(AggregatorTest, RunIdLabelSortingBeforeTheNameIsStillInPlace) {
  v1::StartExportRequest request = Request(1);
  request.mutable_targets(0)->set_include_test_run_id(true);
  request.mutable_targets(0)->set_test_run_id_label("Run");
  Start(request);
  v1::SampleBatch batch;
  AddSample(&batch, "checks", 0.1, 1, {{"check", "ok"}});
  AddSample(&batch, "vus", 0.1, 4);
  Ingest(batch);
  aggregator_->Stop();
  // (The collector checks that each series' labels, __name__ included, are sorted.)
  EXPECT_THAT(collector_.Points("k6_vus{Run=\"run-1\"}"), ElementsAre(Pair(1000, 4)));
  EXPECT_THAT(collector_.Points("k6_checks_rate{Run=\"run-1\"}"), ElementsAre(Pair(1000, 1)));
}

TEST_F(AggregatorTest, ManyMetricsWithOneTagSetEachCountedOnItsOwn) {
  // 40 custom counters sent with the same tags, interleaved, in two batches: past the 16 that
  // a tag set scans, the stream indexes them; every metric must still get its own samples.
  v1::StartExportRequest request = Request(1);
  v1::Target* target = request.mutable_targets(0);
  target->set_include_default_metrics(false);
  target->set_include_test_run_id(false);
  constexpr int kMetrics = 40;
  for (int m = 0; m < kMetrics; ++m) {
    target->add_metrics()->set_source_metric(absl::StrCat("custom_", m));
  }
  Start(request);
  for (int round = 0; round < 2; ++round) {
    v1::SampleBatch batch;
    for (int m = 0; m < kMetrics; ++m) {
      v1::MetricDeclaration* decl = batch.add_metrics();
      decl->set_name(absl::StrCat("custom_", m));
      decl->set_type(v1::COUNTER);
    }
    // Metric m gets m + 1 samples of value 1 per round, in an interleaved order.
    for (int k = 0; k < kMetrics; ++k) {
      for (int m = k; m < kMetrics; ++m) {
        AddSample(&batch, absl::StrCat("custom_", m), 0.1 + 0.01 * k, 1, {{"scenario", "s"}});
      }
    }
    Ingest(batch);
  }
  aggregator_->Stop();
  EXPECT_EQ(ingester_->accepted(), uint64_t{kMetrics * (kMetrics + 1)});
  for (int m = 0; m < kMetrics; ++m) {
    EXPECT_THAT(collector_.Points(absl::StrCat("k6_custom_", m, "_total{}")),
                ElementsAre(Pair(1000, 2.0 * (m + 1))))
        << "custom_" << m;
  }
}

TEST_F(AggregatorTest, RejectsBadSamplesWithReasons) {
  Start(Request(1));
  v1::SampleBatch batch;
  v1::MetricDeclaration* custom = batch.add_metrics();
  custom->set_name("my_trend");
  custom->set_type(v1::TREND);
  custom->set_kind(v1::TIME);
  v1::MetricDeclaration* bogus = batch.add_metrics();
  bogus->set_name("future_metric");
  bogus->set_type(static_cast<v1::MetricType>(7));
  v1::MetricDeclaration* conflict = batch.add_metrics();
  conflict->set_name("http_reqs");
  conflict->set_type(v1::GAUGE);
  AddSample(&batch, "http_reqs", 0.1, 1);
  Ingest(batch);  // sets the watermark
  batch.Clear();
  AddSample(&batch, "not_declared", 0.1, 1);
  AddSample(&batch, "my_trend", 0.1, 5);
  AddSample(&batch, "vus", 0.1, std::nan(""));
  AddSample(&batch, "vus", 0.1, INFINITY);
  AddSample(&batch, "vus", 86400.0 * 365, 1);  // a year after the clock: too new
  AddSample(&batch, "vus", -7200, 1);          // 2 h before the newest sample: too old
  Ingest(batch);

  EXPECT_EQ(ingester_->accepted(), 2u);
  EXPECT_EQ(ingester_->rejected(), 5u);
  const Rejections& r = ingester_->rejections();
  ASSERT_EQ(r.count("unknown_metric"), 1u);
  EXPECT_EQ(r.at("unknown_metric").count, 1u);
  EXPECT_EQ(r.at("unknown_metric").example, "not_declared");
  EXPECT_EQ(r.at("invalid_value").count, 2u);
  EXPECT_EQ(r.at("too_new").count, 1u);
  EXPECT_EQ(r.at("too_old").count, 1u);
  // The declaration conflict is reported apart; it is not a rejected sample.
  const Rejections& d = ingester_->declaration_errors();
  ASSERT_EQ(d.count("invalid_type"), 1u);
  EXPECT_EQ(d.at("invalid_type").example,
            "metric declaration \"future_metric\": unknown type 7 or kind 0");
  ASSERT_EQ(d.count("type_conflict"), 1u);
  EXPECT_EQ(d.at("type_conflict").example,
            "metric declaration \"http_reqs\": declared as gauge but it is a counter");
  aggregator_->Stop();
  const AggregatorFigures f = aggregator_->Figures();
  EXPECT_EQ(f.samples_accepted, 2u);
  EXPECT_EQ(f.samples_rejected, 5u);
}

TEST_F(AggregatorTest, StaleMarkersAfterTheLastPointAtStop) {
  v1::StartExportRequest request = Request(1);
  request.mutable_targets(0)->set_include_default_metrics(false);
  request.mutable_targets(0)->set_stale_markers(true);
  Start(request);
  v1::SampleBatch batch;
  AddSample(&batch, "checks", 0.5, 1);
  AddSample(&batch, "checks", 1.5, 0);
  Ingest(batch);
  aggregator_->Stop();
  auto points = collector_.Points("k6_checks_rate{}");
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[0], std::make_pair(int64_t{1000}, 1.0));
  EXPECT_EQ(points[1], std::make_pair(int64_t{2000}, 0.0));
  EXPECT_EQ(points[2].first, 2001);
  EXPECT_TRUE(IsStaleNaN(points[2].second));
}

TEST_F(AggregatorTest, StoppedAggregatorRefusesSamples) {
  Start(Request(1));
  aggregator_->Stop();
  v1::SampleBatch batch;
  AddSample(&batch, "vus", 0.1, 1);
  EXPECT_EQ(ingester_->Ingest(batch, [] {}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(AggregatorTest, SamplesPastAWindowsEndCloseItWithoutATick) {
  Start(Request(1));
  v1::SampleBatch first;
  AddSample(&first, "checks", 0.5, 1);
  Ingest(first);
  aggregator_->AwaitFlushes();
  // The clock stands still: the next window closes when samples reach its end, 1 s.
  const absl::Time seen = absl::FromUnixNanos(clock_ns_.load());
  EXPECT_EQ(aggregator_->NextCloseTime(), seen + absl::Milliseconds(500));

  v1::SampleBatch second;
  AddSample(&second, "checks", 1.2, 0);
  Ingest(second);  // no Tick(): the sample at 1.2 s closes window [0 s, 1 s)
  ASSERT_TRUE(collector_.WaitForBatches(1));
  EXPECT_THAT(collector_.Points("k6_checks_rate{}"), ElementsAre(Pair(1000, 1.0)));
  aggregator_->AwaitFlushes();
  EXPECT_EQ(aggregator_->NextCloseTime(), seen + absl::Milliseconds(800));
}

TEST_F(AggregatorTest, WindowDelayIsFromWhenAWindowCouldCloseToTheSink) {
  clock_ns_ = kT0 + 500 * kMs;
  Start(Request(1), /*lateness=*/absl::Seconds(1));
  v1::SampleBatch batch;
  AddSample(&batch, "checks", 0.5, 1);  // seen at 0.5 s by the clock
  Ingest(batch);
  aggregator_->AwaitFlushes();
  // The next boundary is 0 s, reached with the lateness at 1 s (window [0 s, 1 s) itself may
  // close at 2 s). A tick that comes only at 2.3 s is 1.3 s late.
  EXPECT_EQ(aggregator_->NextCloseTime(), absl::FromUnixNanos(kT0 + 1000 * kMs));
  clock_ns_ = kT0 + 2300 * kMs;
  aggregator_->Tick();
  ASSERT_TRUE(collector_.WaitForBatches(1));
  aggregator_->AwaitFlushes();
  const AggregatorFigures figures = aggregator_->Figures();
  EXPECT_EQ(figures.window_delay.count(), 1u);
  EXPECT_DOUBLE_EQ(figures.window_delay.sum_seconds(), 1.3);
  EXPECT_EQ(aggregator_->NextCloseTime(), absl::FromUnixNanos(kT0 + 3000 * kMs));
}

}  // namespace
}  // namespace rwexport
