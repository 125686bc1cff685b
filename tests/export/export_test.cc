// ExportRegistry with a real WorkerPool and Sender, delivering to the fake remote-write
// receiver.
#include "lib/export/export.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/ingest/stream_ingester.h"
#include "lib/remote_write/sender.h"
#include "prometheus/remote.pb.h"
#include "rwexport/v1/export.pb.h"
#include "tests/testing/fake_receiver.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(10);

// One received point, keyed for lookups.
struct ReceivedPoint {
  std::string name;
  std::string test_run_id;
  int64_t timestamp_ms;
  double value;
};

std::vector<ReceivedPoint> Points(const std::vector<ReceivedRequest>& requests) {
  std::vector<ReceivedPoint> out;
  for (const ReceivedRequest& r : requests) {
    EXPECT_TRUE(r.decode_status.ok()) << r.decode_status;
    for (const prometheus::TimeSeries& ts : r.write_request.timeseries()) {
      std::string name, run;
      for (const prometheus::Label& l : ts.labels()) {
        if (l.name() == "__name__") name = l.value();
        if (l.name() == "test_run_id") run = l.value();
      }
      for (const prometheus::Sample& s : ts.samples()) {
        out.push_back({name, run, s.timestamp(), s.value()});
      }
    }
  }
  return out;
}

// name -> value of the points of `run` at `timestamp_ms`.
std::map<std::string, double> At(const std::vector<ReceivedPoint>& points, const std::string& run,
                                 int64_t timestamp_ms) {
  std::map<std::string, double> out;
  for (const ReceivedPoint& p : points) {
    if (p.test_run_id == run && p.timestamp_ms == timestamp_ms) out[p.name] = p.value;
  }
  return out;
}

v1::Sample MakeSample(const std::string& metric, int64_t ts_ns, double value) {
  v1::Sample s;
  s.set_metric(metric);
  s.set_time_unix_nano(ts_ns);
  s.set_value(value);
  return s;
}

// Feeds `batch` to the export's aggregator and waits until every sample was applied.
void Ingest(Export& e, const v1::SampleBatch& batch) {
  StreamIngester ingester(e.aggregator());
  Mutex mu;
  CondVar cv;
  bool done = false;
  absl::Status status = ingester.Ingest(batch, [&] {
    MutexLock lock(&mu);
    done = true;
    cv.SignalAll();
  });
  ASSERT_TRUE(status.ok()) << status;
  MutexLock lock(&mu);
  const absl::Time give_up = absl::Now() + kWait;
  while (!done && absl::Now() < give_up) cv.WaitFor(&mu, std::chrono::milliseconds(100));
  ASSERT_TRUE(done);
  EXPECT_EQ(ingester.rejected(), 0u);
}

class ExportRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
  }

  void MakeRegistry(ExportOptions options) {
    registry_ = std::make_unique<ExportRegistry>(&pool_, &sender_, std::move(options));
  }

  // One target on the fake receiver: 1 s windows, no default metrics, http_reqs (counter),
  // vus (gauge), checks (rate) and http_req_duration (trend: min, max, count), labelled with
  // the test run id.
  v1::StartExportRequest Request(const std::string& run) const {
    v1::StartExportRequest request;
    request.set_test_run_id(run);
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    target->set_include_default_metrics(false);
    target->set_resample_rate(1);
    target->set_include_test_run_id(true);
    for (const char* metric : {"http_reqs", "vus", "checks", "http_req_duration"}) {
      target->add_metrics()->set_source_metric(metric);
    }
    for (const char* stat : {"min", "max", "count"}) target->add_trend_stats(stat);
    return request;
  }

  std::string Start(const v1::StartExportRequest& request) {
    absl::StatusOr<v1::StartExportResponse> started = registry_->Start(request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->export_id() : "";
  }

  std::unique_ptr<FakeReceiver> receiver_;
  WorkerPool pool_{2};
  Sender sender_;
  std::unique_ptr<ExportRegistry> registry_;  // destroyed first
};

