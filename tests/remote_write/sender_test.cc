#include "lib/remote_write/sender.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/mutex.h"
#include "lib/common/redact.h"
#include "lib/common/stable_hash.h"
#include "lib/model/series.h"
#include "lib/remote_write/shard.h"
#include "lib/remote_write/spool.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/series.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kWait = absl::Seconds(20);

std::unique_ptr<FakeReceiver> StartReceiver() {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  EXPECT_TRUE(receiver.ok()) << receiver.status();
  return receiver.ok() ? *std::move(receiver) : nullptr;
}

// A clock the test moves by hand, for the sender (SenderOptions::clock) and the receiver
// (received_at): retries and deadlines then wait on it, not on the wall clock.
class FakeClock {
 public:
  absl::Time Now() const { return absl::FromUnixNanos(now_ns_.load()); }
  std::function<absl::Time()> Function() {
    return [this] { return Now(); };
  }
  void Advance(absl::Duration d) { now_ns_ += absl::ToInt64Nanoseconds(d); }

 private:
  std::atomic<int64_t> now_ns_{absl::ToUnixNanos(absl::FromUnixSeconds(1'700'000'000))};
};

std::unique_ptr<FakeReceiver> StartReceiver(FakeClock& clock) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start(clock.Function());
  EXPECT_TRUE(receiver.ok()) << receiver.status();
  return receiver.ok() ? *std::move(receiver) : nullptr;
}

// A Sender on `clock` (which must outlive it); no spool.
std::unique_ptr<Sender> SenderOn(FakeClock& clock) {
  SenderOptions options;
  options.clock = clock.Function();
  absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(std::move(options));
  EXPECT_TRUE(sender.ok()) << sender.status();
  return sender.ok() ? *std::move(sender) : nullptr;
}

// Moves `clock` by `d` and tells `sender`.
void Advance(FakeClock& clock, Sender& sender, absl::Duration d) {
  clock.Advance(d);
  sender.ClockMoved();
}

// Fast retries so that tests do not wait on backoff. One request in flight (one shard): a
// batch is as many requests as its size asks, and they arrive in the order sent; the tests of
// parallel delivery set max_in_flight.
TargetOptions Options(std::string url) {
  TargetOptions options;
  options.url = std::move(url);
  options.max_in_flight = 1;
  options.min_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(50);
  return options;
}

const Series* MakeSeries(std::string name, std::vector<Label> labels = {}) {
  labels.push_back({"__name__", std::move(name)});
  return TestSeries(std::move(labels));
}

PointBatch Batch(std::vector<SeriesPoints> series) {
  PointBatch batch;
  batch.series = std::move(series);
  return batch;
}

// `count` series named s0, s1, ... with one point each at `timestamp_ms`, value = index.
PointBatch OnePointEach(int count, int64_t timestamp_ms) {
  PointBatch batch;
  for (int i = 0; i < count; ++i) {
    batch.series.push_back({MakeSeries(absl::StrCat("s", i)), {{timestamp_ms, double(i)}}});
  }
  return batch;
}

// Polls `condition` until it holds (true) or kWait passes (false). Only for states that
// nothing signals.
template <class Condition>
bool WaitUntil(Condition condition) {
  const absl::Time give_up = absl::Now() + kWait;
  while (!condition()) {
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

struct DeliveredPoint {
  std::string series;
  int64_t timestamp_ms;
  double value;
  bool operator==(const DeliveredPoint& other) const {
    return series == other.series && timestamp_ms == other.timestamp_ms && value == other.value;
  }
};

std::ostream& operator<<(std::ostream& os, const DeliveredPoint& p) {
  return os << p.series << "@" << p.timestamp_ms << "=" << p.value;
}

std::string SeriesKey(const prometheus::TimeSeries& ts) {
  std::string key;
  for (const prometheus::Label& label : ts.labels()) {
    absl::StrAppend(&key, key.empty() ? "" : ",", label.name(), "=", label.value());
  }
  return key;
}

bool Accepted(const ReceivedRequest& request) {
  return !request.answer.reset && request.answer.status / 100 == 2;
}

// The points of every request the receiver answered with 2xx, in arrival order.
std::vector<DeliveredPoint> Delivered(const std::vector<ReceivedRequest>& requests) {
  std::vector<DeliveredPoint> out;
  for (const ReceivedRequest& request : requests) {
    EXPECT_TRUE(request.decode_status.ok()) << request.decode_status;
    if (!Accepted(request)) continue;
    for (const prometheus::TimeSeries& ts : request.write_request.timeseries()) {
      for (const prometheus::Sample& sample : ts.samples()) {
        out.push_back({SeriesKey(ts), sample.timestamp(), sample.value()});
      }
    }
  }
  return out;
}

TEST(SenderTest, DeliversPointsExactly) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, Batch({
                          {MakeSeries("k6_http_reqs_total", {{"status", "200"}, {"method", "GET"}}),
                           {{1700000000000, 10}, {1700000003000, 25}}},
                          {MakeSeries("k6_vus"), {{1700000003000, 7.5}}},
                      }));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_THAT(
      Delivered(requests),
      ElementsAre(
          DeliveredPoint{"__name__=k6_http_reqs_total,method=GET,status=200", 1700000000000, 10},
          DeliveredPoint{"__name__=k6_http_reqs_total,method=GET,status=200", 1700000003000, 25},
          DeliveredPoint{"__name__=k6_vus", 1700000003000, 7.5}));
  EXPECT_EQ(figures.points_sent, 3u);
  EXPECT_EQ(figures.requests, 1u);
  EXPECT_EQ(figures.retries, 0u);
  EXPECT_EQ(figures.failures, 0u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_TRUE(figures.dropped_by_reason.empty());
  EXPECT_EQ(figures.points_queued, 0u);
  EXPECT_EQ(figures.bytes_sent, requests[0].body.size());
  EXPECT_EQ(figures.highest_timestamp_ms, 1700000003000);
  EXPECT_EQ(figures.last_error, "");
}

TEST(SenderTest, SendsProtocolHeadersCredentialsAndExtraHeaders) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  Sender sender;
  TargetOptions options = Options(receiver->Url("/api/v1/push?tenant=a&x=b%20c"));
  options.bearer_token = "s3cret-token";
  options.headers = {{"X-Scope-OrgID", "team-1"}, {"X-Empty", ""}};
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(1, 1000));
  sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 1u);
  const ReceivedRequest& request = requests[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.target, "/api/v1/push?tenant=a&x=b%20c");
  EXPECT_EQ(request.Header("Content-Encoding"), "snappy");
  EXPECT_EQ(request.Header("Content-Type"), "application/x-protobuf");
  EXPECT_EQ(request.Header("X-Prometheus-Remote-Write-Version"), "0.1.0");
  EXPECT_EQ(request.Header("User-Agent"), "rwexport/0.1");
  EXPECT_EQ(request.Header("Authorization"), "Bearer s3cret-token");
  EXPECT_EQ(request.Header("X-Scope-OrgID"), "team-1");
  EXPECT_EQ(request.Header("X-Empty"), "");
  EXPECT_EQ(request.Header("Expect"), std::nullopt);
  EXPECT_EQ(request.Header("Content-Length"), absl::StrCat(request.body.size()));
}

TEST(SenderTest, SendsBasicAuth) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.username = "user";
  options.password = "pass";
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(1, 1000));
  sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 1u);
  // base64("user:pass")
  EXPECT_EQ(requests[0].Header("Authorization"), "Basic dXNlcjpwYXNz");
}

TEST(SenderTest, AddTargetRejectsInvalidOptions) {
  Sender sender;
  auto rejected = [&sender](TargetOptions options, absl::string_view field) {
    absl::StatusOr<Sender::TargetId> id = sender.AddTarget(std::move(options));
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(std::string(id.status().message()), HasSubstr(std::string(field)));
  };
  const std::string url = "http://127.0.0.1:9/api/v1/write";

  rejected(Options("ftp://127.0.0.1/write"), "url");
  rejected(Options("127.0.0.1:9090/api/v1/write"), "url");
  rejected(Options("not a url"), "url");
  for (const char* name : {"Content-Type", "content-encoding", "X-Prometheus-Remote-Write-Version",
                           "User-Agent", "authorization", "Content-Length"}) {
    TargetOptions options = Options(url);
    options.headers = {{name, "x"}};
    rejected(options, "headers");
  }
  TargetOptions injected = Options(url);
  injected.headers = {{"X-Tenant", "a\r\nAuthorization: Bearer evil"}};
  rejected(injected, "headers");
  TargetOptions bad_name = Options(url);
  bad_name.headers = {{"X Tenant", "a"}};
  rejected(bad_name, "headers");
  TargetOptions both = Options(url);
  both.bearer_token = "t";
  both.username = "u";
  rejected(both, "credentials");
  TargetOptions ca = Options("https://127.0.0.1:9/api/v1/write");
  ca.ca_file = "/nonexistent/ca.pem";
  rejected(ca, "ca_file");
  TargetOptions cert = Options(url);
  cert.cert_file = "/nonexistent/cert.pem";
  rejected(cert, "cert_file");
  TargetOptions in_flight = Options(url);
  in_flight.max_in_flight = 0;
  rejected(in_flight, "max_in_flight");
  TargetOptions per_request = Options(url);
  per_request.max_points_per_request = 0;
  rejected(per_request, "max_points_per_request");

  // A password in the URL is never echoed in the error.
  absl::StatusOr<Sender::TargetId> secret = sender.AddTarget(Options("gopher://u:hunter2@host/"));
  EXPECT_FALSE(secret.ok());
  EXPECT_THAT(std::string(secret.status().message()), ::testing::Not(HasSubstr("hunter2")));

  TargetOptions good = Options("https://user:pw@prometheus.example:9090/api/v1/write?x=1");
  good.insecure_skip_verify = true;
  good.headers = {{"X-Scope-OrgID", "1"}};
  EXPECT_TRUE(sender.AddTarget(good).ok());
}

