// ReplayK6File in compact stream mode: the export receives exactly what the same file replayed
// self-describing gives (a real k6 run from shared/testdata/k6, the in-process server, the fake
// remote-write receiver).
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/client/replay.h"
#include "prometheus/remote.pb.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

// Points by series ("name{label="value",...}"), as (timestamp ms, value).
using Received = std::map<std::string, std::vector<std::pair<int64_t, double>>>;

Received Collect(const FakeReceiver& receiver) {
  Received out;
  for (const ReceivedRequest& r : receiver.Requests()) {
    EXPECT_TRUE(r.decode_status.ok()) << r.decode_status;
    for (const prometheus::TimeSeries& ts : r.write_request.timeseries()) {
      std::string name;
      for (const prometheus::Label& l : ts.labels()) {
        absl::StrAppend(&name, l.name(), "=\"", l.value(), "\",");
      }
      for (const prometheus::Sample& s : ts.samples()) {
        out[name].emplace_back(s.timestamp(), s.value());
      }
    }
  }
  return out;
}

struct ReplayRun {
  ReplayResult result;
  v1::StopExportResponse stopped;
  Received received;
};

// Replays the file into a new export to a new receiver; windows close only at StopExport (a
// lateness of an hour), so both runs are windowed alike whatever the scheduling.
ReplayRun Replay(TestServer& server, bool compact, absl::Time now) {
  ReplayRun run;
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  EXPECT_TRUE(receiver.ok()) << receiver.status();
  if (!receiver.ok()) return run;
  auto stub = server.NewStub();
  v1::StartExportRequest request;
  request.set_test_run_id("replay-compact");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url((*receiver)->Url());
  target->set_resample_rate(1);
  v1::MetricEntry* by_endpoint = target->add_metrics();
  by_endpoint->set_source_metric("http_req_duration");
  by_endpoint->set_target_metric("k6_req_duration_by_endpoint");
  by_endpoint->add_keep_tags("name");
  by_endpoint->add_keep_tags("status");
  target->add_metrics()->set_source_metric("checks");
  v1::StartExportResponse started;
  {
    grpc::ClientContext context;
    grpc::Status status = stub->StartExport(&context, request, &started);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  ReplayOptions options;
  options.now = now;
  options.batch_size = 64;  // declarations and samples spread over many batches
  options.compact = compact;
  absl::StatusOr<ReplayResult> result =
      ReplayK6File(stub.get(), started.export_id(), K6TestdataFile("finance-run.json"), options);
  EXPECT_TRUE(result.ok()) << result.status();
  if (result.ok()) run.result = *result;
  grpc::ClientContext context;
  v1::StopExportRequest stop;
  stop.set_export_id(started.export_id());
  grpc::Status status = stub->StopExport(&context, stop, &run.stopped);
  EXPECT_TRUE(status.ok()) << status.error_message();
  run.received = Collect(**receiver);
  return run;
}

TEST(ReplayCompactTest, DeliversExactlyWhatTheSelfDescribingReplayDelivers) {
  ExportOptions options;
  options.aggregator.lateness = absl::Hours(1);
  TestServer server(options);
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  const ReplayRun self = Replay(server, /*compact=*/false, now);
  const ReplayRun compact = Replay(server, /*compact=*/true, now);

  EXPECT_EQ(compact.result.samples_sent, 802u);
  EXPECT_EQ(compact.result.response.accepted(), 802u);
  EXPECT_EQ(compact.result.response.rejected(), 0u);
  EXPECT_EQ(compact.result.response.declaration_errors_size(), 0);
  EXPECT_EQ(self.result.response.accepted(), 802u);
  ASSERT_EQ(compact.stopped.targets_size(), 1);
  ASSERT_EQ(self.stopped.targets_size(), 1);
  EXPECT_EQ(compact.stopped.targets(0).series(), self.stopped.targets(0).series());
  EXPECT_EQ(compact.stopped.targets(0).points_sent(), self.stopped.targets(0).points_sent());
  EXPECT_GT(self.received.size(), 10u);
  EXPECT_EQ(compact.received, self.received);
}

}  // namespace
}  // namespace rwexport