TEST_F(ExportRegistryTest, StartReturnsAnIdAndPerTargetReports) {
  MakeRegistry(ExportOptions());
  v1::StartExportRequest request = Request("reports");
  request.mutable_targets(0)->add_metrics()->set_source_metric("my-metric");
  v1::Target* second = request.add_targets();
  second->set_provider("prometheus");
  second->set_remote_write_url(receiver_->Url("/second"));
  absl::StatusOr<v1::StartExportResponse> started = registry_->Start(request);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_FALSE(started->export_id().empty());
  ASSERT_EQ(started->targets_size(), 2);

  const v1::TargetReport& first = started->targets(0);
  EXPECT_EQ(first.remote_write_url(), receiver_->Url());
  ASSERT_EQ(first.skipped_metrics_size(), 1);
  EXPECT_EQ(first.skipped_metrics(0).entry(), "my-metric");
  EXPECT_THAT(first.skipped_metrics(0).reason(), Not(IsEmpty()));
  EXPECT_THAT(first.exported_metrics(),
              ElementsAre("http_reqs", "vus", "checks", "http_req_duration"));

  // The second target takes the defaults.
  const v1::TargetReport& defaults = started->targets(1);
  EXPECT_EQ(defaults.remote_write_url(), receiver_->Url("/second"));
  EXPECT_EQ(defaults.skipped_metrics_size(), 0);
  EXPECT_THAT(defaults.exported_metrics(),
              ElementsAre("data_sent", "data_received", "http_req_duration", "http_reqs",
                          "iterations", "vus"));

  EXPECT_EQ(registry_->size(), 1u);
  const std::shared_ptr<Export> e = registry_->Find(started->export_id());
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->id(), started->export_id());
  EXPECT_EQ(e->config().test_run_id, "reports");
  EXPECT_EQ(registry_->Find("no-such-id"), nullptr);

  // A second export gets another id.
  const std::string other = Start(Request("reports-2"));
  EXPECT_NE(other, started->export_id());
  EXPECT_EQ(registry_->size(), 2u);
}

TEST_F(ExportRegistryTest, InvalidConfigurationIsInvalidArgumentNamingTheField) {
  MakeRegistry(ExportOptions());
  v1::StartExportRequest request = Request("bad");
  request.mutable_targets(0)->set_resample_rate(11);
  absl::StatusOr<v1::StartExportResponse> started = registry_->Start(request);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(started.status().message(), HasSubstr("targets[0].resampleRate"));
  EXPECT_EQ(registry_->size(), 0u);
}

TEST_F(ExportRegistryTest, StopOfAnUnknownIdIsNotFound) {
  MakeRegistry(ExportOptions());
  absl::StatusOr<v1::StopExportResponse> stopped = registry_->Stop("nope", absl::Seconds(1));
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(stopped.status().message(), HasSubstr("nope"));

  // An export that was stopped is gone.
  const std::string id = Start(Request("twice"));
  ASSERT_TRUE(registry_->Stop(id, kWait).ok());
  EXPECT_EQ(registry_->Stop(id, kWait).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Find(id), nullptr);
}

TEST_F(ExportRegistryTest, MaxExportsIsResourceExhaustedAndOthersKeepWorking) {
  ExportOptions options;
  options.max_exports = 2;
  MakeRegistry(options);
  const std::string a = Start(Request("limit-a"));
  const std::string b = Start(Request("limit-b"));
  absl::StatusOr<v1::StartExportResponse> third = registry_->Start(Request("limit-c"));
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("(2)"));
  EXPECT_EQ(registry_->size(), 2u);

  // Both running exports still take samples and deliver them.
  const int64_t t0 = absl::ToUnixNanos(absl::Now()) - 2'000'000'000;
  for (const std::string& id : {a, b}) {
    v1::SampleBatch batch;
    *batch.add_samples() = MakeSample("http_reqs", t0, 1);
    *batch.add_samples() = MakeSample("http_reqs", t0 + 1000, 1);
    std::shared_ptr<Export> e = registry_->Find(id);
    ASSERT_NE(e, nullptr);
    Ingest(*e, batch);
  }
  for (const std::string& id : {a, b}) {
    absl::StatusOr<v1::StopExportResponse> stopped = registry_->Stop(id, kWait);
    ASSERT_TRUE(stopped.ok()) << stopped.status();
    EXPECT_EQ(stopped->samples_accepted(), 2u);
    ASSERT_EQ(stopped->targets_size(), 1);
    EXPECT_GT(stopped->targets(0).points_sent(), 0u);
    EXPECT_EQ(stopped->targets(0).points_dropped(), 0u);
  }
  // Every point of the two runs carries its own total.
  const std::vector<ReceivedPoint> points = Points(receiver_->Requests());
  for (const char* run : {"limit-a", "limit-b"}) {
    double last_total = -1;
    int64_t last_ts = 0;
    for (const ReceivedPoint& p : points) {
      if (p.test_run_id == run && p.name == "k6_http_reqs_total" && p.timestamp_ms > last_ts) {
        last_ts = p.timestamp_ms;
        last_total = p.value;
      }
    }
    EXPECT_EQ(last_total, 2) << run;
  }

  // Once one stopped, there is room again.
  EXPECT_TRUE(registry_->Start(Request("limit-c")).ok());
}