TEST(SenderTest, ServerErrorIsRetriedAndDeliveredOnce) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(500, "try again"));
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(3, 5000));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].answer.status, 500);
  EXPECT_EQ(requests[1].answer.status, 204);
  EXPECT_EQ(requests[0].body, requests[1].body);
  EXPECT_THAT(Delivered(requests), ElementsAre(DeliveredPoint{"__name__=s0", 5000, 0},
                                               DeliveredPoint{"__name__=s1", 5000, 1},
                                               DeliveredPoint{"__name__=s2", 5000, 2}));
  EXPECT_EQ(figures.points_sent, 3u);
  EXPECT_EQ(figures.requests, 2u);
  EXPECT_EQ(figures.retries, 1u);
  EXPECT_EQ(figures.failures, 1u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(figures.bytes_sent, requests[1].body.size());
  EXPECT_EQ(figures.last_error, "HTTP 500: try again");
}

TEST(SenderTest, TooManyRequestsHonoursRetryAfter) {
  FakeClock clock;
  std::unique_ptr<FakeReceiver> receiver = StartReceiver(clock);
  ASSERT_NE(receiver, nullptr);
  FakeResponse slow_down = FakeResponse::WithStatus(429);
  slow_down.headers = {{"Retry-After", "1"}};
  receiver->Push(slow_down);
  std::unique_ptr<Sender> sender = SenderOn(clock);
  ASSERT_NE(sender, nullptr);
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();

  sender->Enqueue(*id, OnePointEach(2, 5000));
  // The 429 is answered while the clock stands still; then the clock moves by its Retry-After,
  // in steps.
  ASSERT_TRUE(WaitUntil([&] { return sender->Figures(*id).failures == 1; }));
  for (int i = 0; i < 10; ++i) Advance(clock, *sender, absl::Milliseconds(100));
  const TargetFigures figures = sender->RemoveTarget(*id, clock.Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].answer.status, 429);
  EXPECT_GE(requests[1].received_at - requests[0].received_at, absl::Milliseconds(900));
  EXPECT_EQ(Delivered(requests).size(), 2u);
  EXPECT_EQ(figures.points_sent, 2u);
  EXPECT_EQ(figures.requests, 2u);
  EXPECT_EQ(figures.retries, 1u);
  EXPECT_EQ(figures.failures, 1u);
}

TEST(SenderTest, ClientErrorIsDroppedWithoutRetry) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(400, "out of order sample"));
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(4, 5000));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(receiver->RequestCount(), 1u);
  EXPECT_EQ(figures.points_sent, 0u);
  EXPECT_EQ(figures.requests, 1u);
  EXPECT_EQ(figures.retries, 0u);
  EXPECT_EQ(figures.failures, 1u);
  EXPECT_EQ(figures.points_dropped, 4u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("http_400", 4u)));
  EXPECT_EQ(figures.points_queued, 0u);
  EXPECT_EQ(figures.bytes_sent, 0u);
  EXPECT_EQ(figures.last_error, "HTTP 400: out of order sample");
}

// Per series, points arrive in order although batches travel in parallel (one shard per
// in-flight request) and a request is retried: a series' later point is sent only after every
// attempt of its earlier one.
TEST(SenderTest, SeriesStayInOrderDespiteParallelRequestsAndRetries) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(503));
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_in_flight = 4;
  options.max_points_per_request = 1;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(3, 1000));
  sender.Enqueue(*id, OnePointEach(3, 2000));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 7u);  // 6 requests of one point, one of them twice
  EXPECT_EQ(figures.points_sent, 6u);
  EXPECT_EQ(figures.requests, 7u);
  EXPECT_EQ(figures.retries, 1u);
  EXPECT_EQ(figures.failures, 1u);
  // Per series: every attempt at 2000 arrives after the last attempt at 1000.
  std::map<std::string, std::vector<int64_t>> attempts;
  for (const ReceivedRequest& request : requests) {
    ASSERT_EQ(request.write_request.timeseries_size(), 1);
    const prometheus::TimeSeries& ts = request.write_request.timeseries(0);
    attempts[SeriesKey(ts)].push_back(ts.samples(0).timestamp());
  }
  ASSERT_EQ(attempts.size(), 3u);
  for (const auto& [series, timestamps] : attempts) {
    ASSERT_GE(timestamps.size(), 2u) << series;
    EXPECT_TRUE(std::is_sorted(timestamps.begin(), timestamps.end())) << series;
    EXPECT_EQ(timestamps.back(), 2000) << series;
  }
  std::map<std::string, std::vector<int64_t>> delivered;
  for (const ReceivedRequest& request : requests) {
    if (!Accepted(request)) continue;
    const prometheus::TimeSeries& ts = request.write_request.timeseries(0);
    delivered[SeriesKey(ts)].push_back(ts.samples(0).timestamp());
  }
  for (const auto& [series, timestamps] : delivered) {
    EXPECT_THAT(timestamps, ElementsAre(1000, 2000)) << series;
  }
}

// Issue 13, item 7: a slow target gets max_in_flight requests at once (the batch's series are
// sharded by hash, one request in flight per shard), and per series the points still arrive
// in strictly increasing time. Before, batches went one at a time: one request in flight.
TEST(SenderTest, SlowTargetGetsEveryAllowedRequestInFlightInSeriesOrder) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stall;
  stall.stall = true;
  for (int i = 0; i < 4; ++i) receiver->Push(stall);
  FakeResponse slow;
  slow.delay = absl::Milliseconds(20);
  receiver->SetDefault(slow);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_in_flight = 4;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  constexpr int kSeries = 64;
  constexpr int kBatches = 6;
  for (int b = 1; b <= kBatches; ++b) sender.Enqueue(*id, OnePointEach(kSeries, b * 1000));
  // Four requests held by the target at once, and the sender says so.
  ASSERT_TRUE(receiver->WaitForRequests(4, absl::Seconds(5)));
  EXPECT_TRUE(WaitUntil([&] { return sender.Figures(*id).requests_in_flight == 4; }))
      << sender.Figures(*id).requests_in_flight;
  EXPECT_EQ(receiver->RequestCount(), 4u);  // no fifth while every shard waits
  receiver->ReleaseStalled();
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(figures.points_sent, uint64_t{kSeries * kBatches});
  EXPECT_EQ(figures.points_dropped, 0u);
  std::map<std::string, std::vector<int64_t>> by_series;
  for (const ReceivedRequest& request : receiver->Requests()) {
    for (const prometheus::TimeSeries& ts : request.write_request.timeseries()) {
      for (const prometheus::Sample& s : ts.samples()) {
        by_series[SeriesKey(ts)].push_back(s.timestamp());
      }
    }
  }
  ASSERT_EQ(by_series.size(), size_t{kSeries});
  for (const auto& [series, timestamps] : by_series) {
    ASSERT_EQ(timestamps.size(), size_t{kBatches}) << series;
    for (int b = 0; b < kBatches; ++b) EXPECT_EQ(timestamps[b], (b + 1) * 1000) << series;
  }
}

TEST(SenderTest, SplitsBatchesWithoutSplittingSeries) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_points_per_request = 4;
  options.max_in_flight = 1;  // keeps arrival order = split order
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  // Series of 2, 3, 1, 2 points: requests {a, (b would make 5)} -> {a}, {b, c}, {d}.
  const Series *a = MakeSeries("a"), *b = MakeSeries("b"), *c = MakeSeries("c"),
               *d = MakeSeries("d");
  sender.Enqueue(*id, Batch({{a, {{1, 1}, {2, 2}}},
                             {b, {{1, 1}, {2, 2}, {3, 3}}},
                             {c, {{1, 1}}},
                             {d, {{1, 1}, {2, 2}}}}));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 3u);
  auto series_of = [](const ReceivedRequest& r) {
    std::vector<std::string> out;
    for (const auto& ts : r.write_request.timeseries()) {
      out.push_back(absl::StrCat(SeriesKey(ts), ":", ts.samples_size()));
    }
    return out;
  };
  EXPECT_THAT(series_of(requests[0]), ElementsAre("__name__=a:2"));
  EXPECT_THAT(series_of(requests[1]), ElementsAre("__name__=b:3", "__name__=c:1"));
  EXPECT_THAT(series_of(requests[2]), ElementsAre("__name__=d:2"));
  EXPECT_EQ(figures.points_sent, 8u);
  EXPECT_EQ(figures.requests, 3u);
}

TEST(SenderTest, SplitsAnOversizedSeriesIntoSequentialRequests) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_points_per_request = 4;
  options.max_in_flight = 4;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  SeriesPoints::Points points;
  for (int i = 1; i <= 10; ++i) points.push_back({i * 1000, double(i)});
  sender.Enqueue(*id, Batch({{MakeSeries("long"), points}}));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 3u);
  std::vector<int> sizes;
  for (const ReceivedRequest& r : requests) {
    sizes.push_back(r.write_request.timeseries(0).samples_size());
    // One after the other, so one kept-alive connection serves them all; requests in
    // flight together would each have needed a connection of their own.
    EXPECT_EQ(r.connection_id, requests[0].connection_id);
  }
  EXPECT_THAT(sizes, ElementsAre(4, 4, 2));
  std::vector<DeliveredPoint> delivered = Delivered(requests);
  ASSERT_EQ(delivered.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(delivered[i], (DeliveredPoint{"__name__=long", (i + 1) * 1000, double(i + 1)}));
  }
  EXPECT_EQ(figures.points_sent, 10u);
  EXPECT_EQ(figures.highest_timestamp_ms, 10000);
}

TEST(SenderTest, ReusesConnections) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_in_flight = 1;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  for (int i = 1; i <= 3; ++i) sender.Enqueue(*id, OnePointEach(2, i * 1000));
  sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[1].connection_id, requests[0].connection_id);
  EXPECT_EQ(requests[2].connection_id, requests[0].connection_id);
}

TEST(SenderTest, ConnectionResetIsRetried) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse reset;
  reset.reset = true;
  receiver->Push(reset);
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(2, 1000));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(receiver->RequestCount(), 2u);
  EXPECT_EQ(figures.points_sent, 2u);
  EXPECT_EQ(figures.requests, 2u);
  EXPECT_EQ(figures.retries, 1u);
  EXPECT_EQ(figures.failures, 1u);
  EXPECT_THAT(figures.last_error, StartsWith("curl: "));
}

