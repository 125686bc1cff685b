// The real rwexport_server binary (//server:rwexport_server), run as a child process: it
// serves on a port it picks, and SIGTERM / SIGINT flush every open export into a real
// Prometheus before it exits 0.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/subprocess.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(15);

std::string ServerBinary() { return RunfilePath("server/rwexport_server"); }

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines;
}

// A running rwexport_server.
struct Server {
  std::unique_ptr<Subprocess> process;
  std::string address;
};

// Starts the server on a port it picks, with a lateness no test outlasts: windows close only
// at shutdown.
Server StartServer(const std::string& name, const std::vector<std::string>& extra_args = {}) {
  Server server;
  const std::string port_file = TempPath(name + ".port");
  std::remove(port_file.c_str());
  std::vector<std::string> args = {"--listen=127.0.0.1:0", "--port_file=" + port_file,
                                   "--workers=2", "--lateness=10m"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(ServerBinary(), args);
  EXPECT_TRUE(process.ok()) << process.status();
  if (!process.ok()) return server;
  server.process = *std::move(process);
  // The port file is written before the server logs that it listens.
  if (!server.process->WaitForStderr("rwexport_server listening", kWait)) {
    ADD_FAILURE() << "the server did not start: " << server.process->stderr_text();
    return server;
  }
  std::ifstream in(port_file);
  std::string text;
  std::getline(in, text);
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(text, &port)) << "port file: \"" << text << "\"";
  EXPECT_GT(port, 0);
  server.address = absl::StrCat("127.0.0.1:", port);
  return server;
}

class ServerBinaryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<PrometheusServer*> prometheus = PrometheusServer::Shared();
    ASSERT_TRUE(prometheus.ok()) << prometheus.status();
    prometheus_ = *prometheus;
  }
  void SetUp() override { ASSERT_NE(prometheus_, nullptr); }

  // Starts an export to Prometheus, streams http_reqs 1..n, vus and data_sent samples in
  // the current window, finishes the stream (the export stays open), sends `signal`, and checks
  // that the server exits 0 having delivered the totals.
  void StreamThenSignal(int signal, const std::string& run, int n) {
    Server server = StartServer(run);
    ASSERT_NE(server.process, nullptr);
    ASSERT_FALSE(server.address.empty());
    auto stub = v1::ExportService::NewStub(
        grpc::CreateChannel(server.address, grpc::InsecureChannelCredentials()));

    v1::StartExportRequest request;
    request.set_test_run_id(run);
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(prometheus_->remote_write_url());
    target->set_include_test_run_id(true);
    target->set_resample_rate(1);
    v1::StartExportResponse started;
    {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      grpc::Status status = stub->StartExport(&context, request, &started);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }

    const int64_t t = absl::ToUnixNanos(absl::Now()) - 100'000'000;
    auto stream = std::make_unique<SampleStream>(stub.get(), started.export_id(), /*batch_size=*/7);
    double http_reqs = 0;
    double data_sent = 0;
    for (int i = 1; i <= n; ++i) {
      stream->Add("http_reqs", {{"status", "200"}}, t + i, 1);
      stream->Add("data_sent", {}, t + i, 100 * i);
      http_reqs += 1;
      data_sent += 100 * i;
    }
    stream->Add("vus", {}, t + n, 4);
    absl::StatusOr<v1::StreamSamplesResponse> response = stream->Finish();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->accepted(), static_cast<uint64_t>(2 * n + 1));
    // No StopExport: the shutdown must flush the open windows.
    // The agent is done and closes its channel. (An idle channel of this process would hold the
    // server's shutdown for its whole 5 s grace period: gRPC's synchronous client reads the
    // server's GOAWAY/PING only while a call is running, so it never acks the graceful
    // shutdown.)
    stream.reset();
    stub.reset();

    server.process->Kill(signal);
    absl::StatusOr<int> code = server.process->Wait(kWait);
    ASSERT_TRUE(code.ok()) << code.status() << "\n" << server.process->stderr_text();
    EXPECT_EQ(*code, 0) << server.process->stderr_text();
    const std::string log = server.process->stderr_text();
    EXPECT_THAT(log, HasSubstr(absl::StrCat("shutting down signal=",
                                            signal == SIGINT ? "SIGINT" : "SIGTERM")));
    EXPECT_THAT(log, HasSubstr("stopped exports_flushed=1"));

    const std::string sel = absl::StrCat("{test_run_id=\"", run, "\"}");
    EXPECT_EQ(QueryOne("k6_http_reqs_total" + sel), http_reqs);
    EXPECT_EQ(QueryOne("k6_data_sent_total" + sel), data_sent);
    EXPECT_EQ(QueryOne("k6_vus" + sel), 4);
    if (HasFailure()) ADD_FAILURE() << "server log:\n" << log;
  }

  // The single value of an instant query, a minute ahead so the newest point is in range.
  double QueryOne(const std::string& promql) {
    absl::StatusOr<std::vector<QueryResult>> result =
        prometheus_->Query(promql, absl::Now() + absl::Minutes(1));
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok() || result->size() != 1) {
      ADD_FAILURE() << promql << ": " << (result.ok() ? result->size() : 0) << " results";
      return -1;
    }
    return result->front().value;
  }

  static PrometheusServer* prometheus_;
};