TEST_F(ExportRegistryTest, TickerClosesWindowsWithoutStop) {
  ExportOptions options;
  options.tick_interval = absl::Milliseconds(10);
  options.aggregator.lateness = absl::ZeroDuration();
  MakeRegistry(options);
  const std::string id = Start(Request("ticker"));
  std::shared_ptr<Export> e = registry_->Find(id);
  ASSERT_NE(e, nullptr);

  // Window [w, w + 1 s), a few seconds back. Its newest sample is at w + 0.9 s, so the export's
  // clock passes the window's end 0.1 s (of wall time) after the ingest.
  const int64_t w = (absl::ToUnixSeconds(absl::Now()) - 5) * 1'000'000'000;
  const int64_t ms = 1'000'000;
  v1::SampleBatch batch;
  *batch.add_samples() = MakeSample("http_reqs", w + 100 * ms, 1);
  *batch.add_samples() = MakeSample("http_reqs", w + 200 * ms, 1);
  *batch.add_samples() = MakeSample("http_reqs", w + 900 * ms, 1);
  *batch.add_samples() = MakeSample("vus", w + 800 * ms, 5);  // the latest: the gauge's value
  *batch.add_samples() = MakeSample("vus", w + 300 * ms, 7);
  *batch.add_samples() = MakeSample("checks", w + 100 * ms, 1);
  *batch.add_samples() = MakeSample("checks", w + 200 * ms, 0);
  *batch.add_samples() = MakeSample("checks", w + 300 * ms, 1);
  *batch.add_samples() = MakeSample("checks", w + 400 * ms, 1);
  *batch.add_samples() = MakeSample("http_req_duration", w + 100 * ms, 100);
  *batch.add_samples() = MakeSample("http_req_duration", w + 500 * ms, 300);
  *batch.add_samples() = MakeSample("http_req_duration", w + 600 * ms, 200);
  Ingest(*e, batch);

  // The first flush carries the window (and, if the machine is slow, later ones), in one request
  // per shard its series fall in: wait until the window's six series have arrived.
  const int64_t end_ms = w / ms + 1000;
  ASSERT_TRUE(receiver_->WaitUntil(
      [&](const std::vector<ReceivedRequest>& requests) {
        return At(Points(requests), "ticker", end_ms).size() >= 6;
      },
      kWait));
  const std::vector<ReceivedPoint> points = Points(receiver_->Requests());
  const std::map<std::string, double> window = At(points, "ticker", end_ms);
  // One point per series, none twice.
  EXPECT_EQ(std::count_if(points.begin(), points.end(),
                          [&](const ReceivedPoint& p) {
                            return p.test_run_id == "ticker" && p.timestamp_ms == end_ms;
                          }),
            6);
  EXPECT_EQ(window, (std::map<std::string, double>{{"k6_checks_rate", 0.75},
                                                   {"k6_http_req_duration_count", 3},
                                                   {"k6_http_req_duration_max", 0.3},
                                                   {"k6_http_req_duration_min", 0.1},
                                                   {"k6_http_reqs_total", 3},
                                                   {"k6_vus", 5}}));
  // Nothing was stopped.
  EXPECT_EQ(registry_->size(), 1u);
  EXPECT_FALSE(e->aggregator()->stopped());
}