// Issue 13, item 6: the target stored a request but the connection dropped before its answer;
// the retry is refused 400 "out of order sample" (Prometheus already holds the points). The
// points count as sent, with duplicate_on_retry; nothing is dropped.
TEST(SenderTest, OutOfOrderAnswerToARetryCountsAsSent) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stored_then_cut;
  stored_then_cut.reset = true;  // received (as if stored), then the connection drops
  receiver->Push(stored_then_cut);
  receiver->Push(FakeResponse::WithStatus(400, "out of order sample"));
  ::testing::internal::CaptureStderr();
  TargetFigures figures;
  {
    Sender sender;
    absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
    ASSERT_TRUE(id.ok()) << id.status();
    sender.Enqueue(*id, OnePointEach(3, 1000));
    figures = sender.RemoveTarget(*id, absl::Now() + kWait);
  }
  const std::string logs = ::testing::internal::GetCapturedStderr();

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].body, requests[0].body);  // the same request, retried
  EXPECT_EQ(figures.points_sent, 3u);
  EXPECT_EQ(figures.duplicate_on_retry, 3u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_TRUE(figures.dropped_by_reason.empty());
  EXPECT_EQ(figures.retries, 1u);
  EXPECT_THAT(logs, HasSubstr("already holds a retried request"));
}

// The same answer to a first attempt is a real refusal: dropped as http_400.
TEST(SenderTest, DuplicateSampleAnswerToAFirstAttemptIsADrop) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(400, "duplicate sample for timestamp"));
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();
  sender.Enqueue(*id, OnePointEach(3, 1000));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(receiver->RequestCount(), 1u);
  EXPECT_EQ(figures.points_sent, 0u);
  EXPECT_EQ(figures.duplicate_on_retry, 0u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("http_400", 3u)));
  EXPECT_EQ(figures.last_error, "HTTP 400: duplicate sample for timestamp");
}

// Two series with points at 1000, 2000 and 3000 (three windows), values 10 + window.
PointBatch ThreeWindows() {
  PointBatch batch;
  for (int i = 0; i < 2; ++i) {
    batch.series.push_back(
        {MakeSeries(absl::StrCat("w", i)), {{1000, 11.0}, {2000, 12.0}, {3000, 13.0}}});
  }
  return batch;
}

// The timestamps of each request, in arrival order.
std::vector<std::vector<int64_t>> TimestampsPerRequest(const std::vector<ReceivedRequest>& got) {
  std::vector<std::vector<int64_t>> out;
  for (const ReceivedRequest& request : got) {
    std::vector<int64_t> timestamps;
    for (const prometheus::TimeSeries& ts : request.write_request.timeseries()) {
      for (const prometheus::Sample& sample : ts.samples())
        timestamps.push_back(sample.timestamp());
    }
    out.push_back(std::move(timestamps));
  }
  return out;
}

// A recovered export's re-sent windows (the crashed process delivered the first two before
// it died, Prometheus holds them): one window per request, in order; the 400 "out of order
// sample" and "duplicate sample for timestamp" answers count as already stored, the window
// the target did not have is delivered, nothing is dropped.
TEST(SenderTest, RecoveryResendGoesOneWindowPerRequestAndCountsAlreadyStored) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(
      400, "out of order sample for series {__name__=\"w0\"}"));  // Prometheus's wording
  receiver->Push(FakeResponse::WithStatus(400, "duplicate sample for timestamp"));
  ::testing::internal::CaptureStderr();
  TargetFigures figures;
  {
    Sender sender;
    absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
    ASSERT_TRUE(id.ok()) << id.status();
    sender.Enqueue(*id, ThreeWindows(), BatchKind::kRecoveryResend);
    figures = sender.RemoveTarget(*id, absl::Now() + kWait);
  }
  const std::string logs = ::testing::internal::GetCapturedStderr();

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  EXPECT_THAT(
      TimestampsPerRequest(requests),
      ElementsAre(ElementsAre(1000, 1000), ElementsAre(2000, 2000), ElementsAre(3000, 3000)));
  EXPECT_EQ(figures.points_sent, 6u);
  EXPECT_EQ(figures.points_already_stored, 4u);
  EXPECT_EQ(figures.duplicate_on_retry, 0u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_TRUE(figures.dropped_by_reason.empty());
  EXPECT_EQ(figures.requests, 3u);
  EXPECT_EQ(figures.retries, 0u);
  EXPECT_EQ(figures.highest_timestamp_ms, 3000);
  EXPECT_THAT(logs, HasSubstr("already holds a window re-sent after recovery"));
}

// The same answer to a normal batch is a refusal: the whole request (every window of the
// batch, sent together) is dropped, nothing counts as already stored.
TEST(SenderTest, OutOfOrderAnswerToANormalBatchIsADrop) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(400, "out of order sample"));
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();
  sender.Enqueue(*id, ThreeWindows());
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_THAT(TimestampsPerRequest(receiver->Requests()),
              ElementsAre(ElementsAre(1000, 2000, 3000, 1000, 2000, 3000)));
  EXPECT_EQ(figures.points_sent, 0u);
  EXPECT_EQ(figures.points_already_stored, 0u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("http_400", 6u)));
}

// Other refusals of a re-sent window stay drops: only "already stored" answers are forgiven.
TEST(SenderTest, OtherClientErrorToARecoveryResendIsADrop) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(400, "invalid labels"));
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();
  sender.Enqueue(*id, ThreeWindows(), BatchKind::kRecoveryResend);
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(receiver->RequestCount(), 3u);
  EXPECT_EQ(figures.points_sent, 4u);
  EXPECT_EQ(figures.points_already_stored, 0u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("http_400", 2u)));
}

// Series keep their shard across processes: a fixed hash of their labels, not a per-process
// seeded one (after a restart, a series' points travel on the shard they had).
TEST(SenderTest, SeriesShardIsAFixedHashOfTheLabels) {
  EXPECT_EQ(SeriesShard("", 4), StableHash64("") % 4);
  EXPECT_EQ(StableHash64(""), 0xefd01f60ba992926ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);  // FNV-1a 64's published vector
  const std::string labels = MakeSeries("k6_http_reqs_total")->encoded_labels();
  EXPECT_EQ(StableHash64(labels), 0x79c1621f63c6014cull);
  EXPECT_EQ(SeriesShard(labels, 4), 0u);
  EXPECT_EQ(SeriesShard(labels, 3), 1u);
  EXPECT_EQ(SeriesShard(labels, 1), 0u);
  // Every length of tail (0 to 7 bytes after the last whole word) and a byte changed
  // anywhere gives another value.
  std::set<uint64_t> seen;
  for (size_t len = 0; len <= 17; ++len) seen.insert(StableHash64(labels.substr(0, len)));
  EXPECT_EQ(seen.size(), 18u);
  for (size_t at = 0; at < labels.size(); ++at) {
    std::string changed = labels;
    changed[at] ^= 1;
    EXPECT_NE(StableHash64(changed), StableHash64(labels)) << at;
  }
}

TEST(SenderTest, TimeoutIsRetried) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stall;
  stall.stall = true;
  receiver->Push(stall);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.timeout = absl::Milliseconds(300);
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(2, 1000));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].connection_id, requests[1].connection_id);
  EXPECT_EQ(figures.points_sent, 2u);
  EXPECT_EQ(figures.retries, 1u);
  EXPECT_EQ(figures.failures, 1u);
  EXPECT_THAT(figures.last_error, StartsWith("curl: "));
}

TEST(SenderTest, FullQueueDropsOldestBatchesNotStarted) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stall;
  stall.stall = true;
  receiver->Push(stall);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_queued_points = 25;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(10, 1000));
  ASSERT_TRUE(receiver->WaitForRequests(1, kWait));  // batch 1 is in flight, held
  sender.Enqueue(*id, OnePointEach(10, 2000));       // 20 queued
  sender.Enqueue(*id, OnePointEach(10, 3000));       // 30 > 25: batch 2 dropped
  sender.Enqueue(*id, OnePointEach(10, 4000));       // 30 > 25: batch 3 dropped
  TargetFigures during = sender.Figures(*id);
  EXPECT_EQ(during.points_queued, 20u);
  EXPECT_EQ(during.points_dropped, 20u);
  EXPECT_THAT(during.dropped_by_reason, UnorderedElementsAre(Pair("queue_full", 20u)));

  receiver->ReleaseStalled();
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  std::vector<int64_t> timestamps;
  for (const DeliveredPoint& p : Delivered(receiver->Requests())) {
    if (timestamps.empty() || timestamps.back() != p.timestamp_ms) {
      timestamps.push_back(p.timestamp_ms);
    }
  }
  EXPECT_THAT(timestamps, ElementsAre(1000, 4000));
  EXPECT_EQ(figures.points_sent, 20u);
  EXPECT_EQ(figures.points_dropped, 20u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("queue_full", 20u)));
  EXPECT_EQ(figures.points_queued, 0u);
}

TEST(SenderTest, RemovingADeadTargetReturnsByTheDeadline) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();  // nothing listens on the port any more
  FakeClock clock;
  std::unique_ptr<Sender> sender_on_clock = SenderOn(clock);
  ASSERT_NE(sender_on_clock, nullptr);
  Sender& sender = *sender_on_clock;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(5, 1000));
  sender.Enqueue(*id, OnePointEach(5, 2000));
  // The first attempt is refused at once; retries wait for the clock.
  ASSERT_TRUE(WaitUntil([&] { return sender.Figures(*id).failures >= 1; }));
  const absl::Time start = clock.Now();
  std::future<TargetFigures> removal = std::async(std::launch::async, [&] {
    return sender.RemoveTarget(*id, start + absl::Milliseconds(500));
  });
  // Just before the deadline, the target is still being tried.
  Advance(clock, sender, absl::Milliseconds(499));
  EXPECT_EQ(removal.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  Advance(clock, sender, absl::Milliseconds(1));
  const TargetFigures figures = removal.get();
  const absl::Duration elapsed = clock.Now() - start;

  EXPECT_GE(elapsed, absl::Milliseconds(500));
  EXPECT_LT(elapsed, absl::Seconds(5));
  EXPECT_EQ(figures.points_sent, 0u);
  EXPECT_EQ(figures.points_dropped, 10u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("shutdown_timeout", 10u)));
  EXPECT_EQ(figures.points_queued, 0u);
  EXPECT_GE(figures.failures, 1u);
  EXPECT_EQ(figures.retries + 1, figures.requests);
  EXPECT_THAT(figures.last_error, StartsWith("curl: "));
  EXPECT_EQ(sender.Figures(*id).points_sent, 0u);  // removed: empty figures
}