PrometheusServer* ServerBinaryTest::prometheus_ = nullptr;

TEST_F(ServerBinaryTest, SigtermFlushesOpenExportsAndExitsZero) {
  StreamThenSignal(SIGTERM, "binary-sigterm", 25);
}

TEST_F(ServerBinaryTest, SigintFlushesOpenExportsAndExitsZero) {
  StreamThenSignal(SIGINT, "binary-sigint", 12);
}

TEST_F(ServerBinaryTest, SignalWithoutExportsExitsZero) {
  Server server = StartServer("idle");
  ASSERT_NE(server.process, nullptr);
  server.process->Kill(SIGTERM);
  absl::StatusOr<int> code = server.process->Wait(kWait);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server.process->stderr_text();
  EXPECT_THAT(server.process->stderr_text(), HasSubstr("stopped exports_flushed=0"));
}

TEST(ServerFlagsTest, BadLogLevelIsOneLineAndNonZero) {
  absl::StatusOr<ProcessResult> r =
      RunProcess(ServerBinary(), {"--listen=127.0.0.1:0", "--log_level=loud"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->exit_code, 0);
  ASSERT_EQ(Lines(r->err).size(), 1u) << r->err;
  EXPECT_THAT(r->err, StartsWith("rwexport_server: --log_level: "));
}

TEST(ServerFlagsTest, BadNumbersAreOneLineAndNonZero) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--listen=127.0.0.1:0", "--workers=-1"},
                                             {"--listen=127.0.0.1:0", "--max_exports=0"},
                                             {"--listen=127.0.0.1:0", "--lateness=soon"},
                                             {"--listen=127.0.0.1:0", "--no_such_flag"}}) {
    absl::StatusOr<ProcessResult> r = RunProcess(ServerBinary(), args);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_NE(r->exit_code, 0) << args[1];
    EXPECT_EQ(Lines(r->err).size(), 1u) << args[1] << ": " << r->err;
  }
}

// ---------------------------------------------------------------------------------------------
// Hardening (issue 13)

// Stops a server started by StartServer and expects exit 0.
void StopServer(Server& server) {
  if (server.process == nullptr) return;
  server.process->Kill(SIGTERM);
  absl::StatusOr<int> code = server.process->Wait(kWait);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server.process->stderr_text();
}

std::unique_ptr<v1::ExportService::Stub> NewStub(const Server& server) {
  return v1::ExportService::NewStub(
      grpc::CreateChannel(server.address, grpc::InsecureChannelCredentials()));
}

// An export of http_reqs to a target that is never reached (the tests do not stop it with
// delivery pending), keeping `keep_tag` if set.
std::string StartExport(v1::ExportService::Stub* stub, const std::string& run,
                        const std::string& keep_tag = "") {
  v1::StartExportRequest request;
  request.set_test_run_id(run);
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
  target->set_include_default_metrics(false);
  v1::MetricEntry* entry = target->add_metrics();
  entry->set_source_metric("http_reqs");
  if (!keep_tag.empty()) entry->add_keep_tags(keep_tag);
  grpc::ClientContext context;
  v1::StartExportResponse started;
  grpc::Status status = stub->StartExport(&context, request, &started);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return started.export_id();
}

int CountOf(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// gRPC servers set SO_REUSEPORT by default: a second server on a port in use started and took
// half the connections. It must refuse instead.
TEST(ServerPortsTest, SecondServerOnAGrpcPortInUseRefuses) {
  Server first = StartServer("port-first");
  ASSERT_FALSE(first.address.empty());
  absl::StatusOr<ProcessResult> second =
      RunProcess(ServerBinary(), {"--listen=" + first.address, "--workers=1"});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->exit_code, 1) << second->err;
  EXPECT_THAT(second->err, HasSubstr(absl::StrCat("rwexport_server: --listen: cannot listen on ",
                                                  first.address, ": address already in use")));
  StopServer(first);
}

TEST(ServerPortsTest, SecondServerOnAMetricsPortInUseRefuses) {
  Server first = StartServer("metrics-first", {"--metrics_listen=127.0.0.1:0"});
  ASSERT_FALSE(first.address.empty());
  // "self-metrics served address=127.0.0.1:0 port=N path=/metrics"
  const std::string log = first.process->stderr_text();
  const size_t at = log.find("self-metrics served");
  ASSERT_NE(at, std::string::npos) << log;
  const size_t port_at = log.find("port=", at);
  ASSERT_NE(port_at, std::string::npos) << log;
  const std::string port = log.substr(port_at + 5, log.find(' ', port_at) - port_at - 5);
  absl::StatusOr<ProcessResult> second =
      RunProcess(ServerBinary(), {"--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:" + port});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(second->exit_code, 0) << second->err;
  EXPECT_THAT(second->err, HasSubstr(absl::StrCat("--metrics_listen=127.0.0.1:", port,
                                                  ": cannot listen: 127.0.0.1:", port,
                                                  ": address already in use")));
  StopServer(first);
}

