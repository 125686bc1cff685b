// `rwexport bench`'s pieces: the generated workload, the load against a real in-process server
// and against the null sink (both stream modes), and a whole short run through the real binary
// (its servers in child processes).
#include "lib/bench/bench.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/bench/child_process.h"
#include "lib/bench/load.h"
#include "lib/bench/null_receiver.h"
#include "lib/bench/null_sink.h"
#include "lib/bench/report.h"
#include "lib/bench/rss_sampler.h"
#include "lib/bench/workload.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/subprocess.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

// The bench's child processes: `binary` serving `server` with one aggregation thread.
std::function<std::vector<std::string>(BenchServer)> ChildCommand(const std::string& binary) {
  return [binary](BenchServer server) {
    return std::vector<std::string>{binary, "bench",
                                    std::string("--bench_serve=") + BenchServerName(server),
                                    "--server_workers=1"};
  };
}

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

TEST(BenchWorkloadTest, ShapeForSeriesGivesExactlyThatManySeriesEachOccurring) {
  for (size_t n : {size_t{39}, size_t{1000}, size_t{10000}, size_t{5412}}) {
    SCOPED_TRACE(n);
    const BenchWorkloadShape shape = BenchWorkloadShapeFor(n);
    const BenchWorkload w = MakeBenchWorkload(shape.endpoints, 1, shape.extra_steps);
    EXPECT_EQ(w.series.size(), n);
    std::set<uint32_t> seen;
    for (const auto& [series, value] : w.cycle) seen.insert(series);
    if (shape.endpoints >= 4) {  // then each step series gets samples
      EXPECT_EQ(seen.size(), n);
    }
  }
  EXPECT_EQ(BenchWorkloadShapeFor(1000).endpoints, 36);  // 36 * 27 + 12 + 16 extra steps
  EXPECT_EQ(BenchWorkloadShapeFor(1000).extra_steps, 16);
  EXPECT_EQ(BenchWorkloadShapeFor(5412).extra_steps, 0);  // the default: 200 endpoints
  EXPECT_EQ(BenchWorkloadShapeFor(10).endpoints, 1);
  EXPECT_EQ(BenchWorkloadShapeFor(10).extra_steps, 0);
}

TEST(BenchEventTimeTest, ReplaysTheSpanEndingAtTheEndNeverAheadOfTheClock) {
  const absl::Time start = absl::FromUnixSeconds(1000);
  const absl::Duration duration = absl::Seconds(2);
  const absl::Duration span = absl::Seconds(10);  // 5x wall speed, from 992 s to 1002 s
  EXPECT_EQ(BenchEventTime(start, duration, span, start), absl::FromUnixSeconds(992));
  EXPECT_EQ(BenchEventTime(start, duration, span, start + absl::Milliseconds(500)),
            absl::FromUnixMillis(994500));
  EXPECT_EQ(BenchEventTime(start, duration, span, start + absl::Seconds(1)),
            absl::FromUnixSeconds(997));
  EXPECT_EQ(BenchEventTime(start, duration, span, start + absl::Seconds(2)),
            absl::FromUnixSeconds(1002));
  // Outside the load: held at its ends, so still not ahead of the clock.
  EXPECT_EQ(BenchEventTime(start, duration, span, start + absl::Seconds(3)),
            absl::FromUnixSeconds(1002));
  EXPECT_EQ(BenchEventTime(start, duration, span, start - absl::Seconds(1)),
            absl::FromUnixSeconds(992));
  // 1 h in 3 min: 20x; a minute in, 20 minutes of the hour are replayed.
  EXPECT_EQ(BenchEventTime(start, absl::Minutes(3), absl::Hours(1), start + absl::Minutes(1)),
            start + absl::Minutes(3) - absl::Hours(1) + absl::Minutes(20));
}