TEST(SenderTest, DeadTargetsDoNotDelayAHealthyOne) {
  std::unique_ptr<FakeReceiver> healthy = StartReceiver();
  std::unique_ptr<FakeReceiver> silent = StartReceiver();
  std::unique_ptr<FakeReceiver> refusing = StartReceiver();
  ASSERT_NE(healthy, nullptr);
  ASSERT_NE(silent, nullptr);
  ASSERT_NE(refusing, nullptr);
  FakeResponse stall;
  stall.stall = true;
  silent->SetDefault(stall);  // accepts and never answers
  refusing->StopListening();

  Sender sender;
  absl::StatusOr<Sender::TargetId> silent_id = sender.AddTarget(Options(silent->Url()));
  absl::StatusOr<Sender::TargetId> refusing_id = sender.AddTarget(Options(refusing->Url()));
  absl::StatusOr<Sender::TargetId> healthy_id = sender.AddTarget(Options(healthy->Url()));
  ASSERT_TRUE(silent_id.ok() && refusing_id.ok() && healthy_id.ok());
  for (int i = 1; i <= 5; ++i) {
    sender.Enqueue(*silent_id, OnePointEach(100, i * 1000));
    sender.Enqueue(*refusing_id, OnePointEach(100, i * 1000));
    sender.Enqueue(*healthy_id, OnePointEach(100, i * 1000));
  }
  ASSERT_TRUE(silent->WaitForRequests(1, kWait));

  // Everything for the healthy target is delivered, well before its deadline, while the
  // others still hold all their points.
  const TargetFigures figures = sender.RemoveTarget(*healthy_id, absl::Now() + kWait);
  EXPECT_EQ(figures.points_sent, 500u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(sender.Figures(*silent_id).points_queued, 500u);
  EXPECT_EQ(sender.Figures(*refusing_id).points_queued, 500u);

  const TargetFigures silent_figures = sender.RemoveTarget(*silent_id, absl::Now());
  EXPECT_THAT(silent_figures.dropped_by_reason,
              UnorderedElementsAre(Pair("shutdown_timeout", 500u)));
  const TargetFigures refusing_figures = sender.RemoveTarget(*refusing_id, absl::Now());
  EXPECT_THAT(refusing_figures.dropped_by_reason,
              UnorderedElementsAre(Pair("shutdown_timeout", 500u)));
}

TEST(SenderTest, RecoversAfterAnOutage) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();
  sender.Enqueue(*id, OnePointEach(2, 1000));
  // No hook tells when the sender saw an answer or met the outage; its figures do.
  ASSERT_TRUE(WaitUntil([&] { return sender.Figures(*id).points_sent == 2; }));

  receiver->StopListening();  // also closes the kept-alive connection
  sender.Enqueue(*id, OnePointEach(2, 2000));
  ASSERT_TRUE(WaitUntil([&] { return sender.Figures(*id).failures >= 1; }));
  const int port = receiver->port();
  ASSERT_TRUE(receiver->Listen().ok());
  EXPECT_EQ(receiver->port(), port);
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(figures.points_sent, 4u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(figures.retries, figures.failures);
  EXPECT_THAT(
      Delivered(receiver->Requests()),
      ElementsAre(DeliveredPoint{"__name__=s0", 1000, 0}, DeliveredPoint{"__name__=s1", 1000, 1},
                  DeliveredPoint{"__name__=s0", 2000, 0}, DeliveredPoint{"__name__=s1", 2000, 1}));
}

TEST(SenderTest, DestructionAbandonsWorkInFlight) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stall;
  stall.stall = true;
  receiver->SetDefault(stall);
  {
    Sender sender;
    absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
    ASSERT_TRUE(id.ok()) << id.status();
    sender.Enqueue(*id, OnePointEach(3, 1000));
    ASSERT_TRUE(receiver->WaitForRequests(1, kWait));
  }  // must not wait for the held request
  EXPECT_EQ(receiver->RequestCount(), 1u);
}

TEST(SenderTest, UnknownTargets) {
  Sender sender;
  sender.Enqueue(12345, OnePointEach(1, 1000));  // logged, nothing else
  const TargetFigures figures = sender.RemoveTarget(12345, absl::Now());
  EXPECT_EQ(figures.points_sent, 0u);
  EXPECT_EQ(figures.points_dropped, 0u);
}

// --- Secrets ----------------------------------------------------------------------------------

TEST(SenderSecretsTest, TokensInTheUrlNeverReachLogsOrLastError) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  // A receiver that echoes what it was sent, secrets included.
  receiver->Push(FakeResponse::WithStatus(
      400, "rejected api_token=sup3r-s3cret-value with Bearer b34rer-s3cret"));
  const std::string url = receiver->Url("/api/v1/write?api_token=sup3r-s3cret-value&tenant=a");
  // Nothing listens on the dead one: curl's errors are checked too.
  std::unique_ptr<FakeReceiver> dead = StartReceiver();
  ASSERT_NE(dead, nullptr);
  dead->StopListening();
  const std::string dead_url = dead->Url("/write?token=sup3r-s3cret-value");

  ::testing::internal::CaptureStderr();
  TargetFigures figures, dead_figures;
  {
    Sender sender;
    TargetOptions options = Options(url);
    options.display_url = RedactRemoteWriteUrl(url);  // as lib/export sets it
    options.bearer_token = "b34rer-s3cret";
    absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
    ASSERT_TRUE(id.ok()) << id.status();
    TargetOptions dead_options = Options(dead_url);  // no display_url: the sender redacts
    absl::StatusOr<Sender::TargetId> dead_id = sender.AddTarget(dead_options);
    ASSERT_TRUE(dead_id.ok()) << dead_id.status();
    sender.Enqueue(*id, OnePointEach(2, 1000));
    sender.Enqueue(*dead_id, OnePointEach(2, 1000));
    figures = sender.RemoveTarget(*id, absl::Now() + kWait);
    ASSERT_TRUE(WaitUntil([&] { return sender.Figures(*dead_id).failures >= 1; }));
    dead_figures = sender.RemoveTarget(*dead_id, absl::Now());
  }
  const std::string logs = ::testing::internal::GetCapturedStderr();

  ASSERT_EQ(receiver->RequestCount(), 1u);
  EXPECT_EQ(receiver->Requests()[0].target, "/api/v1/write?api_token=sup3r-s3cret-value&tenant=a");
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("http_400", 2u)));
  EXPECT_EQ(figures.last_error, "HTTP 400: rejected api_token=REDACTED with Bearer REDACTED");
  EXPECT_THAT(dead_figures.last_error, StartsWith("curl: "));
  for (const std::string& text : {logs, figures.last_error, dead_figures.last_error}) {
    EXPECT_THAT(text, ::testing::Not(HasSubstr("sup3r-s3cret-value")));
    EXPECT_THAT(text, ::testing::Not(HasSubstr("b34rer-s3cret")));
  }
  EXPECT_THAT(logs, HasSubstr("api_token=REDACTED&tenant=REDACTED"));
  EXPECT_THAT(logs, HasSubstr("/write?token=REDACTED"));
}

// Issue 13, item 2: a target whose error page echoes the request's headers must not show the
// basic-auth credentials (base64 of user:password), whether they come from the options or from
// the URL's userinfo.
TEST(SenderSecretsTest, EchoedBasicAuthNeverReachesLogsOrLastError) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse echo = FakeResponse::WithStatus(401, "unauthorized; you sent:");
  echo.echo_headers = true;
  receiver->SetDefault(echo);
  const std::string option_pair = "alice:0pt10n-pa55word";
  const std::string url_pair = "bob:ur1%2Dpa55";                     // decoded: bob:ur1-pa55
  const std::string option_base64 = "YWxpY2U6MHB0MTBuLXBhNTV3b3Jk";  // base64(option_pair)
  const std::string url_base64 = "Ym9iOnVyMS1wYTU1";                 // base64("bob:ur1-pa55")

  ::testing::internal::CaptureStderr();
  TargetFigures by_options, by_url;
  {
    Sender sender;
    TargetOptions options = Options(receiver->Url("/api/v1/write?tenant=a"));
    options.username = "alice";
    options.password = "0pt10n-pa55word";
    absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
    ASSERT_TRUE(id.ok()) << id.status();
    const std::string url =
        absl::StrCat("http://", url_pair, "@127.0.0.1:", receiver->port(), "/api/v1/write");
    absl::StatusOr<Sender::TargetId> url_id = sender.AddTarget(Options(url));
    ASSERT_TRUE(url_id.ok()) << url_id.status();
    sender.Enqueue(*id, OnePointEach(1, 1000));
    sender.Enqueue(*url_id, OnePointEach(1, 1000));
    by_options = sender.RemoveTarget(*id, absl::Now() + kWait);
    by_url = sender.RemoveTarget(*url_id, absl::Now() + kWait);
  }
  const std::string logs = ::testing::internal::GetCapturedStderr();

  ASSERT_EQ(receiver->RequestCount(), 2u);
  std::vector<std::string> sent;
  for (const ReceivedRequest& request : receiver->Requests()) {
    sent.push_back(request.Header("Authorization").value_or(""));
  }
  EXPECT_THAT(sent, UnorderedElementsAre("Basic " + option_base64, "Basic " + url_base64));
  EXPECT_THAT(by_options.last_error, HasSubstr("Authorization: Basic REDACTED"));
  EXPECT_THAT(by_url.last_error, HasSubstr("Authorization: Basic REDACTED"));
  for (const std::string& text : {logs, by_options.last_error, by_url.last_error}) {
    for (const std::string& secret :
         {option_base64, url_base64, option_pair, url_pair, std::string("0pt10n-pa55word"),
          std::string("ur1-pa55"), std::string("ur1%2Dpa55")}) {
      EXPECT_THAT(text, ::testing::Not(HasSubstr(secret))) << text;
    }
  }
}

