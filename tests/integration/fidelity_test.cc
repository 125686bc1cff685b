// Fidelity acceptance tests: what lands in a real Prometheus is exactly what an independent
// computation over the raw k6 result file says it must be (tests/testing/reference_aggregation,
// which shares no code with lib/), point for point; and late, too old, too new and invalid
// samples are accounted for exactly.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/client/replay.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/figures.h"
#include "tests/testing/influx_writer.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/reference_aggregation.h"
#include "tests/testing/test_server.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using reference::RefConfig;
using reference::RefExport;
using reference::RefLabels;
using reference::RefOutput;
using reference::RefPoint;
using reference::RefPoints;
using reference::RefRun;
using reference::RefStat;
using reference::RefTags;
using reference::RefType;

constexpr int kResampleRateS = 2;
// The server's default lateness allowance (README: --lateness 2s).
constexpr int64_t kLatenessNs = 2000000000;

// |a - b| within `rel` of the larger magnitude (0 == 0).
bool WithinRelative(double a, double b, double rel) {
  if (a == b) return true;
  return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b));
}

std::string FindTag(const RefTags& tags, const std::string& key) {
  for (const auto& [k, v] : tags) {
    if (k == key) return v;
  }
  return "";
}

std::string Describe(const reference::RefPointKey& key) {
  return absl::StrCat(reference::FormatLabels(key.first), " @", key.second);
}

// The export configuration of the fidelity tests, as the API request and as the reference's
// mirror of it.
v1::StartExportRequest FidelityRequest(const std::string& url, const std::string& run) {
  v1::StartExportRequest request;
  request.set_test_run_id(run);
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(url);
  target->set_resample_rate(kResampleRateS);
  target->set_include_test_run_id(true);
  target->set_include_default_metrics(true);
  v1::MetricEntry* post_ok = target->add_metrics();
  post_ok->set_source_metric("http_req_duration{status=~\"2..\",method=\"POST\"}");
  post_ok->set_target_metric("k6_post_ok_duration");
  for (const char* tag : {"name", "method", "status"}) post_ok->add_keep_tags(tag);
  v1::MetricEntry* reqs = target->add_metrics();
  reqs->set_source_metric("http_reqs");
  reqs->set_target_metric("k6_reqs_by_name");
  for (const char* tag : {"name", "method", "status"}) reqs->add_keep_tags(tag);
  for (const char* name :
       {"checks", "http_req_failed", "vus_max", "iteration_duration", "http_req_waiting"}) {
    target->add_metrics()->set_source_metric(name);
  }
  return request;
}

RefConfig FidelityReference(const std::string& run, int64_t shift_ns) {
  RefConfig config;
  config.resample_rate_s = kResampleRateS;
  config.test_run_id = run;
  config.shift_ns = shift_ns;
  // status=~"2.." (fully anchored: three characters, the first '2', none a newline) and
  // method="POST"; an absent tag is the empty value.
  auto post_ok = [](const RefTags& tags) {
    const std::string status = FindTag(tags, "status");
    return status.size() == 3 && status[0] == '2' && status.find('\n') == std::string::npos &&
           FindTag(tags, "method") == "POST";
  };
  config.outputs.push_back(
      {"http_req_duration", post_ok, "k6_post_ok_duration", {"name", "method", "status"}});
  config.outputs.push_back({"http_reqs", nullptr, "k6_reqs_by_name", {"name", "method", "status"}});
  for (const char* name :
       {"checks", "http_req_failed", "vus_max", "iteration_duration", "http_req_waiting",
        "data_sent", "data_received", "http_req_duration", "http_reqs", "iterations", "vus"}) {
    config.outputs.push_back({name, nullptr, absl::StrCat("k6_", name), {}});
  }
  return config;
}

// A server whose export clock stands still at `frozen`: windows close only on what the
// samples' own timestamps say (plus StopExport), never because the test machine was slow.
ExportOptions FrozenClock(absl::Time frozen) {
  ExportOptions options;
  options.aggregator.clock = [frozen] { return frozen; };
  return options;
}

