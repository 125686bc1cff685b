#include "tests/testing/prometheus.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/remote.pb.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A one-series, one-sample WriteRequest; `labels` are (name, value) pairs, __name__ first.
prometheus::WriteRequest OneSample(const std::vector<std::pair<std::string, std::string>>& labels,
                                   double value, int64_t timestamp_ms) {
  prometheus::WriteRequest request;
  prometheus::TimeSeries* series = request.add_timeseries();
  for (const auto& [name, label_value] : labels) {
    prometheus::Label* label = series->add_labels();
    label->set_name(name);
    label->set_value(label_value);
  }
  prometheus::Sample* sample = series->add_samples();
  sample->set_value(value);
  sample->set_timestamp(timestamp_ms);
  return request;
}

// Whole milliseconds: the resolution Prometheus stores.
int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

PrometheusServer& Shared() {
  absl::StatusOr<PrometheusServer*> server = PrometheusServer::Shared();
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    std::abort();
  }
  return **server;
}

TEST(PrometheusServerTest, StartsReadyOnLoopback) {
  PrometheusServer& server = Shared();
  EXPECT_THAT(server.base_url(), StartsWith("http://127.0.0.1:"));
  EXPECT_EQ(server.remote_write_url(), server.base_url() + "/api/v1/write");
  absl::StatusOr<HttpResponse> ready = server.Get("/-/ready");
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(ready->status, 200);
}

TEST(PrometheusServerTest, InstantQueryOfAConstant) {
  PrometheusServer& server = Shared();
  const absl::Time at = absl::FromUnixMillis(NowMs());
  absl::StatusOr<std::vector<QueryResult>> results = server.Query("vector(42)", at);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 1u);
  EXPECT_TRUE((*results)[0].labels.empty());
  EXPECT_EQ((*results)[0].value, 42);
  EXPECT_EQ((*results)[0].timestamp_ms, absl::ToUnixMillis(at));

  // A scalar result.
  results = server.Query("scalar(vector(2.5))", at);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 1u);
  EXPECT_EQ((*results)[0].value, 2.5);
}

TEST(PrometheusServerTest, BadPromQLIsInvalidArgument) {
  absl::StatusOr<std::vector<QueryResult>> results =
      Shared().Query("sum(", absl::FromUnixMillis(NowMs()));
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(results.status().message()), HasSubstr("parse error"));
}

TEST(PrometheusServerTest, RemoteWriteThenQueryBackExactly) {
  PrometheusServer& server = Shared();
  const int64_t ts = NowMs() - 60 * 1000;  // one minute ago
  const double value = 1234.0625;          // exact in binary and in decimal
  absl::StatusOr<HttpResponse> response = server.RemoteWrite(
      OneSample({{"__name__", "rwexport_harness_roundtrip"}, {"job", "harness"}, {"status", "200"}},
                value, ts));
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->status, 204) << response->body;

  // The stored sample, with its own timestamp, through a range selector.
  const absl::Time now = absl::FromUnixMillis(NowMs());
  absl::StatusOr<std::vector<QueryResult>> raw =
      server.Query("rwexport_harness_roundtrip[10m]", now);
  ASSERT_TRUE(raw.ok()) << raw.status();
  ASSERT_EQ(raw->size(), 1u);
  const PromLabels expected_labels = {
      {"__name__", "rwexport_harness_roundtrip"}, {"job", "harness"}, {"status", "200"}};
  EXPECT_EQ((*raw)[0].labels, expected_labels);
  EXPECT_EQ((*raw)[0].value, value);
  EXPECT_EQ((*raw)[0].timestamp_ms, ts);

  // An instant query at the sample's time sees it (timestamp = evaluation time).
  absl::StatusOr<std::vector<QueryResult>> instant =
      server.Query("rwexport_harness_roundtrip", absl::FromUnixMillis(ts));
  ASSERT_TRUE(instant.ok()) << instant.status();
  ASSERT_EQ(instant->size(), 1u);
  EXPECT_EQ((*instant)[0].value, value);
  EXPECT_EQ((*instant)[0].timestamp_ms, ts);
  // timestamp() returns the sample's own time, in seconds.
  instant = server.Query("timestamp(rwexport_harness_roundtrip)", now);
  ASSERT_TRUE(instant.ok()) << instant.status();
  ASSERT_EQ(instant->size(), 1u);
  EXPECT_EQ(std::llround((*instant)[0].value * 1000), ts);

  // Range query: a point at each step from the sample's time on (5 min lookback).
  absl::StatusOr<std::vector<RangeSeries>> range =
      server.QueryRange("rwexport_harness_roundtrip", absl::FromUnixMillis(ts),
                        absl::FromUnixMillis(ts + 20000), absl::Seconds(10));
  ASSERT_TRUE(range.ok()) << range.status();
  ASSERT_EQ(range->size(), 1u);
  EXPECT_EQ((*range)[0].labels, expected_labels);
  ASSERT_EQ((*range)[0].points.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*range)[0].points[i].timestamp_ms, ts + i * 10000);
    EXPECT_EQ((*range)[0].points[i].value, value);
  }

  absl::StatusOr<std::vector<PromLabels>> series =
      server.Series("{__name__=\"rwexport_harness_roundtrip\"}");
  ASSERT_TRUE(series.ok()) << series.status();
  ASSERT_EQ(series->size(), 1u);
  EXPECT_EQ((*series)[0], expected_labels);
}