// --- Failures and recovery --------------------------------------------------------------------

TEST(SenderTest, ServiceUnavailableThenSuccessDeliversOnce) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(503, "overloaded"));
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(
      *id, Batch({{MakeSeries("a"), {{1000, 1}, {2000, 2}}}, {MakeSeries("b"), {{2000, 5}}}}));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].answer.status, 503);
  EXPECT_EQ(requests[1].body, requests[0].body);  // the same payload, sent again
  EXPECT_THAT(Delivered(requests), ElementsAre(DeliveredPoint{"__name__=a", 1000, 1},
                                               DeliveredPoint{"__name__=a", 2000, 2},
                                               DeliveredPoint{"__name__=b", 2000, 5}));
  EXPECT_EQ(figures.points_sent, 3u);
  EXPECT_EQ(figures.requests, 2u);
  EXPECT_EQ(figures.retries, 1u);
  EXPECT_EQ(figures.failures, 1u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(figures.highest_timestamp_ms, 2000);
  EXPECT_EQ(figures.last_error, "HTTP 503: overloaded");
}

TEST(SenderTest, TooLargeSplitsTheRequestInHalvesInOrder) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(413, "too big"));  // a, b, c, d
  receiver->Push(FakeResponse::WithStatus(413, "too big"));  // a, b
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_in_flight = 1;  // arrival order = send order
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, Batch({{MakeSeries("a"), {{1, 1}, {2, 2}}},
                             {MakeSeries("b"), {{1, 3}, {2, 4}}},
                             {MakeSeries("c"), {{1, 5}, {2, 6}}},
                             {MakeSeries("d"), {{1, 7}, {2, 8}}}}));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  std::vector<std::vector<std::string>> series_per_request;
  for (const ReceivedRequest& r : requests) {
    std::vector<std::string> names;
    for (const auto& ts : r.write_request.timeseries()) names.push_back(SeriesKey(ts));
    series_per_request.push_back(names);
  }
  EXPECT_THAT(series_per_request,
              ElementsAre(ElementsAre("__name__=a", "__name__=b", "__name__=c", "__name__=d"),
                          ElementsAre("__name__=a", "__name__=b"), ElementsAre("__name__=a"),
                          ElementsAre("__name__=b"), ElementsAre("__name__=c", "__name__=d")));
  EXPECT_THAT(Delivered(requests),
              ElementsAre(DeliveredPoint{"__name__=a", 1, 1}, DeliveredPoint{"__name__=a", 2, 2},
                          DeliveredPoint{"__name__=b", 1, 3}, DeliveredPoint{"__name__=b", 2, 4},
                          DeliveredPoint{"__name__=c", 1, 5}, DeliveredPoint{"__name__=c", 2, 6},
                          DeliveredPoint{"__name__=d", 1, 7}, DeliveredPoint{"__name__=d", 2, 8}));
  EXPECT_EQ(figures.points_sent, 8u);
  EXPECT_EQ(figures.requests, 5u);
  EXPECT_EQ(figures.retries, 0u);  // the halves are new payloads, not retries
  EXPECT_EQ(figures.failures, 2u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(figures.last_error, "HTTP 413: too big");
}

TEST(SenderTest, TooLargeSinglePointIsDroppedAndTheSeriesGoesOnInOrder) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(413));  // points 1, 2, 3
  receiver->Push(FakeResponse::WithStatus(413));  // point 1: dropped
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_in_flight = 4;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, Batch({{MakeSeries("long"), {{1000, 1}, {2000, 2}, {3000, 3}}}}));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 3u);
  std::vector<int> sizes;
  for (const ReceivedRequest& r : requests)
    sizes.push_back(r.write_request.timeseries(0).samples_size());
  // The halves of one series go one after the other: the first half before the second.
  EXPECT_THAT(sizes, ElementsAre(3, 1, 2));
  EXPECT_THAT(Delivered(requests), ElementsAre(DeliveredPoint{"__name__=long", 2000, 2},
                                               DeliveredPoint{"__name__=long", 3000, 3}));
  EXPECT_EQ(figures.points_sent, 2u);
  EXPECT_EQ(figures.points_dropped, 1u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("http_413", 1u)));
  EXPECT_EQ(figures.requests, 3u);
  EXPECT_EQ(figures.failures, 2u);
  EXPECT_EQ(figures.retries, 0u);
}

TEST(SenderTest, RequestsAreCappedByBytes) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.max_bytes_per_request = 1024;
  options.max_in_flight = 1;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  // s0..s9, 20 points each at timestamps 1..20. On the wire: labels 16 bytes (field tag and
  // length, "__name__" and "sN" with theirs), each sample 13 (tag, length, value 1+8,
  // timestamp 1+1): 16 + 20 * 13 = 276, plus tag and 2-byte length = 279 per series, so three
  // series (837) fit in 1024 bytes and four (1116) do not.
  PointBatch batch;
  for (int s = 0; s < 10; ++s) {
    SeriesPoints::Points points;
    for (int t = 1; t <= 20; ++t) points.push_back({t, double(s)});
    batch.series.push_back({MakeSeries(absl::StrCat("s", s)), points});
  }
  sender.Enqueue(*id, batch);
  // One series of 100 points (labels 18 bytes): 1318 bytes, over the cap on its own; the
  // sender reserves 11 + 18 bytes per piece, so 76 samples (988 + 29) fit in one piece.
  SeriesPoints::Points long_points;
  for (int t = 1; t <= 100; ++t) long_points.push_back({t, double(t)});
  sender.Enqueue(*id, Batch({{MakeSeries("long"), long_points}}));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 6u);
  std::vector<int> series_counts;
  for (const ReceivedRequest& r : requests) {
    EXPECT_LE(r.write_request.ByteSizeLong(), 1024u);
    series_counts.push_back(r.write_request.timeseries_size());
  }
  EXPECT_THAT(series_counts, ElementsAre(3, 3, 3, 1, 1, 1));
  EXPECT_EQ(requests[4].write_request.timeseries(0).samples_size(), 76);
  EXPECT_EQ(requests[5].write_request.timeseries(0).samples_size(), 24);
  const std::vector<DeliveredPoint> delivered = Delivered(requests);
  ASSERT_EQ(delivered.size(), 300u);
  for (int t = 1; t <= 100; ++t) {
    EXPECT_EQ(delivered[199 + t], (DeliveredPoint{"__name__=long", t, double(t)}));
  }
  EXPECT_EQ(figures.points_sent, 300u);
}

TEST(SenderTest, StallLongerThanTheTimeoutIsRetriedWithTheSamePayload) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stall;
  stall.stall = true;
  receiver->Push(stall);
  Sender sender;
  TargetOptions options = Options(receiver->Url());
  options.timeout = absl::Milliseconds(200);
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender.Enqueue(*id, OnePointEach(3, 7000));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);
  receiver->ReleaseStalled();

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].body, requests[0].body);
  EXPECT_GE(requests[1].received_at - requests[0].received_at, absl::Milliseconds(200));
  EXPECT_THAT(Delivered({requests[1]}), ElementsAre(DeliveredPoint{"__name__=s0", 7000, 0},
                                                    DeliveredPoint{"__name__=s1", 7000, 1},
                                                    DeliveredPoint{"__name__=s2", 7000, 2}));
  EXPECT_EQ(figures.points_sent, 3u);
  EXPECT_EQ(figures.requests, 2u);
  EXPECT_EQ(figures.retries, 1u);
  EXPECT_EQ(figures.failures, 1u);
  EXPECT_THAT(figures.last_error, StartsWith("curl: Operation timed out after "));
}

// The expected points of OnePointEach(per_batch, t) for t = 1000, 2000, ... batches * 1000.
std::vector<DeliveredPoint> Expected(int batches, int per_batch) {
  std::vector<DeliveredPoint> out;
  for (int b = 1; b <= batches; ++b) {
    for (int i = 0; i < per_batch; ++i) {
      out.push_back({absl::StrCat("__name__=s", i), b * 1000, double(i)});
    }
  }
  return out;
}

TEST(SenderTest, LongOutageThenEveryPointArrivesInOrder) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();
  Sender sender;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok()) << id.status();

  for (int b = 1; b <= 6; ++b) sender.Enqueue(*id, OnePointEach(3, b * 1000));
  // Several failed attempts (connection refused), nothing delivered, everything held.
  ASSERT_TRUE(WaitUntil([&] { return sender.Figures(*id).failures >= 3; }));
  const TargetFigures during = sender.Figures(*id);
  EXPECT_EQ(during.points_sent, 0u);
  EXPECT_EQ(during.points_queued, 18u);
  ASSERT_TRUE(receiver->Listen().ok());
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  // Connections were refused, so nothing arrived twice: the receiver saw one request per batch.
  const std::vector<ReceivedRequest> requests = receiver->Requests();
  EXPECT_EQ(requests.size(), 6u);
  EXPECT_EQ(Delivered(requests), Expected(6, 3));
  EXPECT_EQ(figures.points_sent, 18u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(figures.requests - figures.retries, 6u);
  EXPECT_EQ(figures.failures, figures.retries);
  EXPECT_GE(figures.failures, 3u);
}

// --- Spool ------------------------------------------------------------------------------------

std::string NewTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/spool-XXXXXX");
  EXPECT_NE(mkdtemp(pattern.data()), nullptr);
  return pattern;
}

// The spool files in `dir` and their contents.
std::map<std::string, std::string> SpoolFilesIn(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!absl::EndsWith(name, ".rwspool")) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    out[name] = content.str();
  }
  return out;
}

