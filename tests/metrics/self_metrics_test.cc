// The self-metrics endpoint, scraped over HTTP during and after an export, against the
// figures GetExport and StopExport report.
#include "lib/metrics/self_metrics.h"

#include <map>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/client/sample_stream.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/http_get.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

// GET http://127.0.0.1:<port>/metrics, parsed into "name{labels}" -> value.
std::map<std::string, double> Scrape(int port) {
  const std::string body = HttpGet(port, "/metrics").body;
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    if (line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    double v;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &v)) << line;
    out[std::string(line.substr(0, space))] = v;
  }
  return out;
}

class SelfMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    server_ = std::make_unique<TestServer>();
    absl::StatusOr<std::unique_ptr<SelfMetricsServer>> metrics =
        SelfMetricsServer::Start("127.0.0.1:0", &server_->registry());
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
    stub_ = server_->NewStub();
  }

  std::unique_ptr<FakeReceiver> receiver_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<SelfMetricsServer> metrics_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

TEST_F(SelfMetricsTest, ScrapesEqualTheExportsFigures) {
  v1::StartExportRequest request;
  request.set_test_run_id("metrics-run");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(receiver_->Url() + "?token=hidden-7731");
  target->set_resample_rate(1);
  grpc::ClientContext start_context;
  v1::StartExportResponse started;
  ASSERT_TRUE(stub_->StartExport(&start_context, request, &started).ok());
  const std::string id = started.export_id();

  // Samples two seconds in the past: their windows close at once and are delivered.
  const int64_t t0 = absl::ToUnixNanos(absl::Now() - absl::Seconds(5));
  SampleStream stream(stub_.get(), id, 100);
  for (int i = 0; i < 40; ++i) stream.Add("http_reqs", {}, t0 + i * 50000000LL, 1);
  stream.Add("vus", {}, t0, 5);
  stream.Add("unknown_thing", {}, t0, 5);
  stream.Add("vus", {}, absl::ToUnixNanos(absl::Now()), 5);  // moves the export's clock
  absl::StatusOr<v1::StreamSamplesResponse> streamed = stream.Finish();
  ASSERT_TRUE(streamed.ok()) << streamed.status();

  auto get_status = [&] {
    v1::ExportStatus status;
    grpc::ClientContext context;
    v1::GetExportRequest get;
    get.set_export_id(id);
    EXPECT_TRUE(stub_->GetExport(&context, get, &status).ok());
    return status;
  };
  // Wait (bounded) until the closed windows were delivered and nothing is pending.
  v1::ExportStatus status;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    status = get_status();
  } while ((status.figures(0).points_sent() == 0 || status.figures(0).points_pending() > 0) &&
           absl::Now() < deadline);
  ASSERT_GT(status.figures(0).points_sent(), 0u);

  const std::string export_labels =
      absl::StrCat("export_id=\"", id, "\",test_run_id=\"metrics-run\"");
  const std::string target_labels =
      absl::StrCat(export_labels, ",target=\"0\",url=\"", receiver_->Url(), "?token=REDACTED\"");
  // The export's clock moves on, so a later window may close and be sent between two reads:
  // scrape between two equal statuses with nothing pending (bounded), so both saw the same.
  std::map<std::string, double> scraped;
  for (int attempt = 0; attempt < 100; ++attempt) {
    scraped = Scrape(metrics_->port());
    const v1::ExportStatus after = get_status();
    const bool settled =
        after.figures(0).points_pending() == 0 &&
        after.figures(0).points_sent() == status.figures(0).points_sent() &&
        after.figures(0).requests() == status.figures(0).requests() &&
        after.flush_duration().count() == status.flush_duration().count() &&
        scraped["rwexport_export_remote_storage_requests_in_flight{" + target_labels + "}"] == 0;
    status = after;
    if (settled) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(scraped["rwexport_exports_active"], 1);
  EXPECT_EQ(scraped["rwexport_export_samples_accepted_total{" + export_labels + "}"], 42);
  EXPECT_EQ(scraped["rwexport_export_samples_rejected_total{" + export_labels +
                    ",reason=\"unknown_metric\"}"],
            1);
  EXPECT_EQ(scraped["rwexport_export_remote_storage_samples_total{" + target_labels + "}"],
            static_cast<double>(status.figures(0).points_sent()));
  EXPECT_EQ(scraped["rwexport_export_remote_storage_requests_total{" + target_labels + "}"],
            static_cast<double>(status.figures(0).requests()));
  EXPECT_EQ(scraped["rwexport_export_remote_storage_bytes_total{" + target_labels + "}"],
            static_cast<double>(status.figures(0).bytes_sent()));
  EXPECT_EQ(scraped["rwexport_export_series{" + target_labels + "}"], 2);  // http_reqs, vus
  // Nothing was re-sent after a recovery: the figure is there, at zero.
  const std::string already_stored =
      "rwexport_export_remote_storage_samples_already_stored_total{" + target_labels + "}";
  ASSERT_EQ(scraped.count(already_stored), 1u);
  EXPECT_EQ(scraped[already_stored], 0);
  // Every completed attempt is timed; nothing is on the wire once the queue is empty.
  EXPECT_EQ(
      scraped["rwexport_export_remote_storage_send_duration_seconds_count{" + target_labels + "}"],
      static_cast<double>(status.figures(0).requests()));
  EXPECT_EQ(scraped["rwexport_export_remote_storage_send_duration_seconds_bucket{" + target_labels +
                    ",le=\"+Inf\"}"],
            static_cast<double>(status.figures(0).requests()));
  EXPECT_EQ(scraped["rwexport_export_remote_storage_requests_in_flight{" + target_labels + "}"], 0);
  EXPECT_EQ(status.figures(0).send_duration().count(), status.figures(0).requests());
  // Each flush that handed points over was timed.
  EXPECT_GE(scraped["rwexport_export_flush_duration_seconds_count{" + export_labels + "}"], 1);
  EXPECT_EQ(scraped["rwexport_export_flush_duration_seconds_count{" + export_labels + "}"],
            static_cast<double>(status.flush_duration().count()));

  // After StopExport the export's own series are gone and the process totals hold exactly
  // what StopExport reported.
  grpc::ClientContext stop_context;
  v1::StopExportRequest stop;
  stop.set_export_id(id);
  v1::StopExportResponse stopped;
  ASSERT_TRUE(stub_->StopExport(&stop_context, stop, &stopped).ok());
  scraped = Scrape(metrics_->port());
  EXPECT_EQ(scraped["rwexport_exports_active"], 0);
  EXPECT_EQ(scraped["rwexport_exports_started_total"], 1);
  EXPECT_EQ(scraped["rwexport_exports_stopped_total"], 1);
  EXPECT_EQ(scraped["rwexport_samples_accepted_total"], stopped.samples_accepted());
  EXPECT_EQ(scraped["rwexport_samples_rejected_total{reason=\"unknown_metric\"}"], 1);
  EXPECT_EQ(scraped["rwexport_remote_storage_samples_total"], stopped.targets(0).points_sent());
  EXPECT_EQ(scraped["rwexport_remote_storage_requests_total"], stopped.targets(0).requests());
  EXPECT_EQ(scraped["rwexport_remote_storage_bytes_total"], stopped.targets(0).bytes_sent());
  ASSERT_EQ(scraped.count("rwexport_remote_storage_samples_already_stored_total"), 1u);
  EXPECT_EQ(scraped["rwexport_remote_storage_samples_already_stored_total"],
            stopped.targets(0).points_already_stored());
  EXPECT_EQ(stopped.targets(0).points_already_stored(), 0u);
  EXPECT_EQ(scraped.count("rwexport_export_samples_accepted_total{" + export_labels + "}"), 0u);
  // The points the receiver decoded are the points reported sent.
  size_t received = 0;
  for (const ReceivedRequest& r : receiver_->Requests()) {
    for (const auto& ts : r.write_request.timeseries()) received += ts.samples_size();
  }
  EXPECT_EQ(received, stopped.targets(0).points_sent());
  // No credential in what is scraped.
  for (const auto& [key, value] : scraped) EXPECT_EQ(key.find("hidden-7731"), std::string::npos);
}

