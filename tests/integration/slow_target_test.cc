// Issue 13, item 7: a slow target gets the concurrency --max_in_flight_per_target allows, with
// per-series order kept (the sender shards a target's series over that many requests).
//
// Eight series, twelve windows closed one after another (each batch's samples close the
// previous window; the aggregator's clock is a fake), a receiver answering each request after
// 300 ms, four requests allowed in flight. Wanted: requests overlap (one arrives before the
// previous was answered), every series' points arrive in timestamp order, nothing is dropped.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr absl::Duration kAnswerDelay = absl::Milliseconds(300);

TEST(SlowTargetTest, RequestsOverlapAndEachSeriesStaysInOrder) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  FakeResponse slow;
  slow.delay = kAnswerDelay;
  (*receiver)->SetDefault(slow);

  // The export's clock stands at the newest sample: windows close as samples move on.
  const int64_t origin = (absl::ToUnixSeconds(absl::Now()) / 60 * 60 - 600) * kSecond;
  TestServerOptions options;
  options.exports.aggregator.lateness = absl::ZeroDuration();
  options.exports.aggregator.clock = [origin] {
    return absl::FromUnixNanos(origin + 12 * kSecond);
  };
  options.exports.sender_defaults.max_in_flight = 4;
  TestServer server(options);
  auto stub = server.NewStub();

  v1::StartExportRequest request;
  request.set_test_run_id("slow");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url((*receiver)->Url());
  target->set_resample_rate(1);
  target->set_include_default_metrics(false);
  v1::MetricEntry* entry = target->add_metrics();
  entry->set_source_metric("vus");
  entry->add_keep_tags("instance");
  absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub, request);
  ASSERT_TRUE(started.ok()) << started.status();
  {
    SampleStream stream(stub.get(), started->export_id(), /*batch_size=*/8);
    for (int window = 0; window < 12; ++window) {
      for (int series = 0; series < 8; ++series) {
        stream.Add("vus", {{"instance", absl::StrCat("i", series)}},
                   origin + window * kSecond + kSecond / 2, window);
      }
    }
    ASSERT_TRUE(stream.Finish().ok());
  }
  absl::StatusOr<v1::StopExportResponse> stopped =
      StopExportRpc(*stub, started->export_id(), absl::Seconds(20));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->targets(0).points_dropped(), 0u);
  EXPECT_EQ(stopped->targets(0).points_sent(), 8u * 12u);

  const std::vector<ReceivedRequest> requests = (*receiver)->Requests();
  ASSERT_FALSE(requests.empty());
  // Overlap: a request that arrived before the one before it could have been answered.
  int overlapping = 0;
  for (size_t i = 1; i < requests.size(); ++i) {
    if (requests[i].received_at - requests[i - 1].received_at <
        kAnswerDelay - absl::Milliseconds(50)) {
      ++overlapping;
    }
  }
  EXPECT_GT(overlapping, 0) << requests.size()
                            << " requests, none sent while another was on "
                               "the wire";
  // Per series, timestamps strictly increase in arrival order.
  std::map<std::string, int64_t> last;
  for (const ReceivedRequest& r : requests) {
    for (const prometheus::TimeSeries& ts : r.write_request.timeseries()) {
      std::string key;
      for (const prometheus::Label& l : ts.labels())
        absl::StrAppend(&key, l.name(), "=", l.value(), ",");
      for (const prometheus::Sample& s : ts.samples()) {
        auto [it, inserted] = last.emplace(key, s.timestamp());
        if (!inserted) {
          EXPECT_GT(s.timestamp(), it->second) << key;
          it->second = s.timestamp();
        }
      }
    }
  }
  EXPECT_EQ(last.size(), 8u);
}

}  // namespace
}  // namespace rwexport
