#include "lib/client/synthetic.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

// One second of load at 40 requests/s: 10 ticks of 100 ms, 4 requests each.
TEST(SyntheticLoadTest, StreamsTheLoadItReportsAndTheExportCountsIt) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  TestServer server;
  auto stub = server.NewStub();
  v1::StartExportRequest request;
  request.set_test_run_id("synthetic");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url((*receiver)->Url());
  target->add_metrics()->set_source_metric("checkout_step_duration");  // declared by the load
  grpc::ClientContext context;
  v1::StartExportResponse started;
  ASSERT_TRUE(stub->StartExport(&context, request, &started).ok());

  SyntheticOptions options;
  options.duration = absl::Seconds(1);
  options.requests_per_second = 40;
  options.vus = 3;
  absl::StatusOr<SyntheticTotals> totals =
      RunSyntheticLoad(stub.get(), started.export_id(), options);
  ASSERT_TRUE(totals.ok()) << totals.status();
  EXPECT_EQ(totals->http_reqs, 40u);
  EXPECT_EQ(totals->iterations, 10u);  // one per 4 requests
  // Per tick: vus, 4 x (http_reqs, duration, failed, data_sent, data_received, checks), and
  // one iteration's 3 samples.
  EXPECT_EQ(totals->samples, 10u * (1 + 4 * 6 + 3));
  uint64_t by_name = 0;
  for (const auto& [name, n] : totals->http_reqs_by_name) by_name += n;
  EXPECT_EQ(by_name, 40u);
  EXPECT_EQ(totals->response.accepted(), totals->samples);
  EXPECT_EQ(totals->response.rejected(), 0u);
  EXPECT_EQ(totals->response.declaration_errors_size(), 0);

  grpc::ClientContext stop_context;
  v1::StopExportRequest stop;
  stop.set_export_id(started.export_id());
  v1::StopExportResponse stopped;
  ASSERT_TRUE(stub->StopExport(&stop_context, stop, &stopped).ok());
  EXPECT_EQ(stopped.samples_accepted(), totals->samples);
  // The last k6_http_reqs_total point the receiver got is the run's total.
  double last_total = -1;
  for (const ReceivedRequest& r : (*receiver)->Requests()) {
    for (const auto& ts : r.write_request.timeseries()) {
      if (ts.labels(0).value() == "k6_http_reqs_total") {
        last_total = ts.samples(ts.samples_size() - 1).value();
      }
    }
  }
  EXPECT_EQ(last_total, 40);
}

}  // namespace
}  // namespace rwexport