std::unique_ptr<Sender> SpoolingSender(const std::string& dir, uint64_t max_bytes = 1 << 30) {
  SenderOptions options;
  options.spool_dir = dir;
  options.spool_max_bytes = max_bytes;
  absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(options);
  EXPECT_TRUE(sender.ok()) << sender.status();
  return sender.ok() ? *std::move(sender) : nullptr;
}

TEST(SenderSpoolTest, OverflowGoesToDiskAndIsDeliveredInOrder) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stall;
  stall.stall = true;
  receiver->Push(stall);
  const std::string dir = NewTempDir();
  std::unique_ptr<Sender> sender = SpoolingSender(dir);
  ASSERT_NE(sender, nullptr);
  TargetOptions options = Options(receiver->Url());
  options.max_queued_points = 25;
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender->Enqueue(*id, OnePointEach(10, 1000));
  ASSERT_TRUE(receiver->WaitForRequests(1, kWait));  // batch 1 in flight, held
  sender->Enqueue(*id, OnePointEach(10, 2000));      // 20 in memory
  sender->Enqueue(*id, OnePointEach(10, 3000));      // 30 > 25: batch 2 to disk
  sender->Enqueue(*id, OnePointEach(10, 4000));      // 30 > 25: batch 3 to disk
  const TargetFigures during = sender->Figures(*id);
  EXPECT_EQ(during.points_queued, 40u);
  EXPECT_EQ(during.points_spooled_queued, 20u);
  EXPECT_EQ(during.points_dropped, 0u);
  EXPECT_EQ(sender->Spool().files, 2u);
  EXPECT_EQ(sender->Spool().points, 20u);
  EXPECT_EQ(SpoolFilesIn(dir).size(), 2u);

  receiver->ReleaseStalled();
  const TargetFigures figures = sender->RemoveTarget(*id, absl::Now() + kWait);
  EXPECT_EQ(Delivered(receiver->Requests()), Expected(4, 10));
  EXPECT_EQ(figures.points_sent, 40u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(figures.requests, 4u);
  EXPECT_EQ(sender->Spool().files, 0u);
  EXPECT_TRUE(SpoolFilesIn(dir).empty());
}

TEST(SenderSpoolTest, UndeliveredAtTheDeadlineIsResumedByANewSender) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();  // down during the first run
  const std::string dir = NewTempDir();
  const std::string url = receiver->Url("/api/v1/write?access_token=qu3ry-s3cret");
  {
    std::unique_ptr<Sender> sender = SpoolingSender(dir);
    ASSERT_NE(sender, nullptr);
    TargetOptions options = Options(url);
    options.bearer_token = "first-t0ken";
    options.max_points_per_request = 2;  // batches of 3 points: two requests each
    options.max_in_flight = 1;           // arrival order = send order
    absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
    ASSERT_TRUE(id.ok()) << id.status();
    for (int b = 1; b <= 3; ++b) sender->Enqueue(*id, OnePointEach(3, b * 1000));
    ASSERT_TRUE(WaitUntil([&] { return sender->Figures(*id).failures >= 1; }));
    const TargetFigures figures = sender->RemoveTarget(*id, absl::Now() + absl::Milliseconds(200));
    EXPECT_EQ(figures.points_sent, 0u);
    EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("spooled", 9u)));
    EXPECT_EQ(sender->Spool().points, 9u);
  }  // the server stops
  const std::map<std::string, std::string> files = SpoolFilesIn(dir);
  EXPECT_EQ(files.size(), 3u);  // one per batch
  for (const auto& [name, content] : files) {
    EXPECT_THAT(content, ::testing::Not(HasSubstr("first-t0ken"))) << name;
    EXPECT_THAT(content, ::testing::Not(HasSubstr("qu3ry-s3cret"))) << name;
    EXPECT_THAT(content, HasSubstr("access_token=REDACTED")) << name;
  }

  ASSERT_TRUE(receiver->Listen().ok());
  std::unique_ptr<Sender> sender = SpoolingSender(dir);  // the server starts again
  ASSERT_NE(sender, nullptr);
  EXPECT_EQ(sender->Spool().files, 3u);
  EXPECT_EQ(sender->Spool().points, 9u);
  // Another target does not take them.
  absl::StatusOr<Sender::TargetId> other = sender->AddTarget(Options(receiver->Url("/other")));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(sender->Figures(*other).points_from_spool, 0u);
  sender->RemoveTarget(*other, absl::Now() + kWait);
  // The same URL, credentials given again (rotated), does.
  TargetOptions options = Options(url);
  options.bearer_token = "second-t0ken";
  options.max_points_per_request = 2;
  options.max_in_flight = 1;
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(sender->Figures(*id).points_from_spool, 9u);
  sender->Enqueue(*id, OnePointEach(3, 4000));
  const TargetFigures figures = sender->RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  EXPECT_EQ(Delivered(requests), Expected(4, 3));  // spooled first, in order, once each
  std::vector<int> sizes;
  for (const ReceivedRequest& r : requests) sizes.push_back(r.write_request.timeseries_size());
  EXPECT_THAT(sizes, ElementsAre(2, 1, 2, 1, 2, 1, 2, 1));  // as cut in the first run
  for (const ReceivedRequest& r : requests) {
    EXPECT_EQ(r.Header("Authorization"), "Bearer second-t0ken");
    EXPECT_EQ(r.target, "/api/v1/write?access_token=qu3ry-s3cret");
  }
  EXPECT_EQ(figures.points_from_spool, 9u);
  EXPECT_EQ(figures.points_sent, 12u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(figures.highest_timestamp_ms, 4000);
  EXPECT_EQ(sender->Spool().files, 0u);
  EXPECT_TRUE(SpoolFilesIn(dir).empty());
}

TEST(SenderSpoolTest, OneSenderPerDirectory) {
  const std::string dir = NewTempDir();
  std::unique_ptr<Sender> first = SpoolingSender(dir);
  ASSERT_NE(first, nullptr);
  SenderOptions options;
  options.spool_dir = dir;
  EXPECT_EQ(Sender::Create(options).status().code(), absl::StatusCode::kFailedPrecondition);
  options.spool_dir = "/proc/rwexport-cannot-create-this";
  EXPECT_EQ(Sender::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SenderSpoolTest, BoundDeletesTheOldestSpooledBatches) {
  // The size of one spool file of OnePointEach(10, t) for 4-digit t, measured.
  uint64_t file_bytes = 0;
  {
    std::unique_ptr<FakeReceiver> receiver = StartReceiver();
    ASSERT_NE(receiver, nullptr);
    receiver->StopListening();
    std::unique_ptr<Sender> sender = SpoolingSender(NewTempDir());
    ASSERT_NE(sender, nullptr);
    absl::StatusOr<Sender::TargetId> id = sender->AddTarget(Options(receiver->Url()));
    ASSERT_TRUE(id.ok());
    sender->Enqueue(*id, OnePointEach(10, 1000));
    sender->RemoveTarget(*id, absl::Now());
    ASSERT_EQ(sender->Spool().files, 1u);
    file_bytes = sender->Spool().bytes;
  }

  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stall;
  stall.stall = true;
  receiver->Push(stall);
  const std::string dir = NewTempDir();
  std::unique_ptr<Sender> sender = SpoolingSender(dir, file_bytes * 5 / 2);  // room for two
  ASSERT_NE(sender, nullptr);
  TargetOptions options = Options(receiver->Url());
  options.max_queued_points = 10;
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  sender->Enqueue(*id, OnePointEach(10, 1000));
  ASSERT_TRUE(receiver->WaitForRequests(1, kWait));  // batch 1 in flight, held
  // Batches 2..6 overflow to disk; the spool keeps the newest two (5 and 6).
  for (int b = 2; b <= 6; ++b) sender->Enqueue(*id, OnePointEach(10, b * 1000));
  EXPECT_EQ(sender->Spool().files, 2u);
  EXPECT_EQ(sender->Spool().points, 20u);
  EXPECT_LE(sender->Spool().bytes, file_bytes * 5 / 2);
  receiver->ReleaseStalled();
  const TargetFigures figures = sender->RemoveTarget(*id, absl::Now() + kWait);

  std::vector<int64_t> timestamps;
  for (const DeliveredPoint& p : Delivered(receiver->Requests())) {
    if (timestamps.empty() || timestamps.back() != p.timestamp_ms)
      timestamps.push_back(p.timestamp_ms);
  }
  EXPECT_THAT(timestamps, ElementsAre(1000, 5000, 6000));
  EXPECT_EQ(figures.points_sent, 30u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("spool_full", 30u)));
  EXPECT_EQ(figures.points_queued, 0u);
  EXPECT_EQ(sender->Spool().points_dropped_unowned, 0u);
}

// --- Durable queues (SenderOptions::write_through): the spool is every batch's queue on disk.

std::unique_ptr<Sender> DurableSender(const std::string& dir) {
  SenderOptions options;
  options.spool_dir = dir;
  options.write_through = true;
  absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(options);
  EXPECT_TRUE(sender.ok()) << sender.status();
  return sender.ok() ? *std::move(sender) : nullptr;
}