TEST(SummarizeRssTest, QuartilesAreTheLastReadingAtOrBeforeAndGrowthIsFromTheFirstQuarter) {
  // A 10 s load read every 2 s, and once more as the streams finished (10.4 s); heap readings
  // are a tenth of the RSS ones plus one.
  const std::vector<RssSample> samples = {
      {absl::Seconds(0), 1000, 101},         {absl::Seconds(2), 4000, 401},
      {absl::Seconds(4), 5000, 501},         {absl::Seconds(6), 3900, 391},
      {absl::Seconds(8), 6000, 601},         {absl::Seconds(10), 5500, 551},
      {absl::Milliseconds(10400), 2000, 201}};
  const RssProfile p = SummarizeRss(samples, absl::Seconds(10));
  EXPECT_EQ(p.samples, 7u);
  EXPECT_EQ(p.at_10_kb, 1000u);   // 1 s: the reading at 0 s
  EXPECT_EQ(p.at_25_kb, 4000u);   // 2.5 s: the reading at 2 s
  EXPECT_EQ(p.at_50_kb, 5000u);   // 5 s: 4 s
  EXPECT_EQ(p.at_75_kb, 3900u);   // 7.5 s: 6 s
  EXPECT_EQ(p.at_100_kb, 5500u);  // 10 s: 10 s, not the reading after the load
  EXPECT_EQ(p.max_kb, 6000u);
  EXPECT_DOUBLE_EQ(p.growth_percent, 37.5);  // (5500 - 4000) / 4000
  EXPECT_EQ(p.after_warmup_min_kb, 3900u);   // readings at 4..10 s, and the one at 2.5 s
  EXPECT_EQ(p.after_warmup_max_kb, 6000u);
  EXPECT_EQ(p.second_quarter_mean_kb, 5000u);  // the reading at 4 s
  EXPECT_EQ(p.last_quarter_mean_kb, 5750u);    // at 8 and 10 s
  EXPECT_DOUBLE_EQ(p.quarter_mean_growth_percent, 15.0);

  const RssProfile heap = SummarizeRss(samples, absl::Seconds(10), /*heap=*/true);
  EXPECT_EQ(heap.at_10_kb, 101u);
  EXPECT_EQ(heap.at_25_kb, 401u);
  EXPECT_EQ(heap.at_100_kb, 551u);
  EXPECT_EQ(heap.max_kb, 601u);
  EXPECT_DOUBLE_EQ(heap.growth_percent, 150.0 / 401 * 100);
  EXPECT_EQ(heap.after_warmup_min_kb, 391u);

  // Readings sparser than 10 %: the first one stands in.
  const RssProfile sparse =
      SummarizeRss({{absl::Seconds(0), 800, 0}, {absl::Seconds(5), 1000, 0}}, absl::Seconds(10));
  EXPECT_EQ(sparse.at_10_kb, 800u);
  EXPECT_EQ(sparse.at_25_kb, 800u);
  EXPECT_EQ(sparse.at_50_kb, 1000u);
  EXPECT_EQ(sparse.at_100_kb, 1000u);
  EXPECT_DOUBLE_EQ(sparse.growth_percent, 25.0);
  EXPECT_EQ(sparse.after_warmup_min_kb, 800u);
  EXPECT_EQ(sparse.after_warmup_max_kb, 1000u);

  const RssProfile none = SummarizeRss({}, absl::Seconds(10));
  EXPECT_EQ(none.samples, 0u);
  EXPECT_EQ(none.max_kb, 0u);
  EXPECT_EQ(none.growth_percent, 0);
}

TEST(ProcessRssKbTest, ReadsThisProcessAndNamesWhatIsMissing) {
  absl::StatusOr<uint64_t> rss = ProcessRssKb(getpid());
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_GT(*rss, 100u);  // a gtest binary with gRPC linked takes megabytes
  absl::StatusOr<uint64_t> missing = ProcessRssKb(-1);
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("/proc/-1/status"));
}