TEST(SelfMetricsServerTest, BusyAddressIsAClearError) {
  TestServer server;
  absl::StatusOr<std::unique_ptr<SelfMetricsServer>> first =
      SelfMetricsServer::Start("127.0.0.1:0", &server.registry());
  ASSERT_TRUE(first.ok());
  absl::StatusOr<std::unique_ptr<SelfMetricsServer>> second =
      SelfMetricsServer::Start(absl::StrCat("127.0.0.1:", (*first)->port()), &server.registry());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("--metrics_listen"), absl::string_view::npos);
}

// The server's own wiring (server/server.h, as rwexport_server runs it with --metrics_listen):
// ready once it serves, healthy, the status page, process and build metrics beside its own.
TEST(SelfMetricsServerTest, TheServerWiringServesProbesAndTheStatusPage) {
  TestServerOptions options;
  options.metrics_listen = "127.0.0.1:0";
  TestServer server(options);
  ASSERT_NE(server.metrics_port(), 0);
  const HttpAnswer ready = HttpGet(server.metrics_port(), "/-/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "rwexport is Ready.\n");
  const HttpAnswer healthy = HttpGet(server.metrics_port(), "/-/healthy");
  EXPECT_EQ(healthy.status, 200);
  EXPECT_EQ(healthy.body, "rwexport is Healthy.\n");
  const HttpAnswer page = HttpGet(server.metrics_port(), "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<title>rwexport status</title>"), std::string::npos);
  const std::map<std::string, double> scraped = Scrape(server.metrics_port());
  EXPECT_EQ(scraped.at("rwexport_exports_active"), 0);
  EXPECT_GT(scraped.at("process_start_time_seconds"), 0);
  bool build_info = false;
  for (const auto& [key, value] : scraped) {
    if (key.rfind("rwexport_build_info{", 0) == 0) build_info = value == 1;
  }
  EXPECT_TRUE(build_info);
}

}  // namespace
}  // namespace rwexport