// 1.9 M samples were rejected "series_limit" without a word in the log. The first refusal
// of each limit is a WARN line; the next ones wait a minute.
TEST(ServerLogTest, SeriesLimitIsWarnedOnceAMinutePerLimit) {
  Server server =
      StartServer("series-limit", {"--max_series_per_target=2", "--delivery_timeout=1s"});
  ASSERT_FALSE(server.address.empty());
  auto stub = NewStub(server);
  const std::string id = StartExport(stub.get(), "series-limit", "url");
  const int64_t now = absl::ToUnixNanos(absl::Now());
  for (int round = 0; round < 2; ++round) {  // two streams, each refused 3 new series
    SampleStream stream(stub.get(), id);
    for (int u = 0; u < 5; ++u) stream.Add("http_reqs", {{"url", absl::StrCat("/u", u)}}, now, 1);
    absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->rejected(), 3u);
  }
  ASSERT_TRUE(server.process->WaitForStderr("series limit reached", kWait));
  const std::string log = server.process->stderr_text();
  EXPECT_EQ(CountOf(log, "series limit"), 1) << log;
  const size_t at = log.find("series limit reached");
  const std::string line = log.substr(at, log.find('\n', at) - at);
  EXPECT_THAT(line, HasSubstr(absl::StrCat("export_id=", id)));
  EXPECT_THAT(line, HasSubstr("limit=max_series_per_target max=2"));
  EXPECT_THAT(line, HasSubstr("where=\"target 0 (http://127.0.0.1:9/api/v1/write)\""));
  EXPECT_THAT(line, HasSubstr("refused=1"));
  EXPECT_THAT(log.substr(0, at), HasSubstr(" WARN"));
  stub.reset();
  StopServer(server);
}

// A stream open when SIGTERM came got only "UNAVAILABLE: Broken pipe". It is answered with its
// counts and a status saying that the server is stopping.
TEST(ServerShutdownTest, OpenStreamsAreAnsweredWithTheirCounts) {
  Server server = StartServer("open-stream", {"--delivery_timeout=1s"});
  ASSERT_FALSE(server.address.empty());
  auto stub = NewStub(server);
  const std::string id = StartExport(stub.get(), "open-stream");
  const int64_t now = absl::ToUnixNanos(absl::Now());
  auto stream = std::make_unique<SampleStream>(stub.get(), id, /*batch_size=*/5);
  for (int i = 0; i < 10; ++i) stream->Add("http_reqs", {}, now + i, 1);  // two batches sent
  // Both batches are applied before the signal (bounded wait).
  for (int tries = 0; tries < 500; ++tries) {
    grpc::ClientContext context;
    v1::GetExportRequest request;
    request.set_export_id(id);
    v1::ExportStatus status;
    ASSERT_TRUE(stub->GetExport(&context, request, &status).ok());
    if (status.samples_accepted() == 10) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  server.process->Kill(SIGTERM);
  // The server answers open streams right after this line; EXPECT, not ASSERT, so that a server
  // without it still shows what the stream gets.
  EXPECT_TRUE(server.process->WaitForStderr("open streams answered streams=1", kWait))
      << server.process->stderr_text();
  stream->Add("http_reqs", {}, now + 20, 1);  // after the answer: not taken
  absl::StatusOr<v1::StreamSamplesResponse> response = stream->Finish();
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_THAT(response.status().message(),
              HasSubstr("the server is stopping: this stream was ended after 2 batches; 10 "
                        "samples were accepted (they are flushed and delivered with the export), "
                        "0 rejected"));
  stream.reset();
  stub.reset();
  absl::StatusOr<int> code = server.process->Wait(kWait);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << server.process->stderr_text();
  EXPECT_THAT(server.process->stderr_text(), HasSubstr("stopped exports_flushed=1"));
}

TEST(ServerFlagsTest, InfluxPortInUseIsRefusedWithAClearErrorAndNonZero) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t length = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  const std::string taken = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  absl::StatusOr<ProcessResult> r =
      RunProcess(ServerBinary(), {"--listen=127.0.0.1:0", "--influx_listen=" + taken});
  close(fd);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 1);
  ASSERT_EQ(Lines(r->err).size(), 1u) << r->err;
  EXPECT_EQ(r->err, absl::StrCat("rwexport_server: cannot listen on ", taken,
                                 ": Address already in use (another process has this port; "
                                 "choose another --influx_listen)\n"));
}

TEST(ServerFlagsTest, BadInfluxAutoExportFileIsOneLineAndNonZero) {
  const std::string path = TempPath("bad-auto-export.json");
  std::ofstream(path) << R"({"apm": [{"provider": "prometheus"}]})";
  absl::StatusOr<ProcessResult> r = RunProcess(
      ServerBinary(),
      {"--listen=127.0.0.1:0", "--influx_listen=127.0.0.1:0", "--influx_auto_export=" + path});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 2);
  ASSERT_EQ(Lines(r->err).size(), 1u) << r->err;
  EXPECT_THAT(r->err, StartsWith("rwexport_server: --influx_auto_export: " + path +
                                 ": targets[0].remoteWriteURL"));
}

}  // namespace
}  // namespace rwexport