// The figures k6 printed for the run, found in the reference's points: final counter totals,
// the request count summed over windows, and the duration extremes (in seconds).
void ExpectK6SummaryFigures(const RefExport& expected) {
  std::map<std::string, double> last_value;  // by __name__, series without kept labels
  std::map<std::string, int64_t> last_ts;
  double count_sum = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -min;
  for (const auto& [key, point] : expected.points) {
    if (key.first.size() != 2) continue;  // __name__ and test_run_id only
    const std::string& name = key.first.at("__name__");
    if (key.second >= last_ts[name]) {
      last_ts[name] = key.second;
      last_value[name] = point.value;
    }
    if (name == "k6_http_req_duration_count") count_sum += point.value;
    if (name == "k6_http_req_duration_min") min = std::min(min, point.value);
    if (name == "k6_http_req_duration_max") max = std::max(max, point.value);
  }
  EXPECT_EQ(last_value["k6_http_reqs_total"], 60);
  EXPECT_EQ(last_value["k6_iterations_total"], 20);
  EXPECT_EQ(last_value["k6_data_received_total"], 42039);
  EXPECT_EQ(last_value["k6_data_sent_total"], 15980);
  EXPECT_EQ(count_sum, 60);
  EXPECT_DOUBLE_EQ(min, 0.008657042);
  EXPECT_DOUBLE_EQ(max, 0.218508);
}

class FidelityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<PrometheusServer*> prometheus = PrometheusServer::Shared();
    ASSERT_TRUE(prometheus.ok()) << prometheus.status();
    prometheus_ = *prometheus;
  }

  void SetUp() override { ASSERT_NE(prometheus_, nullptr); }

  // How the samples reach the server: `rwexport replay` over gRPC, or k6's InfluxDB output
  // (tests/testing/influx_writer) through the InfluxDB write API.
  enum class Feed { kGrpcReplay, kK6Influx };

  // Replays `file` into a fresh export at a fixed `now`, reads every stored point back and
  // compares it with the reference computed from `run` (the same file, read independently).
  void ReplayAndCompare(const std::string& file, const RefRun& run, const std::string& test_run,
                        Feed feed = Feed::kGrpcReplay) {
    // Fixed phase: the run ends 1 s into a window, so the windows (and the point counts) are
    // the same on every run; a little before the wall clock, as a live run would be.
    const int64_t window_ms = int64_t{kResampleRateS} * 1000;
    const absl::Time now =
        absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()) / window_ms * window_ms - 1000);
    TestServerOptions server_options;
    server_options.exports = FrozenClock(now);
    if (feed == Feed::kK6Influx) server_options.influx = InfluxEndpointOptions();
    TestServer server(server_options);
    std::unique_ptr<v1::ExportService::Stub> stub = server.NewStub();
    const int64_t shift_ns = absl::ToUnixNanos(now) - run.LastTimestampNs();

    absl::StatusOr<RefExport> expected =
        reference::ComputeExpectedExport(run, FidelityReference(test_run, shift_ns));
    ASSERT_TRUE(expected.ok()) << expected.status();

    // The export clock is frozen at `now` (= the shifted last sample): a timer flush closes
    // windows only up to the window of the newest sample, which the final flush fills
    // repeating series up to anyway, so the points do not depend on when the timer ran.

    // The reference agrees with k6's own figures for the run (testdata SOURCES.md).
    ExpectK6SummaryFigures(*expected);

    grpc::ClientContext context;
    v1::StartExportResponse started;
    grpc::Status status = stub->StartExport(
        &context, FidelityRequest(prometheus_->remote_write_url(), test_run), &started);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(started.targets_size(), 1);
    EXPECT_EQ(started.targets(0).skipped_metrics_size(), 0);

    if (feed == Feed::kGrpcReplay) {
      ReplayOptions options;
      options.now = now;
      absl::StatusOr<ReplayResult> replay =
          ReplayK6File(stub.get(), started.export_id(), file, options);
      ASSERT_TRUE(replay.ok()) << replay.status();
      EXPECT_EQ(replay->shift_ns, shift_ns);
      EXPECT_EQ(replay->read.samples, static_cast<int64_t>(run.samples.size()));
      EXPECT_EQ(replay->read.errors, 0);
      EXPECT_EQ(replay->samples_sent, run.samples.size());
      EXPECT_EQ(replay->response.accepted(), run.samples.size());
      EXPECT_EQ(replay->response.rejected(), 0u);
    } else {
      absl::StatusOr<K6InfluxWrite> written =
          WriteRunAsK6(server.influx_url(), test_run, run, shift_ns);
      ASSERT_TRUE(written.ok()) << written.status();
      EXPECT_EQ(written->lines, run.samples.size());
      ASSERT_GE(written->answers.size(), 2u);
      // CREATE DATABASE answered as InfluxDB does; then every write 204, nothing rejected.
      EXPECT_EQ(written->answers[0].status, 200) << written->answers[0].body;
      EXPECT_EQ(written->answers[0].body, "{\"results\":[{\"statement_id\":0}]}");
      for (size_t i = 1; i < written->answers.size(); ++i) {
        EXPECT_EQ(written->answers[i].status, 204) << i << ": " << written->answers[i].body;
        EXPECT_EQ(written->answers[i].headers["x-influxdb-version"], InfluxEndpoint::kVersion);
      }
      std::cout << "k6 InfluxDB output: " << written->lines << " lines in "
                << written->answers.size() - 1 << " writes\n";
    }

    // Close what the (frozen) export clock allows now, as the timer would: the windows before
    // the last two then leave in a flush of their own, the rest at StopExport.
    std::shared_ptr<Export> exp = server.registry().Find(started.export_id());
    ASSERT_NE(exp, nullptr);
    exp->aggregator()->Tick();

    grpc::ClientContext stop_context;
    v1::StopExportRequest stop;
    stop.set_export_id(started.export_id());
    v1::StopExportResponse stopped;
    status = stub->StopExport(&stop_context, stop, &stopped);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(stopped.samples_accepted(), 802u);
    EXPECT_EQ(stopped.samples_rejected(), 0u);
    ASSERT_EQ(stopped.targets_size(), 1);
    const v1::TargetFigures& figures = stopped.targets(0);
    EXPECT_EQ(figures.series(), expected->aggregation_series);
    EXPECT_EQ(figures.points_dropped(), 0u);
    EXPECT_EQ(figures.failures(), 0u);
    EXPECT_EQ(figures.dropped_by_reason_size(), 0);
    EXPECT_EQ(figures.last_error(), "");
    EXPECT_EQ(figures.points_sent(), expected->points.size());
    int64_t highest_ms = 0;
    for (const auto& [key, point] : expected->points) highest_ms = std::max(highest_ms, key.second);
    EXPECT_EQ(figures.highest_timestamp_ms(), highest_ms);

    // Every stored point of this test run, with its own timestamp.
    absl::StatusOr<std::vector<QueryResult>> stored = prometheus_->Query(
        absl::StrCat("{test_run_id=\"", test_run, "\"}[2h]"), now + absl::Minutes(1));
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->size(), figures.points_sent());

    std::map<reference::RefPointKey, double> actual;
    for (const QueryResult& r : *stored) {
      RefLabels labels(r.labels.begin(), r.labels.end());
      const bool fresh = actual.emplace(std::make_pair(labels, r.timestamp_ms), r.value).second;
      EXPECT_TRUE(fresh) << "stored twice: " << reference::FormatLabels(labels) << " @"
                         << r.timestamp_ms;
    }

    // The same (series, timestamp) set.
    int missing = 0;
    int extra = 0;
    for (const auto& [key, point] : expected->points) {
      if (actual.count(key) == 0 && ++missing <= 10) ADD_FAILURE() << "missing " << Describe(key);
    }
    for (const auto& [key, value] : actual) {
      if (expected->points.count(key) == 0 && ++extra <= 10) {
        ADD_FAILURE() << "unexpected " << Describe(key) << " = " << value;
      }
    }
    EXPECT_EQ(missing, 0);
    EXPECT_EQ(extra, 0);

    // The same values: exact (to 1e-12, for summation order and ms->s scaling) except
    // percentiles over more than 64 samples (1 % by the sketch's bound).
    std::set<RefLabels> series;
    int compared = 0;
    int percentiles = 0;
    int beyond_exact = 0;
    int mismatches = 0;
    for (const auto& [key, point] : expected->points) {
      series.insert(key.first);
      auto it = actual.find(key);
      if (it == actual.end()) continue;
      const bool percentile = point.stat == RefStat::kMed || point.stat == RefStat::kP90 ||
                              point.stat == RefStat::kP95 || point.stat == RefStat::kP99;
      const bool exact = !percentile || point.window_samples <= 64;
      ++compared;
      percentiles += percentile;
      beyond_exact += !exact;
      if (!WithinRelative(it->second, point.value, exact ? 1e-12 : 0.01) && ++mismatches <= 20) {
        ADD_FAILURE() << Describe(key) << ": stored " << it->second << ", expected " << point.value
                      << " (" << point.window_samples << " samples in window)";
      }
    }
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(compared, static_cast<int>(expected->points.size()));
    std::cout << file << ": " << expected->points.size() << " points in " << series.size()
              << " exported series (" << expected->aggregation_series << " aggregation series), "
              << percentiles << " percentile points, " << beyond_exact
              << " over windows of more than 64 samples; " << stored->size() << " stored, "
              << figures.points_sent() << " sent in " << figures.requests() << " requests\n";
  }

  static PrometheusServer* prometheus_;
};

