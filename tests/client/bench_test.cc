// `rwexport bench`'s pieces: the generated workload, the load against a real in-process server
// and against the null sink (both stream modes), and a whole short run through the real binary
// (its servers in child processes).
#include "lib/client/bench.h"

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/remote_write/null_receiver.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/in_process_server.h"
#include "server/null_sink.h"
#include "tests/testing/subprocess.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

TEST(BenchWorkloadTest, EverySeriesOccursAndFailuresAreSixPercent) {
  const BenchWorkload w = MakeBenchWorkload(/*endpoints=*/20, /*seed=*/1);
  // 20 endpoints x 3 outcomes x 9 HTTP metrics, then data_sent, data_received, vus,
  // iterations, iteration_duration, 2 checks and 5 steps of the custom trend.
  ASSERT_EQ(w.series.size(), 20u * 3 * 9 + 12);
  std::set<uint32_t> seen;
  uint64_t requests = 0, failed = 0;
  for (const auto& [series, value] : w.cycle) {
    seen.insert(series);
    if (w.series[series].metric == "http_req_failed") {
      ++requests;
      failed += value != 0;
    }
  }
  EXPECT_EQ(seen.size(), w.series.size());
  EXPECT_EQ(requests, 20u * 33);  // 33 rounds over every endpoint
  EXPECT_EQ(failed, 20u * 2);     // one 404 and one 503 per endpoint
  EXPECT_EQ(w.series[0].metric, "http_reqs");
  EXPECT_THAT(
      w.series[0].tags,
      ::testing::ElementsAre(
          std::pair<std::string, std::string>{"expected_response", "true"},
          std::pair<std::string, std::string>{"method", "POST"},
          std::pair<std::string, std::string>{"name", "https://shop.test/api/v1/products/0"},
          std::pair<std::string, std::string>{"scenario", "checkout_flow"},
          std::pair<std::string, std::string>{"status", "201"},
          std::pair<std::string, std::string>{"url", "https://shop.test/api/v1/products/0"}));
}

class BenchLoadTest : public ::testing::TestWithParam<BenchMode> {};

TEST_P(BenchLoadTest, EverySampleIsAcceptedByTheRealServer) {
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  absl::StatusOr<std::unique_ptr<InProcessServer>> server = InProcessServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = (*server)->NewStub();
  v1::StartExportResponse started;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(
        stub->StartExport(&context, MakeBenchExportRequest((*receiver)->Url(), 1), &started).ok());
  }
  BenchLoadOptions options;
  options.streams = 2;
  options.duration = absl::Milliseconds(300);
  options.mode = GetParam();
  options.batch_size = 500;
  absl::StatusOr<BenchLoadResult> load =
      RunBenchLoad((*server)->address(), started.export_id(), MakeBenchWorkload(20, 1), options);
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_GT(load->samples_sent, 0u);
  EXPECT_EQ(load->samples_sent % 500, 0u);  // whole batches
  EXPECT_EQ(load->accepted, load->samples_sent);
  EXPECT_EQ(load->rejected, 0u);

  grpc::ClientContext context;
  v1::StopExportRequest stop;
  stop.set_export_id(started.export_id());
  v1::StopExportResponse stopped;
  ASSERT_TRUE(stub->StopExport(&context, stop, &stopped).ok());
  EXPECT_EQ(stopped.samples_accepted(), load->accepted);
  ASSERT_EQ(stopped.targets_size(), 1);
  EXPECT_GT(stopped.targets(0).points_sent(), 0u);
  EXPECT_EQ(stopped.targets(0).points_dropped(), 0u);
  EXPECT_EQ((*receiver)->Counts().points, stopped.targets(0).points_sent());
}

TEST_P(BenchLoadTest, TheNullSinkCountsEverySample) {
  NullSinkService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto stub =
      v1::ExportService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  v1::StartExportResponse started;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->StartExport(&context, v1::StartExportRequest(), &started).ok());
  }
  BenchLoadOptions options;
  options.streams = 3;
  options.duration = absl::Milliseconds(200);
  options.mode = GetParam();
  absl::StatusOr<BenchLoadResult> load =
      RunBenchLoad(address, started.export_id(), MakeBenchWorkload(20, 2), options);
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_GT(load->samples_sent, 0u);
  EXPECT_EQ(load->accepted, load->samples_sent);

  grpc::ClientContext context;
  v1::StopExportRequest stop;
  stop.set_export_id(started.export_id());
  v1::StopExportResponse stopped;
  ASSERT_TRUE(stub->StopExport(&context, stop, &stopped).ok());
  EXPECT_EQ(stopped.samples_accepted(), load->samples_sent);
  EXPECT_EQ(service.samples(), load->samples_sent);
  server->Shutdown();
}

INSTANTIATE_TEST_SUITE_P(Modes, BenchLoadTest,
                         ::testing::Values(BenchMode::kSelfDescribing, BenchMode::kCompact),
                         [](const ::testing::TestParamInfo<BenchMode>& info) {
                           return std::string(BenchModeName(info.param));
                         });

TEST(NullSinkTest, UnknownExportIsNotFound) {
  NullSinkService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = v1::ExportService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::StreamSamplesResponse response;
  auto writer = stub->StreamSamples(&context, &response);
  v1::SampleBatch batch;
  batch.set_export_id("nope");
  writer->Write(batch);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext stop_context;
  v1::StopExportRequest stop;
  stop.set_export_id("nope");
  v1::StopExportResponse stopped;
  EXPECT_EQ(stub->StopExport(&stop_context, stop, &stopped).error_code(),
            grpc::StatusCode::NOT_FOUND);
  server->Shutdown();
}

// The whole command, servers in child processes: every phase and ratio is reported.
TEST(BenchCommandTest, ShortRunReportsEveryPhaseAndTheRatios) {
  const std::string binary = RunfilePath("client/rwexport");
  BenchOptions options;
  options.load.streams = 2;
  options.load.duration = absl::Milliseconds(300);
  options.endpoints = 10;
  options.command = [&binary](BenchServer server) {
    return std::vector<std::string>{binary, "bench",
                                    std::string("--bench_serve=") + BenchServerName(server),
                                    "--server_workers=1"};
  };
  absl::StatusOr<BenchReport> report = RunBench(options);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->phases.size(), 4u);
  EXPECT_EQ(report->distinct_series, 10u * 27 + 12);
  for (const BenchPhase& p : report->phases) {
    SCOPED_TRACE(std::string(BenchServerName(p.server)) + " " + BenchModeName(p.mode));
    EXPECT_GT(p.load.accepted, 0u);
    EXPECT_EQ(p.load.accepted, p.load.samples_sent);
    EXPECT_GT(p.samples_per_second, 0);
    EXPECT_GT(p.server_cpu_seconds, 0);
    EXPECT_GT(p.server_peak_rss_kb, 1000u);
    if (p.server == BenchServer::kRwexport) {
      EXPECT_GT(p.points_sent, 0u);
      EXPECT_EQ(p.points_received, p.points_sent);
      EXPECT_EQ(p.points_dropped, 0u);
    }
  }
  const std::string text = FormatBenchReport(*report, options);
  EXPECT_THAT(text, HasSubstr("self    rwexport / null sink: samples/s "));
  EXPECT_THAT(text, HasSubstr("compact rwexport / null sink: samples/s "));
  EXPECT_THAT(text, HasSubstr("rwexport  compact / self: samples/s "));
}

}  // namespace
}  // namespace rwexport
