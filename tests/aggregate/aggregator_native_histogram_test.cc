// Trends exported as native histograms by the Aggregator (targets with nativeHistograms):
// series names, cumulative points, repeats over empty windows, stale markers.
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/ingest/stream_ingester.h"
#include "tests/testing/ingest.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Buckets = std::vector<std::pair<int, uint64_t>>;

constexpr int64_t kT0 = int64_t{1700000000} * 1000000000;  // window-aligned
constexpr int64_t kT0Ms = kT0 / 1000000;

// Expands spans + deltas into (index, count) pairs of the non-empty buckets.
Buckets Expand(const std::vector<HistogramSpan>& spans, const std::vector<int64_t>& deltas) {
  Buckets out;
  int64_t index = 0;
  int64_t count = 0;
  size_t d = 0;
  for (const HistogramSpan& span : spans) {
    index += span.offset;
    for (uint32_t k = 0; k < span.length; ++k, ++index) {
      count += deltas.at(d++);
      if (count != 0) out.emplace_back(static_cast<int>(index), static_cast<uint64_t>(count));
    }
  }
  EXPECT_EQ(d, deltas.size());
  return out;
}

// ceil(log2(v) * 128): the schema-7 bucket of v, by Prometheus's definition (the values used
// below are not near a boundary).
int Bucket7(double v) { return static_cast<int>(std::ceil(std::log2(v) * 128)); }

class Collector {
 public:
  void Add(size_t target, PointBatch batch) {
    MutexLock lock(&mu_);
    for (SeriesPoints& sp : batch.series) {
      Entry& e = series_[sp.series->ToString(sp.name)];
      e.points.insert(e.points.end(), sp.points.begin(), sp.points.end());
      e.histograms.insert(e.histograms.end(), sp.histograms.begin(), sp.histograms.end());
    }
  }
  std::vector<HistogramPoint> Histograms(const std::string& series) {
    MutexLock lock(&mu_);
    return series_[series].histograms;
  }
  std::vector<Point> Points(const std::string& series) {
    MutexLock lock(&mu_);
    return series_[series].points;
  }
  std::vector<std::string> Names() {
    MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [name, e] : series_) out.push_back(name);
    return out;
  }

 private:
  struct Entry {
    std::vector<Point> points;
    std::vector<HistogramPoint> histograms;
  };
  Mutex mu_;
  std::map<std::string, Entry> series_ ABSL_GUARDED_BY(mu_);
};

class AggregatorNativeHistogramTest : public ::testing::Test {
 protected:
  void Start(const v1::StartExportRequest& request) {
    absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
    ASSERT_TRUE(config.ok()) << config.status();
    AggregatorOptions options;
    options.lateness = absl::ZeroDuration();
    options.clock = [] { return absl::FromUnixNanos(kT0) + absl::Hours(1); };
    aggregator_ = Aggregator::Create(
        *std::move(config), &pool_,
        [this](size_t target, PointBatch batch) { collector_.Add(target, std::move(batch)); },
        options);
    ingester_ = std::make_unique<StreamIngester>(aggregator_);
  }

  static v1::StartExportRequest Request() {
    v1::StartExportRequest request;
    request.set_test_run_id("run-1");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
    target->set_resample_rate(2);
    target->set_include_default_metrics(false);
    target->set_native_histograms(true);
    target->add_metrics()->set_source_metric("http_req_duration");
    return request;
  }

  void Ingest(const v1::SampleBatch& batch) { ASSERT_TRUE(IngestAndWait(*ingester_, batch).ok()); }

  static void AddSample(v1::SampleBatch* batch, const std::string& metric, double offset_s,
                        double value) {
    v1::Sample* s = batch->add_samples();
    s->set_metric(metric);
    s->set_time_unix_nano(kT0 + static_cast<int64_t>(std::llround(offset_s * 1e9)));
    s->set_value(value);
  }

  WorkerPool pool_{2};
  Collector collector_;
  std::shared_ptr<Aggregator> aggregator_;
  std::unique_ptr<StreamIngester> ingester_;
};