TEST(DurableQueueTest, NeedsASpoolDirectory) {
  SenderOptions options;
  options.write_through = true;
  EXPECT_EQ(Sender::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DurableQueueTest, EveryBatchIsOnDiskUntilDeliveredAndOverflowStaysOnlyThere) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  FakeResponse stall;
  stall.stall = true;
  receiver->Push(stall);
  const std::string dir = NewTempDir();
  std::unique_ptr<Sender> sender = DurableSender(dir);
  ASSERT_NE(sender, nullptr);
  TargetOptions options = Options(receiver->Url());
  options.max_queued_points = 25;
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  sender->Enqueue(*id, OnePointEach(10, 1000));
  ASSERT_TRUE(sender->AwaitQueueCommits(kWait));
  EXPECT_EQ(SpoolFilesIn(dir).size(), 1u);           // on disk once its group committed
  ASSERT_TRUE(receiver->WaitForRequests(1, kWait));  // batch 1 in flight, held
  sender->Enqueue(*id, OnePointEach(10, 2000));      // 20 in memory (and on disk)
  ASSERT_TRUE(sender->AwaitQueueCommits(kWait));
  sender->Enqueue(*id, OnePointEach(10, 3000));  // 30 > 25: batch 2 only on disk
  ASSERT_TRUE(sender->AwaitQueueCommits(kWait));
  sender->Enqueue(*id, OnePointEach(10, 4000));  // 30 > 25: batch 3 only on disk
  ASSERT_TRUE(sender->AwaitQueueCommits(kWait));
  const TargetFigures during = sender->Figures(*id);
  EXPECT_EQ(during.points_queued, 40u);
  EXPECT_EQ(during.points_spooled_queued, 20u);
  EXPECT_EQ(during.points_dropped, 0u);
  EXPECT_TRUE(during.queue_durable);
  EXPECT_EQ(SpoolFilesIn(dir).size(), 4u);  // every batch, the one in flight included

  receiver->ReleaseStalled();
  const TargetFigures figures = sender->RemoveTarget(*id, absl::Now() + kWait);
  EXPECT_EQ(Delivered(receiver->Requests()), Expected(4, 10));
  EXPECT_EQ(figures.points_sent, 40u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(figures.requests, 4u);
  EXPECT_EQ(sender->Spool().files, 0u);
  EXPECT_TRUE(SpoolFilesIn(dir).empty());  // removed once delivered
}

TEST(DurableQueueTest, QueueSurvivesANewSenderAndIsDeliveredFirstInOrder) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();  // down during the first run
  const std::string dir = NewTempDir();
  const std::string url = receiver->Url("/api/v1/write?access_token=qu3ry-s3cret");
  auto options_for = [&url](std::string scope) {
    TargetOptions options = Options(url);
    options.bearer_token = "t0ken";
    options.max_points_per_request = 2;  // batches of 3 points: two requests each
    options.max_in_flight = 1;           // arrival order = send order
    options.queue_scope = std::move(scope);
    return options;
  };
  std::map<std::string, std::string> files;
  {
    std::unique_ptr<Sender> sender = DurableSender(dir);
    ASSERT_NE(sender, nullptr);
    absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options_for("export-a/0"));
    ASSERT_TRUE(id.ok()) << id.status();
    for (int b = 1; b <= 3; ++b) sender->Enqueue(*id, OnePointEach(3, b * 1000));
    ASSERT_TRUE(WaitUntil([&] { return sender->Figures(*id).failures >= 1; }));
    ASSERT_TRUE(sender->AwaitQueueCommits(kWait));
    EXPECT_TRUE(sender->Figures(*id).queue_durable);
    // What a crash (kill -9) would leave: every queued batch, committed.
    files = SpoolFilesIn(dir);
  }
  EXPECT_EQ(files.size(), 3u);  // one per batch
  for (const auto& [name, content] : files) {
    EXPECT_THAT(content, ::testing::Not(HasSubstr("t0ken"))) << name;
    EXPECT_THAT(content, ::testing::Not(HasSubstr("qu3ry-s3cret"))) << name;
  }
  EXPECT_EQ(SpoolFilesIn(dir), files);  // the destruction kept them as they were

  ASSERT_TRUE(receiver->Listen().ok());
  std::unique_ptr<Sender> sender = DurableSender(dir);  // the server starts again
  ASSERT_NE(sender, nullptr);
  EXPECT_EQ(sender->Spool().files, 3u);
  // Another export's target with the same URL does not take them.
  absl::StatusOr<Sender::TargetId> other = sender->AddTarget(options_for("export-b/0"));
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(sender->Figures(*other).points_from_spool, 0u);
  sender->RemoveTarget(*other, absl::Now() + kWait);
  // The same export's target (the recovered export) does, and delivers them first.
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options_for("export-a/0"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(sender->Figures(*id).points_from_spool, 9u);
  EXPECT_EQ(sender->Figures(*id).from_spool_through_ms, 3000);
  sender->Enqueue(*id, OnePointEach(3, 4000));
  const TargetFigures figures = sender->RemoveTarget(*id, absl::Now() + kWait);

  const std::vector<ReceivedRequest> requests = receiver->Requests();
  EXPECT_EQ(Delivered(requests), Expected(4, 3));  // queued first, in order, once each
  std::vector<int> sizes;
  for (const ReceivedRequest& r : requests) sizes.push_back(r.write_request.timeseries_size());
  EXPECT_THAT(sizes, ElementsAre(2, 1, 2, 1, 2, 1, 2, 1));  // as cut in the first run
  EXPECT_EQ(figures.points_from_spool, 9u);
  EXPECT_EQ(figures.points_sent, 12u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_EQ(sender->Spool().files, 0u);
  EXPECT_TRUE(SpoolFilesIn(dir).empty());  // removed once delivered
  EXPECT_EQ(sender->DiscardUnclaimed(), 0u);
}

// Files no target took over after the recovery belong to exports no longer running.
TEST(DurableQueueTest, UnclaimedFilesAreDiscarded) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();
  const std::string dir = NewTempDir();
  TargetOptions options = Options(receiver->Url());
  {
    std::unique_ptr<Sender> sender = DurableSender(dir);
    ASSERT_NE(sender, nullptr);
    for (const char* scope : {"running/0", "gone/0"}) {
      options.queue_scope = scope;
      absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
      ASSERT_TRUE(id.ok()) << id.status();
      sender->Enqueue(*id, OnePointEach(3, 1000));
    }
  }
  ASSERT_EQ(SpoolFilesIn(dir).size(), 2u);
  std::unique_ptr<Sender> sender = DurableSender(dir);
  ASSERT_NE(sender, nullptr);
  options.queue_scope = "running/0";
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(sender->DiscardUnclaimed(), 3u);
  EXPECT_EQ(SpoolFilesIn(dir).size(), 1u);  // the running export's
  EXPECT_EQ(sender->Spool().points_dropped_unowned, 3u);
  EXPECT_EQ(sender->Figures(*id).points_queued, 3u);
}

// A queue file the crashed process had delivered (the crash came before its removal): sent
// again, Prometheus's "out of order" answer counts as already stored, not as a drop.
TEST(DurableQueueTest, AResumedFileTheTargetHoldsCountsAsAlreadyStored) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();
  const std::string dir = NewTempDir();
  TargetOptions options = Options(receiver->Url());
  options.max_in_flight = 1;
  options.queue_scope = "export-a/0";
  {
    std::unique_ptr<Sender> sender = DurableSender(dir);
    ASSERT_NE(sender, nullptr);
    absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
    ASSERT_TRUE(id.ok()) << id.status();
    sender->Enqueue(*id, OnePointEach(3, 1000));
    sender->Enqueue(*id, OnePointEach(3, 2000));
  }
  ASSERT_EQ(SpoolFilesIn(dir).size(), 2u);
  ASSERT_TRUE(receiver->Listen().ok());
  receiver->Push(FakeResponse::WithStatus(400, "out of order sample"));  // the first: stored
  std::unique_ptr<Sender> sender = DurableSender(dir);
  ASSERT_NE(sender, nullptr);
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  const TargetFigures figures = sender->RemoveTarget(*id, absl::Now() + kWait);
  EXPECT_EQ(receiver->Requests().size(), 2u);
  EXPECT_EQ(figures.points_sent, 6u);
  EXPECT_EQ(figures.points_already_stored, 3u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_TRUE(SpoolFilesIn(dir).empty());
}

// A target removed for good (its export stopped) drops its queue files at the deadline; one
// removed with kKeep (the export is kept for the next start) leaves them.
TEST(DurableQueueTest, DeadlineDropsTheFilesUnlessKept) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();
  const std::string dir = NewTempDir();
  std::unique_ptr<Sender> sender = DurableSender(dir);
  ASSERT_NE(sender, nullptr);
  TargetOptions options = Options(receiver->Url());
  options.queue_scope = "export-a/0";
  absl::StatusOr<Sender::TargetId> kept = sender->AddTarget(options);
  ASSERT_TRUE(kept.ok()) << kept.status();
  options.queue_scope = "export-b/0";
  absl::StatusOr<Sender::TargetId> stopped = sender->AddTarget(options);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  sender->Enqueue(*kept, OnePointEach(3, 1000));
  sender->Enqueue(*stopped, OnePointEach(4, 1000));
  ASSERT_TRUE(sender->AwaitQueueCommits(kWait));
  ASSERT_EQ(SpoolFilesIn(dir).size(), 2u);
  const TargetFigures a = sender->RemoveTarget(*kept, absl::Now(), QueueAtDeadline::kKeep);
  const TargetFigures b = sender->RemoveTarget(*stopped, absl::Now());
  EXPECT_THAT(a.dropped_by_reason, UnorderedElementsAre(Pair("spooled", 3u)));
  EXPECT_THAT(b.dropped_by_reason, UnorderedElementsAre(Pair("shutdown_timeout", 4u)));
  EXPECT_EQ(SpoolFilesIn(dir).size(), 1u);
  EXPECT_EQ(sender->Spool().points, 3u);
}

// A durable queue's batch keeps its points in memory with its encoded requests: a 413 splits
// as for a batch without a durable queue.
TEST(DurableQueueTest, TooLargeSplitsTheRequestInHalves) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->Push(FakeResponse::WithStatus(413, "too big"));  // a, b, c, d
  receiver->Push(FakeResponse::WithStatus(413, "too big"));  // a, b
  const std::string dir = NewTempDir();
  std::unique_ptr<Sender> sender = DurableSender(dir);
  ASSERT_NE(sender, nullptr);
  TargetOptions options = Options(receiver->Url());
  options.max_in_flight = 1;  // arrival order = send order
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  sender->Enqueue(*id, Batch({{MakeSeries("a"), {{1, 1}, {2, 2}}},
                              {MakeSeries("b"), {{1, 3}, {2, 4}}},
                              {MakeSeries("c"), {{1, 5}, {2, 6}}},
                              {MakeSeries("d"), {{1, 7}, {2, 8}}}}));
  const TargetFigures figures = sender->RemoveTarget(*id, absl::Now() + kWait);
  const std::vector<ReceivedRequest> requests = receiver->Requests();
  EXPECT_EQ(requests.size(), 5u);
  EXPECT_THAT(Delivered(requests),
              ElementsAre(DeliveredPoint{"__name__=a", 1, 1}, DeliveredPoint{"__name__=a", 2, 2},
                          DeliveredPoint{"__name__=b", 1, 3}, DeliveredPoint{"__name__=b", 2, 4},
                          DeliveredPoint{"__name__=c", 1, 5}, DeliveredPoint{"__name__=c", 2, 6},
                          DeliveredPoint{"__name__=d", 1, 7}, DeliveredPoint{"__name__=d", 2, 8}));
  EXPECT_EQ(figures.points_sent, 8u);
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_TRUE(SpoolFilesIn(dir).empty());
}