// Measures what a fresh TSDB accepts (the finding written in prometheus.h).
TEST(PrometheusServerTest, OutOfBoundsLimitsOfAFreshServer) {
  constexpr int64_t kMinute = 60 * 1000;
  const int64_t now = NowMs();
  {
    // Recent first: afterwards nothing older than (newest - 1h) is accepted.
    absl::StatusOr<std::unique_ptr<PrometheusServer>> server = PrometheusServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    auto write = [&](const std::string& name, int64_t ts) {
      absl::StatusOr<HttpResponse> r =
          (*server)->RemoteWrite(OneSample({{"__name__", name}}, 1, ts));
      EXPECT_TRUE(r.ok()) << r.status();
      return r.ok() ? *r : HttpResponse{};
    };
    EXPECT_EQ(write("oob_recent", now - kMinute).status, 204);
    HttpResponse old = write("oob_two_hours", now - 120 * kMinute);
    EXPECT_EQ(old.status, 400);
    EXPECT_THAT(old.body, HasSubstr("out of bounds"));
    EXPECT_EQ(write("oob_61_minutes", now - kMinute - 61 * kMinute).status, 400);
    EXPECT_EQ(write("oob_59_minutes", now - kMinute - 59 * kMinute).status, 204);
    // Per series: older than its last sample is out of order.
    HttpResponse out_of_order = write("oob_recent", now - 2 * kMinute);
    EXPECT_EQ(out_of_order.status, 400);
    EXPECT_THAT(out_of_order.body, HasSubstr("out of order"));

    // One rejected sample fails the whole request: the good one is not stored either.
    prometheus::WriteRequest mixed = OneSample({{"__name__", "oob_mixed_good"}}, 1, now);
    mixed.MergeFrom(OneSample({{"__name__", "oob_mixed_bad"}}, 1, now - 120 * kMinute));
    absl::StatusOr<HttpResponse> r = (*server)->RemoteWrite(mixed);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 400);
    absl::StatusOr<std::vector<QueryResult>> good =
        (*server)->Query("oob_mixed_good[10m]", absl::FromUnixMillis(now + 1000));
    ASSERT_TRUE(good.ok()) << good.status();
    EXPECT_TRUE(good->empty());
  }
  {
    // Old first: an empty head takes a first sample of any age.
    absl::StatusOr<std::unique_ptr<PrometheusServer>> server = PrometheusServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    absl::StatusOr<HttpResponse> r =
        (*server)->RemoteWrite(OneSample({{"__name__", "oob_old_first"}}, 1, now - 120 * kMinute));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 204) << r->body;
    r = (*server)->RemoteWrite(OneSample({{"__name__", "oob_then_recent"}}, 1, now - kMinute));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 204) << r->body;
  }
}

TEST(PrometheusServerTest, StartFailureCarriesTheLog) {
  PrometheusServer::Options options;
  options.extra_flags = {"--no-such-flag"};
  absl::StatusOr<std::unique_ptr<PrometheusServer>> server = PrometheusServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("no-such-flag"));
}

}  // namespace
}  // namespace rwexport