TEST(BenchLoadOptionsTest, AnEventSpanShorterThanTheDurationIsRefused) {
  BenchLoadOptions options;
  options.duration = absl::Seconds(10);
  options.event_span = absl::Seconds(5);
  absl::StatusOr<BenchLoadResult> load =
      RunBenchLoad("127.0.0.1:1", {"unused"}, MakeBenchWorkload(1, 1), options);
  ASSERT_FALSE(load.ok());
  EXPECT_EQ(load.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(load.status().message(), HasSubstr("event span 5s is shorter than the duration"));
}

class BenchLoadTest : public ::testing::TestWithParam<BenchMode> {};

TEST_P(BenchLoadTest, EverySampleIsAcceptedByTheRealServer) {
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(ServerOptions{});
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
      RunBenchLoad((*server)->address(), {started.export_id()}, MakeBenchWorkload(20, 1), options);
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
      RunBenchLoad(address, {started.export_id()}, MakeBenchWorkload(20, 2), options);
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

// BenchLoadOptions.before_finish: called once, when every stream has sent its last batch and
// each is still open (their declarations still counted by the server); its time is left out
// of the load's elapsed time.
TEST(BenchLoadHoldTest, BeforeFinishRunsOnceWhileEveryStreamIsOpen) {
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(ServerOptions{});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = (*server)->NewStub();
  v1::StartExportResponse started;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(
        stub->StartExport(&context, MakeBenchExportRequest((*receiver)->Url(), 1), &started).ok());
  }
  auto status = [&] {
    grpc::ClientContext context;
    v1::GetExportRequest request;
    request.set_export_id(started.export_id());
    v1::ExportStatus out;
    EXPECT_TRUE(stub->GetExport(&context, request, &out).ok());
    return out;
  };
  const absl::Duration hold = absl::Milliseconds(300);
  BenchLoadOptions options;
  options.streams = 3;
  options.duration = absl::Milliseconds(300);
  options.mode = BenchMode::kCompact;
  options.batch_size = 100;
  int calls = 0;
  v1::ExportStatus held;
  options.before_finish = [&] {
    ++calls;
    held = status();
    absl::SleepFor(hold);
  };
  const BenchWorkload workload = MakeBenchWorkload(20, 1);
  const absl::Time start = absl::Now();
  absl::StatusOr<BenchLoadResult> load =
      RunBenchLoad((*server)->address(), {started.export_id()}, workload, options);
  const absl::Duration wall = absl::Now() - start;
  ASSERT_TRUE(load.ok()) << load.status();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(held.active_streams(), 3u);
  // Each open stream keeps at least a record per declared series.
  EXPECT_GE(held.stream_retained_bytes(), 3 * workload.series.size() * 64);
  EXPECT_GT(load->accepted, 0u);
  EXPECT_EQ(load->accepted, load->samples_sent);
  EXPECT_LE(load->elapsed, wall - hold);
  // Once the load returned, the streams end (each uncounts itself as gRPC releases its call).
  v1::ExportStatus closed = status();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (closed.active_streams() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    closed = status();
  }
  EXPECT_EQ(closed.active_streams(), 0u);
  EXPECT_EQ(closed.stream_retained_bytes(), 0u);
}

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
  options.command = ChildCommand(binary);
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

// Three exports fed by two streams (two rounds), with exactly 500 series: every export got
// samples, and the figures are summed over them.
TEST(BenchCommandTest, SeveralExportsShareTheLoad) {
  const std::string binary = RunfilePath("client/rwexport");
  BenchOptions options;
  options.load.streams = 2;
  options.load.duration = absl::Milliseconds(600);
  options.modes = {BenchMode::kCompact};
  options.null_sink = false;
  options.series = 500;
  options.exports = 3;
  options.command = ChildCommand(binary);
  absl::StatusOr<BenchReport> report = RunBench(options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->distinct_series, 500u);
  EXPECT_FALSE(report->allocator.empty());
  ASSERT_EQ(report->phases.size(), 1u);
  const BenchPhase& p = report->phases[0];
  EXPECT_EQ(p.exports, 3);
  EXPECT_GT(p.load.accepted, 0u);
  EXPECT_EQ(p.load.accepted, p.load.samples_sent);
  EXPECT_GT(p.server_rss_before_kb, 1000u);
  EXPECT_EQ(p.points_received, p.points_sent);
  const std::string text = FormatBenchReport(*report, options);
  EXPECT_THAT(text, HasSubstr("500 distinct series, 2 streams, 3 exports"));
  EXPECT_THAT(text, HasSubstr("exports: fed in rounds of 2 (one stream each), each round 300ms"));
}

// The fixed cost of an export: 3 cycles (after a warm-up) of start, a stream of 2 batches of
// 50 samples, stop, in both modes: every sample accepted, the server's CPU divided by 3.
TEST(BenchCommandTest, ExportCyclesMeasureTheFixedCostPerExport) {
  BenchOptions options;
  options.load.batch_size = 50;
  options.cycle_batches = 2;
  options.export_cycles = 3;
  options.series = 500;
  options.command = ChildCommand(RunfilePath("client/rwexport"));
  absl::StatusOr<BenchReport> report = RunBench(options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->phases.empty());
  ASSERT_EQ(report->cycles.size(), 2u);
  for (const BenchCycles& c : report->cycles) {
    SCOPED_TRACE(BenchModeName(c.mode));
    EXPECT_EQ(c.cycles, 3);
    EXPECT_EQ(c.samples, 3u * 2 * 50);
    EXPECT_GT(c.server_cpu_seconds, 0);
    EXPECT_DOUBLE_EQ(c.server_cpu_ms_per_export, c.server_cpu_seconds * 1e3 / 3);
    EXPECT_GT(c.wall_ms_per_export, 0);
  }
  EXPECT_EQ(report->cycles[0].mode, BenchMode::kSelfDescribing);
  EXPECT_EQ(report->cycles[1].mode, BenchMode::kCompact);
  const std::string text = FormatBenchReport(*report, options);
  EXPECT_THAT(text, HasSubstr("fixed cost of an export: 3 cycles of StartExport, one "
                              "acknowledged stream of 100 sample(s) (of 500 distinct series)"));
  EXPECT_THAT(text, HasSubstr("rwexport  self    3 exports: "));
  EXPECT_THAT(text, HasSubstr("rwexport  compact 3 exports: "));
}

// 10 s of event time in 2 s through the real binary: every compressed timestamp is accepted,
// the whole span is replayed without running ahead of the clock, and the server's RSS is read.
TEST(BenchCommandTest, CompressedEventTimeIsAcceptedAndRssIsSampled) {
  const std::string binary = RunfilePath("client/rwexport");
  BenchOptions options;
  options.load.streams = 2;
  options.load.duration = absl::Seconds(2);
  options.load.event_span = absl::Seconds(10);
  options.load.batch_size = 500;
  options.modes = {BenchMode::kSelfDescribing};
  options.null_sink = false;
  options.endpoints = 10;
  options.rss_interval = absl::Milliseconds(100);
  options.command = ChildCommand(binary);
  const absl::Time before = absl::Now();
  absl::StatusOr<BenchReport> report = RunBench(options);
  const absl::Time after = absl::Now();
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->phases.size(), 1u);
  const BenchPhase& p = report->phases[0];
  EXPECT_GT(p.load.accepted, 0u);
  EXPECT_EQ(p.load.accepted, p.load.samples_sent);
  EXPECT_EQ(p.load.rejected, 0u);
  // The load started after `before` and ended before `after`: the first sample is stamped 8 s
  // before its start (its end minus 10 s) plus 5 times the time its batch took to be built
  // (event time runs 5 times faster; up to 0.2 s allowed for a sanitizer's slowness), the last
  // one no later than the clock. Between them lie up to 10 s of event time (at least 7:
  // batches are 0.2 s of event time apart unless a sanitizer slows the streams).
  EXPECT_GE(p.load.first_sample_time, before - absl::Seconds(8));
  EXPECT_LE(p.load.first_sample_time, after - absl::Seconds(9));
  EXPECT_LE(p.load.last_sample_time, after);
  EXPECT_GE(p.load.last_sample_time - p.load.first_sample_time, absl::Seconds(7));
  EXPECT_LE(p.load.last_sample_time - p.load.first_sample_time, absl::Seconds(10));
  // Points carry their 1 s window's end: the newest is that of the last sample's window.
  EXPECT_GE(p.highest_point_time, p.load.last_sample_time);
  EXPECT_LE(p.highest_point_time, p.load.last_sample_time + absl::Seconds(1));
  EXPECT_GT(p.points_sent, 0u);
  EXPECT_EQ(p.points_received, p.points_sent);
  EXPECT_EQ(p.points_dropped, 0u);

  // Readings every 100 ms over at least 2 s, in time order.
  EXPECT_GE(p.rss.size(), 5u);
  for (size_t i = 1; i < p.rss.size(); ++i) EXPECT_GE(p.rss[i].at, p.rss[i - 1].at);
  for (const RssSample& s : p.rss) EXPECT_GT(s.rss_kb, 1000u);
  EXPECT_EQ(p.rss_profile.samples, p.rss.size());
  for (uint64_t kb : {p.rss_profile.at_10_kb, p.rss_profile.at_25_kb, p.rss_profile.at_50_kb,
                      p.rss_profile.at_75_kb, p.rss_profile.at_100_kb}) {
    EXPECT_GT(kb, 1000u);
    EXPECT_LE(kb, p.rss_profile.max_kb);
  }
  EXPECT_GT(p.server_rss_after_stop_kb, 1000u);
  // The split of the RSS, and the server's threads (gRPC's and the workers at least).
  for (const ProcessUsage& u : {p.server_before, p.server_after_stop}) {
    EXPECT_GT(u.rss_anon_kb, 0u);
    EXPECT_GT(u.rss_file_kb, 0u);
    EXPECT_LE(u.rss_anon_kb + u.rss_file_kb, u.rss_kb + 1);
    EXPECT_GT(u.threads, 2u);
  }
  // The server answered with its live heap every time, below its RSS (the binary's code and
  // gRPC's mappings are resident but not heap). Under a sanitizer, which replaces malloc,
  // mallinfo2 knows nothing (0), in the server as in this process.
  const bool glibc_malloc = mallinfo2().uordblks > 0;
  for (const RssSample& s : p.rss) {
    if (glibc_malloc) {
      EXPECT_GT(s.heap_in_use_kb, 100u);
    }
    EXPECT_LT(s.heap_in_use_kb, s.rss_kb);
  }
  const std::string csv = FormatRssReadings(*report);
  EXPECT_THAT(csv,
              ::testing::StartsWith(
                  "server,mode,seconds,rss_kb,heap_in_use_kb,points_pending,stream_retained_bytes\n"
                  "rwexport,self,0.0"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), static_cast<long>(p.rss.size()) + 1);

  const std::string text = FormatBenchReport(*report, options);
  EXPECT_THAT(text, HasSubstr("event time: each phase replays 10s of sample timestamps in 2s "
                              "(5.0x wall speed)"));
  EXPECT_THAT(text, HasSubstr("server memory during the load, MB, read every 100ms"));
}