PrometheusServer* FidelityTest::prometheus_ = nullptr;

std::string UniqueRunId(const std::string& prefix) {
  return absl::StrCat(prefix, "-", absl::ToUnixNanos(absl::Now()));
}

TEST_F(FidelityTest, JsonReplayMatchesTheReferencePointForPoint) {
  const std::string file = K6TestdataFile("finance-run.json");
  absl::StatusOr<RefRun> run = reference::ReadK6JsonFile(file);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->samples.size(), 802u);
  // The file's Metric lines agree with k6's documented built-in types.
  ASSERT_EQ(run->declared.size(), 16u);
  for (const auto& [name, metric] : run->declared) {
    std::optional<reference::RefMetric> builtin = reference::K6BuiltinMetric(name);
    ASSERT_TRUE(builtin.has_value()) << name;
    EXPECT_TRUE(*builtin == metric) << name;
  }
  ReplayAndCompare(file, *run, UniqueRunId("fidelity-json"));
}

// Acceptance (issue 11): what a stock k6 writes live with `--out influxdb=...` (line shape,
// url as a string field, precision ns, a write per push interval, CREATE DATABASE first) lands
// in Prometheus exactly as the gRPC replay does: the same points, the same k6 totals.
TEST_F(FidelityTest, K6InfluxOutputMatchesTheReferencePointForPoint) {
  const std::string file = K6TestdataFile("finance-run.json");
  absl::StatusOr<RefRun> run = reference::ReadK6JsonFile(file);
  ASSERT_TRUE(run.ok()) << run.status();
  const std::string test_run = UniqueRunId("fidelity-influx");
  ReplayAndCompare(file, *run, test_run, Feed::kK6Influx);
  // The totals k6 printed, read back from Prometheus.
  ExpectFinanceRunTotals(*prometheus_, test_run);
}

TEST_F(FidelityTest, CsvReplayMatchesTheReferencePointForPoint) {
  const std::string file = K6TestdataFile("finance-run.csv");
  absl::StatusOr<RefRun> run = reference::ReadK6CsvFile(file);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->samples.size(), 802u);
  ASSERT_TRUE(run->declared.empty());
  for (const reference::RefSample& s : run->samples) {
    ASSERT_EQ(s.ts_ns % 1000000000, 0) << "CSV timestamps are whole seconds";
  }
  ReplayAndCompare(file, *run, UniqueRunId("fidelity-csv"));
}

// ---------------------------------------------------------------------------------------------
// Late and out-of-range samples, at the API, against a receiver that records what it gets.

struct ReceivedPoint {
  std::string name;
  int64_t timestamp_ms;
  double value;
};