TEST_F(AggregatorNativeHistogramTest, OneCumulativeHistogramSeriesPerTrend) {
  Start(Request());
  v1::SampleBatch batch;
  // Window [0, 2 s): 100 ms, 200 ms, 200 ms. Window [2, 4 s): 400 ms. Window [4, 6 s): none.
  // Window [6, 8 s): 100 ms (its sample moves the watermark past 6 s).
  AddSample(&batch, "http_req_duration", 0.1, 100);
  AddSample(&batch, "http_req_duration", 0.5, 200);
  AddSample(&batch, "http_req_duration", 1.5, 200);
  AddSample(&batch, "http_req_duration", 2.5, 400);
  AddSample(&batch, "http_req_duration", 6.5, 100);
  Ingest(batch);
  aggregator_->Stop();

  // One series, in seconds, no per-statistic gauges.
  EXPECT_THAT(collector_.Names(), ElementsAre("k6_http_req_duration_seconds{}"));
  const std::vector<HistogramPoint> h = collector_.Histograms("k6_http_req_duration_seconds{}");
  EXPECT_THAT(collector_.Points("k6_http_req_duration_seconds{}"), IsEmpty());
  // Windows ending at 2, 4, 6 (repeated: no samples) and 8 s.
  ASSERT_EQ(h.size(), 4u);
  const int b100 = Bucket7(0.1), b200 = Bucket7(0.2), b400 = Bucket7(0.4);
  EXPECT_EQ(h[0].timestamp_ms - kT0Ms, 2000);
  EXPECT_EQ(h[0].count, 3u);
  EXPECT_DOUBLE_EQ(h[0].sum, 0.5);
  EXPECT_EQ(h[0].schema, 7);
  EXPECT_EQ(h[0].zero_count, 0u);
  EXPECT_EQ(h[0].reset_hint, HistogramPoint::ResetHint::kUnknown);
  EXPECT_THAT(Expand(h[0].positive_spans, h[0].positive_deltas),
              ElementsAre(std::make_pair(b100, 1u), std::make_pair(b200, 2u)));
  EXPECT_TRUE(h[0].negative_spans.empty());

  EXPECT_EQ(h[1].timestamp_ms - kT0Ms, 4000);
  EXPECT_EQ(h[1].count, 4u);
  EXPECT_DOUBLE_EQ(h[1].sum, 0.9);
  EXPECT_THAT(
      Expand(h[1].positive_spans, h[1].positive_deltas),
      ElementsAre(std::make_pair(b100, 1u), std::make_pair(b200, 2u), std::make_pair(b400, 1u)));

  EXPECT_EQ(h[2].timestamp_ms - kT0Ms, 6000);
  EXPECT_EQ(h[2].count, 4u);
  EXPECT_EQ(Expand(h[2].positive_spans, h[2].positive_deltas),
            Expand(h[1].positive_spans, h[1].positive_deltas));

  EXPECT_EQ(h[3].timestamp_ms - kT0Ms, 8000);
  EXPECT_EQ(h[3].count, 5u);
  EXPECT_DOUBLE_EQ(h[3].sum, 1.0);
  EXPECT_THAT(
      Expand(h[3].positive_spans, h[3].positive_deltas),
      ElementsAre(std::make_pair(b100, 2u), std::make_pair(b200, 2u), std::make_pair(b400, 1u)));
}

