// Trends as Prometheus native histograms, end to end: gRPC API -> aggregation -> remote write
// -> a real Prometheus started with --enable-feature=native-histograms -> PromQL. The counts,
// sums and quantiles Prometheus answers are compared with an exact computation over the raw
// samples made here.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

// Bucket width of schema 7, 2^(1/128) - 1: the bound on histogram_quantile's relative error
// against the nearest-rank quantile (see lib/aggregate/native_histogram.h for the argument).
const double kBound = std::exp2(1.0 / 128) - 1;  // 0.54299 %

class NativeHistogramTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PrometheusServer::Options options;
    options.extra_flags.push_back("--enable-feature=native-histograms");
    absl::StatusOr<std::unique_ptr<PrometheusServer>> started = PrometheusServer::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    prometheus_ = started->release();
  }
  static void TearDownTestSuite() {
    delete prometheus_;
    prometheus_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(prometheus_, nullptr);
    stub_ = server_.NewStub();
  }

  v1::StartExportRequest Request(const std::string& run) {
    v1::StartExportRequest request;
    request.set_test_run_id(run);
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(prometheus_->remote_write_url());
    target->set_include_test_run_id(true);
    target->set_include_default_metrics(false);
    target->set_resample_rate(1);
    target->set_native_histograms(true);
    target->add_metrics()->set_source_metric("http_req_duration");
    target->add_metrics()->set_source_metric("payload_delta");
    return request;
  }

  std::string StartExport(const v1::StartExportRequest& request) {
    absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->export_id() : "";
  }

  v1::StopExportResponse StopExport(const std::string& id) {
    absl::StatusOr<v1::StopExportResponse> stopped = StopExportRpc(*stub_, id);
    EXPECT_TRUE(stopped.ok()) << stopped.status();
    return stopped.ok() ? *stopped : v1::StopExportResponse();
  }

  // Streams `values` of `metric` spread evenly over the 4 s before now (a few 1 s windows).
  void Stream(const std::string& id, const std::string& metric, const std::vector<double>& values,
              bool declare_plain_trend = false) {
    SampleStream stream(stub_.get(), id, 500);
    if (declare_plain_trend) stream.Declare(metric, MetricType::kTrend, ValueKind::kDefault);
    const int64_t start = absl::ToUnixNanos(absl::Now() - absl::Seconds(4));
    for (size_t i = 0; i < values.size(); ++i) {
      const int64_t ts = start + static_cast<int64_t>(i) * 4000000000 / values.size();
      stream.Add(metric, {}, ts, values[i]);
    }
    absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->accepted(), values.size());
    EXPECT_EQ(response->rejected(), 0u);
  }

  // The single float value of an instant query, evaluated a minute ahead so the newest point
  // is in range.
  double QueryOne(const std::string& promql) {
    absl::StatusOr<std::vector<QueryResult>> result =
        prometheus_->Query(promql, absl::Now() + absl::Minutes(1));
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok() || result->size() != 1) {
      ADD_FAILURE() << promql << ": expected one result";
      return std::nan("");
    }
    return result->front().value;
  }

  static PrometheusServer* prometheus_;
  TestServer server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

PrometheusServer* NativeHistogramTest::prometheus_ = nullptr;

// Latencies in ms: log-normal around 120 ms, 2000 of them (deterministic).
std::vector<double> Latencies(int n) {
  std::mt19937_64 rng(2024);
  std::lognormal_distribution<double> dist(std::log(120.0), 0.7);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(dist(rng));
  return out;
}

