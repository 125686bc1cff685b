// `rwexport replay` (the real binary) through IngestSamples: the finance run's exact counters,
// and the documented exit code when a broken stream cannot be resumed in time.
#include <algorithm>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "prometheus/remote.pb.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_server.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

ProcessResult RunCli(const std::vector<std::string>& args) {
  absl::StatusOr<ProcessResult> result = RunProcess(RunfilePath("client/rwexport"), args);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult();
}

// The highest value of each series name received (a cumulative counter's total).
std::map<std::string, double> Totals(const FakeReceiver& receiver) {
  std::map<std::string, double> totals;
  for (const ReceivedRequest& r : receiver.Requests()) {
    for (const prometheus::TimeSeries& ts : r.write_request.timeseries()) {
      std::string name;
      for (const prometheus::Label& l : ts.labels()) {
        if (l.name() == "__name__") name = l.value();
      }
      for (const prometheus::Sample& s : ts.samples()) {
        totals[name] = std::max(totals[name], s.value());
      }
    }
  }
  return totals;
}

TEST(AckedReplayCliTest, TheFinanceRunGivesItsExactCountersThroughAcknowledgedIngest) {
  absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  TestServer server;
  std::unique_ptr<v1::ExportService::Stub> stub = server.NewStub();
  v1::StartExportRequest request;
  request.set_test_run_id("finance");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url((*receiver)->Url());
  absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub, request);
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string id = started->export_id();

  const ProcessResult r =
      RunCli({"replay", K6TestdataFile("finance-run.json"), "--export_id=" + id,
              "--stream_id=finance-agent-1", "--batch_size=50", "--server=" + server.address()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("802 samples, 0 malformed lines; server accepted 802, rejected 0"));

  absl::StatusOr<v1::ExportStatus> status = GetExportRpc(*stub, id);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->samples_accepted(), 802u);
  EXPECT_EQ(status->samples_rejected(), 0u);
  EXPECT_EQ(status->duplicate_batches(), 0u);
  EXPECT_EQ(status->ingest_streams(), 1u);
  absl::StatusOr<v1::StopExportResponse> stopped = StopExportRpc(*stub, id);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 802u);
  const std::map<std::string, double> totals = Totals(**receiver);
  EXPECT_EQ(totals.at("k6_http_reqs_total"), 60);
  EXPECT_EQ(totals.at("k6_iterations_total"), 20);
  EXPECT_EQ(totals.at("k6_data_received_total"), 42039);
  EXPECT_EQ(totals.at("k6_data_sent_total"), 15980);
}

TEST(AckedReplayCliTest, AStreamNotResumedWithinTheTimeoutExits5WithOneLine) {
  // Nothing listens on port 1: every call fails UNAVAILABLE.
  const absl::Time start = absl::Now();
  const ProcessResult r =
      RunCli({"replay", K6TestdataFile("finance-run.json"), "--export_id=e1", "--stream_id=agent-9",
              "--resume_timeout=1s", "--server=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_THAT(
      r.err,
      HasSubstr("rwexport: DEADLINE_EXCEEDED: gave up resuming stream agent-9 after 1s without "
                "progress; last error: UNAVAILABLE: "));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

TEST(AckedReplayCliTest, ABadStreamIdIsOneLine) {
  const ProcessResult r = RunCli({"replay", K6TestdataFile("finance-run.json"), "--export_id=e1",
                                  "--stream_id=has space", "--server=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--stream_id: 1 to 128 printable ASCII characters"));
}

}  // namespace
}  // namespace rwexport