TEST_F(AggregatorNativeHistogramTest, NamesForTimeAndPlainTrendsAndTargetMetrics) {
  v1::StartExportRequest request = Request();
  v1::MetricEntry* renamed = request.mutable_targets(0)->add_metrics();
  renamed->set_source_metric("http_req_waiting");
  renamed->set_target_metric("waiting_seconds");  // already in seconds: not doubled
  v1::MetricEntry* renamed2 = request.mutable_targets(0)->add_metrics();
  renamed2->set_source_metric("http_req_sending");
  renamed2->set_target_metric("sending");
  request.mutable_targets(0)->add_metrics()->set_source_metric("queue_depth");
  request.mutable_targets(0)->add_metrics()->set_source_metric("http_reqs");
  Start(request);
  v1::SampleBatch batch;
  v1::MetricDeclaration* decl = batch.add_metrics();
  decl->set_name("queue_depth");
  decl->set_type(v1::TREND);
  decl->set_kind(v1::DEFAULT);
  AddSample(&batch, "http_req_duration", 0.1, 100);
  AddSample(&batch, "http_req_waiting", 0.1, 50);
  AddSample(&batch, "http_req_sending", 0.1, 2);
  AddSample(&batch, "queue_depth", 0.1, 3);
  AddSample(&batch, "queue_depth", 0.2, 0);
  AddSample(&batch, "queue_depth", 0.3, -2);
  AddSample(&batch, "http_reqs", 0.1, 1);
  Ingest(batch);
  aggregator_->Stop();

  EXPECT_THAT(collector_.Names(), UnorderedElementsAre("k6_http_req_duration_seconds{}",
                                                       "waiting_seconds{}", "sending_seconds{}",
                                                       "k6_queue_depth{}", "k6_http_reqs_total{}"));
  // Counters stay floats.
  EXPECT_EQ(collector_.Points("k6_http_reqs_total{}").size(), 1u);
  EXPECT_THAT(collector_.Histograms("k6_http_reqs_total{}"), IsEmpty());
  // A plain trend keeps its unit, zeros and negative values.
  const std::vector<HistogramPoint> q = collector_.Histograms("k6_queue_depth{}");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].count, 3u);
  EXPECT_EQ(q[0].sum, 1.0);
  EXPECT_EQ(q[0].zero_count, 1u);
  EXPECT_THAT(Expand(q[0].positive_spans, q[0].positive_deltas),
              ElementsAre(std::make_pair(Bucket7(3), 1u)));
  EXPECT_THAT(Expand(q[0].negative_spans, q[0].negative_deltas),
              ElementsAre(std::make_pair(128, 1u)));  // |-2| = 2^1: bucket 128
  const std::vector<HistogramPoint> w = collector_.Histograms("waiting_seconds{}");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_DOUBLE_EQ(w[0].sum, 0.05);
}

TEST_F(AggregatorNativeHistogramTest, StaleMarkersAreHistogramsAfterTheLastPoint) {
  v1::StartExportRequest request = Request();
  request.mutable_targets(0)->set_stale_markers(true);
  Start(request);
  v1::SampleBatch batch;
  AddSample(&batch, "http_req_duration", 0.1, 100);
  AddSample(&batch, "http_req_duration", 2.1, 300);
  Ingest(batch);
  aggregator_->Stop();
  const std::vector<HistogramPoint> h = collector_.Histograms("k6_http_req_duration_seconds{}");
  EXPECT_THAT(collector_.Points("k6_http_req_duration_seconds{}"), IsEmpty());
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].timestamp_ms - kT0Ms, 2000);
  EXPECT_EQ(h[1].timestamp_ms - kT0Ms, 4000);
  EXPECT_EQ(h[1].count, 2u);
  EXPECT_TRUE(IsStaleHistogramPoint(h[2]));
  EXPECT_EQ(h[2].timestamp_ms - kT0Ms, 4001);
  EXPECT_EQ(h[2].count, 0u);
}

TEST_F(AggregatorNativeHistogramTest, WithoutTheOptionTrendsStayGaugesPerStatistic) {
  v1::StartExportRequest request = Request();
  request.mutable_targets(0)->set_native_histograms(false);
  Start(request);
  v1::SampleBatch batch;
  AddSample(&batch, "http_req_duration", 0.1, 100);
  Ingest(batch);
  aggregator_->Stop();
  EXPECT_EQ(collector_.Names().size(), 8u);  // min max avg med p90 p95 p99 count
  EXPECT_THAT(collector_.Histograms("k6_http_req_duration_p99{}"), IsEmpty());
  EXPECT_EQ(collector_.Points("k6_http_req_duration_p99{}").size(), 1u);
}

}  // namespace
}  // namespace rwexport