TEST_F(NativeHistogramTest, CountSumAndQuantilesMatchTheRawSamples) {
  const std::string run = "nh-quantiles";
  const std::string id = StartExport(Request(run));
  ASSERT_FALSE(id.empty());
  const std::vector<double> ms = Latencies(2000);
  Stream(id, "http_req_duration", ms);
  const v1::StopExportResponse stopped = StopExport(id);
  ASSERT_EQ(stopped.targets_size(), 1);
  EXPECT_EQ(stopped.targets(0).points_dropped(), 0u) << stopped.targets(0).last_error();
  EXPECT_EQ(stopped.targets(0).failures(), 0u) << stopped.targets(0).last_error();
  EXPECT_EQ(stopped.targets(0).series(), 1u);

  // What the exporter sends: seconds, converted as value * 1e-3.
  std::vector<double> seconds;
  double sum = 0;
  for (double v : ms) {
    seconds.push_back(v * 1e-3);
    sum += v * 1e-3;
  }
  std::sort(seconds.begin(), seconds.end());
  const std::string series =
      absl::StrCat("k6_http_req_duration_seconds{test_run_id=\"", run, "\"}");

  EXPECT_EQ(QueryOne("histogram_count(" + series + ")"), 2000);
  EXPECT_NEAR(QueryOne("histogram_sum(" + series + ")"), sum, 1e-12 * sum);

  for (double q : {0.5, 0.9, 0.99}) {
    const double got = QueryOne(absl::StrCat("histogram_quantile(", q, ", ", series, ")"));
    // The nearest-rank quantile: the sample of rank ceil(q * n) (1-based).
    const double rank = std::max(1.0, std::ceil(q * seconds.size()));
    const double exact = seconds[static_cast<size_t>(rank) - 1];
    EXPECT_LE(std::fabs(got - exact), kBound * exact) << "q=" << q << " exact=" << exact;
    // Sharper: Prometheus's answer lies in the schema-7 bucket of that sample,
    // (2^((i-1)/128), 2^(i/128)] with i = ceil(log2(exact) * 128).
    const double i = std::ceil(std::log2(exact) * 128);
    EXPECT_GE(got, std::exp2((i - 1) / 128) * (1 - 1e-12)) << "q=" << q;
    EXPECT_LE(got, std::exp2(i / 128) * (1 + 1e-12)) << "q=" << q;
  }

  // The stored histogram itself: schema 7 buckets, and in each exactly the samples whose
  // values it covers.
  absl::StatusOr<std::vector<QueryResult>> raw =
      prometheus_->Query(series, absl::Now() + absl::Minutes(1));
  ASSERT_TRUE(raw.ok()) << raw.status();
  ASSERT_EQ(raw->size(), 1u);
  ASSERT_TRUE(raw->front().histogram.has_value());
  const PromHistogram& h = *raw->front().histogram;
  EXPECT_EQ(h.count, 2000);
  ASSERT_FALSE(h.buckets.empty());
  double in_buckets = 0;
  for (const PromHistogram::Bucket& b : h.buckets) {
    EXPECT_NEAR(b.upper / b.lower, std::exp2(1.0 / 128), 1e-12);
    const auto first = std::upper_bound(seconds.begin(), seconds.end(), b.lower);
    const auto last = std::upper_bound(seconds.begin(), seconds.end(), b.upper);
    EXPECT_EQ(b.count, last - first) << "(" << b.lower << ", " << b.upper << "]";
    in_buckets += b.count;
  }
  EXPECT_EQ(in_buckets, 2000);
}