TEST_F(ExportRegistryTest, StopFiguresMatchWhatTheReceiverDecoded) {
  MakeRegistry(ExportOptions());
  const std::string id = Start(Request("figures"));
  std::shared_ptr<Export> e = registry_->Find(id);
  ASSERT_NE(e, nullptr);
  // Three windows with samples: w, w + 1 s and w + 3 s (w + 2 s is empty).
  const int64_t w = (absl::ToUnixSeconds(absl::Now()) - 10) * 1'000'000'000;
  const int64_t s = 1'000'000'000;
  v1::SampleBatch batch;
  for (int64_t offset : {int64_t{0}, s, 3 * s}) {
    *batch.add_samples() = MakeSample("http_reqs", w + offset + 1, 2);
    *batch.add_samples() = MakeSample("vus", w + offset + 1, 3);
    *batch.add_samples() = MakeSample("http_req_duration", w + offset + 1, 50);
  }
  Ingest(*e, batch);
  e.reset();

  absl::StatusOr<v1::StopExportResponse> stopped = registry_->Stop(id, kWait);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 9u);
  EXPECT_EQ(stopped->samples_rejected(), 0u);
  ASSERT_EQ(stopped->targets_size(), 1);
  const v1::TargetFigures& figures = stopped->targets(0);
  EXPECT_EQ(figures.remote_write_url(), receiver_->Url());
  EXPECT_EQ(figures.points_dropped(), 0u);
  EXPECT_EQ(figures.failures(), 0u);
  // One aggregation series per metric entry.
  EXPECT_EQ(figures.series(), 3u);

  const std::vector<ReceivedRequest> requests = receiver_->Requests();
  const std::vector<ReceivedPoint> points = Points(requests);
  EXPECT_EQ(figures.points_sent(), points.size());
  EXPECT_EQ(figures.requests(), requests.size());
  // Counter and gauge: windows w .. w + 3 s (the empty one repeated): 4 points each; the trend:
  // 3 windows with samples x 3 statistics.
  EXPECT_EQ(points.size(), 4u + 4u + 9u);
  int64_t highest = 0;
  for (const ReceivedPoint& p : points) highest = std::max(highest, p.timestamp_ms);
  EXPECT_EQ(figures.highest_timestamp_ms(), highest);
  EXPECT_EQ(highest, w / 1'000'000 + 4000);
  const std::map<std::string, double> last = At(points, "figures", highest);
  EXPECT_EQ(last, (std::map<std::string, double>{{"k6_http_req_duration_count", 1},
                                                 {"k6_http_req_duration_max", 0.05},
                                                 {"k6_http_req_duration_min", 0.05},
                                                 {"k6_http_reqs_total", 6},
                                                 {"k6_vus", 3}}));
}

TEST_F(ExportRegistryTest, StopAllStopsEverything) {
  MakeRegistry(ExportOptions());
  const int64_t t = absl::ToUnixNanos(absl::Now()) - 3'000'000'000;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(Start(Request(absl::StrCat("all-", i))));
    v1::SampleBatch batch;
    *batch.add_samples() = MakeSample("http_reqs", t, i + 1);
    std::shared_ptr<Export> e = registry_->Find(ids.back());
    ASSERT_NE(e, nullptr);
    Ingest(*e, batch);
  }
  EXPECT_EQ(registry_->StopAll(), 3u);
  EXPECT_EQ(registry_->size(), 0u);
  for (const std::string& id : ids) {
    EXPECT_EQ(registry_->Find(id), nullptr);
    EXPECT_EQ(registry_->Stop(id, kWait).status().code(), absl::StatusCode::kNotFound);
  }
  // Each export's window was flushed and delivered by StopAll.
  const std::vector<ReceivedPoint> points = Points(receiver_->Requests());
  const int64_t end_ms = (t / 1'000'000'000 + 1) * 1000;
  for (int i = 0; i < 3; ++i) {
    const std::map<std::string, double> window = At(points, absl::StrCat("all-", i), end_ms);
    EXPECT_EQ(window, (std::map<std::string, double>{{"k6_http_reqs_total", i + 1}}));
  }
  EXPECT_EQ(registry_->StopAll(), 0u);
}

}  // namespace
}  // namespace rwexport