std::vector<ReceivedPoint> PointsOf(const std::vector<ReceivedRequest>& requests, size_t from,
                                    size_t to) {
  std::vector<ReceivedPoint> points;
  for (size_t i = from; i < to && i < requests.size(); ++i) {
    EXPECT_TRUE(requests[i].decode_status.ok()) << requests[i].decode_status;
    for (const prometheus::TimeSeries& ts : requests[i].write_request.timeseries()) {
      std::string name;
      for (const prometheus::Label& l : ts.labels()) {
        if (l.name() == "__name__") name = l.value();
      }
      for (const prometheus::Sample& s : ts.samples()) {
        points.push_back({name, s.timestamp(), s.value()});
      }
    }
  }
  return points;
}

// The (timestamp, value) points of the series called `name`, in arrival order.
std::vector<std::pair<int64_t, double>> Values(const std::vector<ReceivedPoint>& points,
                                               const std::string& name) {
  std::vector<std::pair<int64_t, double>> out;
  for (const ReceivedPoint& p : points) {
    if (p.name == name) out.emplace_back(p.timestamp_ms, p.value);
  }
  return out;
}

TEST(LateAndOutOfRangeTest, LateSamplesCountInTheNextWindowAndOutliersAreRejectedByReason) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();

  // The export clock stands still: windows close only when samples move the watermark.
  const int64_t window_ns = int64_t{kResampleRateS} * 1000000000;
  const int64_t now_ns = absl::ToUnixNanos(absl::Now());
  ExportOptions options = FrozenClock(absl::FromUnixNanos(now_ns));
  options.tick_interval = absl::Milliseconds(5);
  TestServer server(options);
  std::unique_ptr<v1::ExportService::Stub> stub = server.NewStub();

  v1::StartExportRequest request;
  request.set_test_run_id("late-samples");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url((*receiver)->Url());
  target->set_resample_rate(kResampleRateS);
  target->set_include_default_metrics(false);
  target->add_metrics()->set_source_metric("http_reqs");
  target->add_metrics()->set_source_metric("vus");
  grpc::ClientContext context;
  v1::StartExportResponse started;
  ASSERT_TRUE(stub->StartExport(&context, request, &started).ok());

  // Window w0 starts at `base`, 10 s (5 windows) before the frozen clock.
  const int64_t w0 = now_ns / window_ns - 5;
  const int64_t base = w0 * window_ns;
  const int64_t ms = 1000000;
  auto end_ms = [&](int64_t w) { return (w + 1) * kResampleRateS * 1000; };
  const std::vector<std::pair<std::string, std::string>> tags = {{"status", "200"}};
  SampleStream stream(stub.get(), started.export_id());
  uint64_t sent = 0;
  auto add = [&](int64_t ts, double value, const char* metric = "http_reqs") {
    stream.Add(metric, tags, ts, value);
    ++sent;
  };

  // Each Flush is one batch; the server applies a stream's batches in order.
  add(base + 100 * ms, 1);
  add(base + 500 * ms, 2);
  // A gauge takes the sample with the latest timestamp, not the last to arrive.
  add(base + 500 * ms, 7, "vus");
  add(base + 300 * ms, 9, "vus");
  ASSERT_TRUE(stream.Flush().ok());
  add(base + 4500 * ms, 4);  // window w0+2: the watermark passes w0's end + lateness
  ASSERT_TRUE(stream.Flush().ok());
  // Window w0 comes as one request per shard its two series fall in (hash of their labels):
  // wait until both series have their w0 point, then nothing but w0 has been sent.
  auto has_point = [](const std::vector<ReceivedRequest>& requests, const std::string& name,
                      int64_t timestamp_ms) {
    for (const auto& [ts, value] : Values(PointsOf(requests, 0, requests.size()), name)) {
      if (ts == timestamp_ms) return true;
    }
    return false;
  };
  ASSERT_TRUE((*receiver)->WaitUntil(
      [&](const std::vector<ReceivedRequest>& requests) {
        return has_point(requests, "k6_http_reqs_total", end_ms(w0)) &&
               has_point(requests, "k6_vus", end_ms(w0));
      },
      absl::Seconds(10)));
  const std::vector<ReceivedRequest> first = (*receiver)->Requests();
  ASSERT_GE(first.size(), 1u);
  ASSERT_LE(first.size(), 2u);  // one request per series at most
  EXPECT_EQ(Values(PointsOf(first, 0, first.size()), "k6_http_reqs_total"),
            (std::vector<std::pair<int64_t, double>>{{end_ms(w0), 3}}));
  EXPECT_EQ(Values(PointsOf(first, 0, first.size()), "k6_vus"),
            (std::vector<std::pair<int64_t, double>>{{end_ms(w0), 7}}));

  // Window w0 was shipped: a sample for it now counts in the next open window (w0+1).
  add(base + 200 * ms, 8);
  ASSERT_TRUE(stream.Flush().ok());
  add(base + 8500 * ms, 16);  // window w0+4: closes w0+1 and w0+2
  ASSERT_TRUE(stream.Flush().ok());
  // The counter's series is in one shard: its points arrive in order, w0+2 last.
  ASSERT_TRUE((*receiver)->WaitUntil(
      [&](const std::vector<ReceivedRequest>& requests) {
        return has_point(requests, "k6_http_reqs_total", end_ms(w0 + 2));
      },
      absl::Seconds(10)));
  const std::vector<ReceivedRequest> second = (*receiver)->Requests();
  EXPECT_EQ(Values(PointsOf(second, 0, second.size()), "k6_http_reqs_total"),
            (std::vector<std::pair<int64_t, double>>{
                {end_ms(w0), 3}, {end_ms(w0 + 1), 11}, {end_ms(w0 + 2), 15}}));

  // Out of range and invalid: rejected, each with its reason.
  const int64_t newest = base + 8500 * ms;
  add(newest - 2 * 3600 * int64_t{1000000000}, 32);                // too_old
  add(now_ns + 24 * 3600 * int64_t{1000000000}, 64);               // too_new
  add(base + 8600 * ms, std::nan(""));                             // invalid_value
  add(base + 8600 * ms, std::numeric_limits<double>::infinity());  // invalid_value
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(stream.samples_sent(), sent);
  EXPECT_EQ(sent, 11u);
  EXPECT_EQ(response->accepted(), 7u);
  EXPECT_EQ(response->rejected(), 4u);
  EXPECT_EQ(response->accepted() + response->rejected(), sent);
  const std::map<std::string, uint64_t> reasons = {
      {"invalid_value", 2}, {"too_new", 1}, {"too_old", 1}};
  EXPECT_EQ(ByReason(response->rejections()), reasons);

  grpc::ClientContext stop_context;
  v1::StopExportRequest stop;
  stop.set_export_id(started.export_id());
  v1::StopExportResponse stopped;
  ASSERT_TRUE(stub->StopExport(&stop_context, stop, &stopped).ok());
  EXPECT_EQ(stopped.samples_accepted(), 7u);
  EXPECT_EQ(stopped.samples_rejected(), 4u);
  EXPECT_EQ(stopped.samples_accepted() + stopped.samples_rejected(), sent);
  EXPECT_EQ(ByReason(stopped.rejections()), reasons);

  // Everything delivered: the counter's total is exact, the empty window w0+3 repeats it.
  const std::vector<ReceivedRequest> all = (*receiver)->Requests();
  const std::vector<ReceivedPoint> points = PointsOf(all, 0, all.size());
  EXPECT_EQ(Values(points, "k6_http_reqs_total"),
            (std::vector<std::pair<int64_t, double>>{{end_ms(w0), 3},
                                                     {end_ms(w0 + 1), 11},
                                                     {end_ms(w0 + 2), 15},
                                                     {end_ms(w0 + 3), 15},
                                                     {end_ms(w0 + 4), 31}}));
  // The gauge keeps its value in every window it is sent for.
  for (const auto& [ts, value] : Values(points, "k6_vus")) EXPECT_EQ(value, 7) << ts;
  ASSERT_EQ(stopped.targets_size(), 1);
  EXPECT_EQ(stopped.targets(0).series(), 2u);
  EXPECT_EQ(stopped.targets(0).points_sent(), points.size());
  EXPECT_EQ(stopped.targets(0).points_dropped(), 0u);
  EXPECT_EQ(stopped.targets(0).failures(), 0u);
  EXPECT_EQ(stopped.targets(0).highest_timestamp_ms(), end_ms(w0 + 4));
}

}  // namespace
}  // namespace rwexport