TEST_F(NativeHistogramTest, HistogramsAreCumulativeOverWindows) {
  const std::string run = "nh-cumulative";
  const std::string id = StartExport(Request(run));
  const std::vector<double> ms = Latencies(600);
  Stream(id, "http_req_duration", ms);
  const v1::StopExportResponse stopped = StopExport(id);
  ASSERT_EQ(stopped.targets_size(), 1);
  EXPECT_EQ(stopped.targets(0).points_dropped(), 0u);

  // Every stored point, with its own timestamp: one per 1 s window, counts only growing,
  // ending with all samples.
  absl::StatusOr<std::vector<QueryResult>> stored = prometheus_->Query(
      absl::StrCat("k6_http_req_duration_seconds{test_run_id=\"", run, "\"}[10m]"),
      absl::Now() + absl::Minutes(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_GE(stored->size(), 4u);  // samples over 4 s
  EXPECT_EQ(stored->size(), stopped.targets(0).points_sent());
  double previous = 0;
  int64_t previous_ts = 0;
  for (const QueryResult& r : *stored) {
    ASSERT_TRUE(r.histogram.has_value());
    EXPECT_GE(r.histogram->count, previous);
    EXPECT_EQ(r.timestamp_ms % 1000, 0);  // window ends
    EXPECT_GT(r.timestamp_ms, previous_ts);
    previous = r.histogram->count;
    previous_ts = r.timestamp_ms;
  }
  EXPECT_EQ(previous, 600);
  // The counter-histogram idiom works on them: a quantile of the rate over the run.
  const double p90 = QueryOne(
      absl::StrCat("histogram_quantile(0.9, rate(k6_http_req_duration_seconds{test_run_id=\"", run,
                   "\"}[10m]))"));
  EXPECT_GT(p90, 0.05);
  EXPECT_LT(p90, 1.0);
}

TEST_F(NativeHistogramTest, PlainTrendsKeepZerosAndNegativeValues) {
  const std::string run = "nh-plain";
  const std::string id = StartExport(Request(run));
  std::vector<double> values;
  double sum = 0;
  for (int i = 0; i < 300; ++i) {
    const double v = (i % 3 == 0) ? 0 : (i % 3 == 1 ? i : -i);  // integers: the sum is exact
    values.push_back(v);
    sum += v;
  }
  Stream(id, "payload_delta", values, /*declare_plain_trend=*/true);
  const v1::StopExportResponse stopped = StopExport(id);
  EXPECT_EQ(stopped.targets(0).points_dropped(), 0u) << stopped.targets(0).last_error();

  const std::string series = absl::StrCat("k6_payload_delta{test_run_id=\"", run, "\"}");
  EXPECT_EQ(QueryOne("histogram_count(" + series + ")"), 300);
  EXPECT_EQ(QueryOne("histogram_sum(" + series + ")"), sum);
  absl::StatusOr<std::vector<QueryResult>> raw =
      prometheus_->Query(series, absl::Now() + absl::Minutes(1));
  ASSERT_TRUE(raw.ok()) << raw.status();
  ASSERT_EQ(raw->size(), 1u);
  ASSERT_TRUE(raw->front().histogram.has_value());
  // 100 zeros in the zero bucket [-2^-128, 2^-128], 100 values below it, 100 above.
  double zeros = 0, negative = 0, positive = 0;
  for (const PromHistogram::Bucket& b : raw->front().histogram->buckets) {
    if (b.lower < 0 && b.upper > 0) {
      zeros += b.count;
      EXPECT_EQ(b.upper, std::ldexp(1.0, -128));
    } else if (b.upper <= 0) {
      negative += b.count;
    } else {
      positive += b.count;
    }
  }
  EXPECT_EQ(zeros, 100);
  EXPECT_EQ(negative, 100);
  EXPECT_EQ(positive, 100);
}

TEST_F(NativeHistogramTest, StaleMarkersEndTheSeries) {
  const std::string run = "nh-stale";
  v1::StartExportRequest request = Request(run);
  request.mutable_targets(0)->set_stale_markers(true);
  const std::string id = StartExport(request);
  Stream(id, "http_req_duration", Latencies(100));
  const v1::StopExportResponse stopped = StopExport(id);
  EXPECT_EQ(stopped.targets(0).points_dropped(), 0u) << stopped.targets(0).last_error();
  EXPECT_EQ(stopped.targets(0).failures(), 0u) << stopped.targets(0).last_error();

  const std::string series =
      absl::StrCat("k6_http_req_duration_seconds{test_run_id=\"", run, "\"}");
  // Stored, but no longer current: an instant query after the marker finds nothing.
  absl::StatusOr<std::vector<QueryResult>> stored =
      prometheus_->Query(series + "[10m]", absl::Now() + absl::Minutes(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_FALSE(stored->empty());
  EXPECT_EQ(stored->back().histogram->count, 100);
  absl::StatusOr<std::vector<QueryResult>> now =
      prometheus_->Query(series, absl::Now() + absl::Minutes(1));
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_TRUE(now->empty());
  // Before the marker the series is there.
  absl::StatusOr<std::vector<QueryResult>> before =
      prometheus_->Query(series, absl::FromUnixMillis(stored->back().timestamp_ms));
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->size(), 1u);
}

}  // namespace
}  // namespace rwexport