// The bound of the directory (spool_max_bytes) holds for durable queues too: the oldest files
// go; a batch whose file went while it was still in memory is delivered from there.
TEST(DurableQueueTest, BoundDeletesTheOldestFiles) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();
  const std::string dir = NewTempDir();
  uint64_t file_bytes = 0;
  {
    const std::string measure = NewTempDir();
    std::unique_ptr<Sender> sender = DurableSender(measure);
    ASSERT_NE(sender, nullptr);
    absl::StatusOr<Sender::TargetId> id = sender->AddTarget(Options(receiver->Url()));
    ASSERT_TRUE(id.ok());
    sender->Enqueue(*id, OnePointEach(10, 1000));
    ASSERT_TRUE(sender->AwaitQueueCommits(kWait));
    for (const auto& [name, content] : SpoolFilesIn(measure)) file_bytes = content.size();
  }
  ASSERT_GT(file_bytes, 0u);
  SenderOptions sender_options;
  sender_options.spool_dir = dir;
  sender_options.write_through = true;
  sender_options.spool_max_bytes = file_bytes + file_bytes / 2;  // one file fits
  absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(sender_options);
  ASSERT_TRUE(sender.ok()) << sender.status();
  absl::StatusOr<Sender::TargetId> id = (*sender)->AddTarget(Options(receiver->Url()));
  ASSERT_TRUE(id.ok());
  (*sender)->Enqueue(*id, OnePointEach(10, 1000));
  // Batch 1 is being delivered (retried): its file stays until it ends, outside the bound.
  ASSERT_TRUE(WaitUntil([&] { return (*sender)->Figures(*id).failures >= 1; }));
  (*sender)->Enqueue(*id, OnePointEach(10, 2000));
  ASSERT_TRUE((*sender)->AwaitQueueCommits(kWait));
  (*sender)->Enqueue(*id, OnePointEach(10, 3000));  // batch 2's file goes to make room
  ASSERT_TRUE((*sender)->AwaitQueueCommits(kWait));
  EXPECT_EQ(SpoolFilesIn(dir).size(), 2u);  // batches 1 and 3
  EXPECT_EQ((*sender)->Spool().files, 1u);
  EXPECT_FALSE((*sender)->Figures(*id).queue_durable);  // batch 2 is in memory only
  EXPECT_LE((*sender)->Spool().bytes, sender_options.spool_max_bytes);
  ASSERT_TRUE(receiver->Listen().ok());
  const TargetFigures figures = (*sender)->RemoveTarget(*id, absl::Now() + kWait);
  EXPECT_EQ(figures.points_sent, 30u);  // every batch was still in memory
  EXPECT_EQ(figures.points_dropped, 0u);
  EXPECT_TRUE(SpoolFilesIn(dir).empty());
}

// The files of batches written while a group commit is under way are committed together, by
// the next group: one sync for many batches. None is under its final name (nor durable) before
// its group's sync: a crash then leaves only pending files, which the next scan deletes.
TEST(DurableQueueTest, BatchesWrittenDuringACommitShareTheNextOne) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();  // nothing is delivered: every batch stays queued
  const std::string dir = NewTempDir();
  Mutex mu;
  CondVar cv;
  bool held = true;
  int gates = 0;
  SenderOptions sender_options;
  sender_options.spool_dir = dir;
  sender_options.write_through = true;
  // The first group's commit waits until released.
  sender_options.queue_commit_gate = [&] {
    MutexLock lock(&mu);
    ++gates;
    cv.SignalAll();
    while (held) cv.Wait(&mu);
  };
  absl::StatusOr<std::unique_ptr<Sender>> sender = Sender::Create(sender_options);
  ASSERT_TRUE(sender.ok()) << sender.status();
  TargetOptions options = Options(receiver->Url());
  options.queue_scope = "export-a/0";
  absl::StatusOr<Sender::TargetId> id = (*sender)->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  (*sender)->Enqueue(*id, OnePointEach(3, 1000));
  {
    MutexLock lock(&mu);
    while (gates == 0) cv.Wait(&mu);  // the first group (batch 1) is being committed
  }
  constexpr int kBatches = 20;
  for (int b = 2; b <= kBatches + 1; ++b) (*sender)->Enqueue(*id, OnePointEach(3, b * 1000));
  // Written, not durable: no file under its final name yet, and the mark would wait.
  EXPECT_TRUE(SpoolFilesIn(dir).empty());
  const TargetFigures during = (*sender)->Figures(*id);
  EXPECT_EQ(during.points_queued, 3u * (kBatches + 1));
  EXPECT_TRUE(during.queue_written);
  EXPECT_FALSE(during.queue_durable);
  EXPECT_FALSE((*sender)->AwaitQueueCommits(absl::Milliseconds(20)));
  // What a crash now leaves: no queue file (the pending ones are deleted by the scan).
  const std::string copy = NewTempDir();
  ASSERT_EQ(std::system(absl::StrCat("cp -a '", dir, "/.' '", copy, "/'").c_str()), 0);
  {
    std::unique_ptr<Sender> restarted = DurableSender(copy);
    ASSERT_NE(restarted, nullptr);
    EXPECT_EQ(restarted->Spool().files, 0u);
  }
  EXPECT_TRUE(SpoolFilesIn(copy).empty());

  {
    MutexLock lock(&mu);
    held = false;
    cv.SignalAll();
  }
  ASSERT_TRUE((*sender)->AwaitQueueCommits(kWait));
  const SpoolFigures spool = (*sender)->Spool();
  EXPECT_EQ(spool.committed_files, kBatches + 1u);
  EXPECT_EQ(spool.commits, 2u);  // batch 1, then the 20 written meanwhile
  EXPECT_TRUE((*sender)->Figures(*id).queue_durable);
  // Every file whole, one per batch, in sequence order.
  const std::map<std::string, std::string> files = SpoolFilesIn(dir);
  ASSERT_EQ(files.size(), kBatches + 1u);
  int64_t last = 0;
  for (const auto& [name, content] : files) {
    absl::StatusOr<std::pair<SpoolFileHeader, std::vector<SpooledRequest>>> read =
        ReadSpoolFile(absl::StrCat(dir, "/", name));
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->first.points, 3u);
    EXPECT_EQ(read->first.first_timestamp_ms, last + 1000);
    last = read->first.first_timestamp_ms;
  }
}

// QueueAtDeadline::kDeleteLater (a stopping export): the points are dropped at the deadline,
// but their files stay, held by the removed target, until DiscardQueue; a crash in between
// (the export's end not recorded yet) finds them for the recovered export.
TEST(DurableQueueTest, DeleteLaterKeepsTheFilesUntilDiscarded) {
  std::unique_ptr<FakeReceiver> receiver = StartReceiver();
  ASSERT_NE(receiver, nullptr);
  receiver->StopListening();
  const std::string dir = NewTempDir();
  std::unique_ptr<Sender> sender = DurableSender(dir);
  ASSERT_NE(sender, nullptr);
  TargetOptions options = Options(receiver->Url());
  options.queue_scope = "export-a/0";
  absl::StatusOr<Sender::TargetId> id = sender->AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  sender->Enqueue(*id, OnePointEach(3, 1000));
  ASSERT_TRUE(WaitUntil([&] { return sender->Figures(*id).failures >= 1; }));  // being sent
  sender->Enqueue(*id, OnePointEach(4, 2000));
  ASSERT_TRUE(sender->AwaitQueueCommits(kWait));
  const TargetFigures figures =
      sender->RemoveTarget(*id, absl::Now(), QueueAtDeadline::kDeleteLater);
  EXPECT_EQ(figures.points_sent, 0u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("shutdown_timeout", 7u)));
  EXPECT_EQ(figures.points_queued, 0u);
  EXPECT_EQ(SpoolFilesIn(dir).size(), 2u);
  EXPECT_EQ(sender->Spool().points, 7u);
  // Nothing in this process takes them over, not even a target of the same scope.
  absl::StatusOr<Sender::TargetId> same = sender->AddTarget(options);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(sender->Figures(*same).points_from_spool, 0u);
  sender->RemoveTarget(*same, absl::Now());

  // A crash now: the recovered export's target takes them over.
  const std::string copy = NewTempDir();
  ASSERT_EQ(std::system(absl::StrCat("cp -a '", dir, "/.' '", copy, "/'").c_str()), 0);
  {
    std::unique_ptr<Sender> restarted = DurableSender(copy);
    ASSERT_NE(restarted, nullptr);
    absl::StatusOr<Sender::TargetId> recovered = restarted->AddTarget(options);
    ASSERT_TRUE(recovered.ok()) << recovered.status();
    EXPECT_EQ(restarted->Figures(*recovered).points_from_spool, 7u);
  }

  // Its end recorded: the files go.
  EXPECT_EQ(sender->DiscardQueue(*id), 7u);
  EXPECT_TRUE(SpoolFilesIn(dir).empty());
  EXPECT_EQ(sender->Spool().files, 0u);
  EXPECT_EQ(sender->Spool().points_dropped_unowned, 0u);
  EXPECT_EQ(sender->DiscardQueue(*id), 0u);
}

}  // namespace
}  // namespace rwexport