// --hold and the warm-up export through the real binary: the server's usage is read with the
// streams open and once they ended, and the RSS before the export follows a small export.
TEST(BenchCommandTest, HoldReadsTheServerWithItsStreamsOpenAndClosed) {
  BenchOptions options;
  options.load.streams = 2;
  options.load.duration = absl::Milliseconds(500);
  options.load.batch_size = 100;
  options.modes = {BenchMode::kCompact};
  options.null_sink = false;
  options.series = 500;
  options.hold = absl::Milliseconds(300);
  options.command = ChildCommand(RunfilePath("client/rwexport"));
  absl::StatusOr<BenchReport> report = RunBench(options);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->phases.size(), 1u);
  const BenchPhase& p = report->phases[0];
  EXPECT_TRUE(p.held);
  EXPECT_EQ(p.load.accepted, p.load.samples_sent);
  // Two streams of 500 declared series: at least a record per series each.
  EXPECT_GE(p.stream_retained_held_bytes, 2u * 500 * 64);
  for (const ProcessUsage& u : {p.server_cold, p.server_before, p.server_streams_open,
                                p.server_streams_closed, p.server_after_stop}) {
    EXPECT_GT(u.rss_kb, 1000u);
  }
  const std::string text = FormatBenchReport(*report, options);
  EXPECT_THAT(text, HasSubstr("rwexport compact: RSS as started "));
  EXPECT_THAT(text, HasSubstr(" before the export (after a warm-up export) "));
  EXPECT_THAT(text, HasSubstr("rwexport compact: streams held open and idle for 300ms: heap "));
  EXPECT_THAT(text, HasSubstr(" MB with 2 streams open, "));
}

}  // namespace
}  // namespace rwexport
