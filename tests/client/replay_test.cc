// ReplayK6File against the gRPC server in-process, its export delivering to the fake
// remote-write receiver, with the real k6 result files of shared/testdata/k6; and on live
// input (a FIFO, a followed file): samples reach the server while the writer still writes, a
// followed file ends after its idle timeout or when the stop descriptor becomes readable, and
// is read again once truncated.
#include "lib/client/replay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "prometheus/remote.pb.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

// What the test itself finds in a k6 JSON file, independently of the reader under test.
struct FileFacts {
  std::vector<std::string> lines;
  int64_t metrics = 0;
  int64_t points = 0;
  int64_t first_ns = std::numeric_limits<int64_t>::max();
  int64_t last_ns = std::numeric_limits<int64_t>::min();
};

FileFacts Scan(const std::string& path) {
  FileFacts facts;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::string line;
  while (std::getline(in, line)) {
    facts.lines.push_back(line);
    const nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) continue;
    const std::string type = doc.value("type", "");
    if (type == "Metric") ++facts.metrics;
    if (type != "Point") continue;
    ++facts.points;
    absl::Time time;
    std::string error;
    EXPECT_TRUE(
        absl::ParseTime(absl::RFC3339_full, doc["data"]["time"].get<std::string>(), &time, &error))
        << error;
    facts.first_ns = std::min(facts.first_ns, absl::ToUnixNanos(time));
    facts.last_ns = std::max(facts.last_ns, absl::ToUnixNanos(time));
  }
  return facts;
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

void WriteLines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << "\n";
  ASSERT_TRUE(out.good()) << path;
}

constexpr char kMetricLine[] =
    R"({"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default"},)"
    R"("metric":"http_reqs"})";

// A k6 JSON Point line of http_reqs at `time`.
std::string PointLine(absl::Time time) {
  return absl::StrCat(R"({"metric":"http_reqs","type":"Point","data":{"time":")",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", time, absl::UTCTimeZone()),
                      R"(","value":1,"tags":{"status":"200"}}})", "\n");
}

void Append(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::app);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    stub_ = server_.NewStub();
  }

  // An export of the default metrics to the fake receiver, in 1 s windows.
  std::string StartExport() {
    v1::StartExportRequest request;
    request.set_test_run_id("replay");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    target->set_resample_rate(1);
    absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->export_id() : "";
  }

  v1::StopExportResponse StopExport(const std::string& id) {
    absl::StatusOr<v1::StopExportResponse> stopped = StopExportRpc(*stub_, id);
    EXPECT_TRUE(stopped.ok()) << stopped.status();
    return stopped.ok() ? *stopped : v1::StopExportResponse();
  }

  // True once export `id` accepted at least `n` samples (within 10 s).
  bool WaitForAccepted(const std::string& id, uint64_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::ExportStatus> status = GetExportRpc(*stub_, id);
      if (status.ok() && status->samples_accepted() >= n) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  // Lowest and highest timestamp of every point received.
  std::pair<int64_t, int64_t> ReceivedRange() const {
    int64_t low = std::numeric_limits<int64_t>::max();
    int64_t high = std::numeric_limits<int64_t>::min();
    for (const ReceivedRequest& r : receiver_->Requests()) {
      for (const prometheus::TimeSeries& ts : r.write_request.timeseries()) {
        for (const prometheus::Sample& s : ts.samples()) {
          low = std::min(low, s.timestamp());
          high = std::max(high, s.timestamp());
        }
      }
    }
    return {low, high};
  }

  std::unique_ptr<FakeReceiver> receiver_;
  TestServer server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

TEST_F(ReplayTest, ReplaysAK6RunShiftedToEndAtNow) {
  const std::string path = K6TestdataFile("finance-run.json");
  const FileFacts facts = Scan(path);
  ASSERT_EQ(facts.points, 802);
  ASSERT_EQ(facts.metrics, 16);

  const std::string id = StartExport();
  ReplayOptions options;
  options.now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));  // a whole second
  options.batch_size = 100;
  absl::StatusOr<ReplayResult> result = ReplayK6File(stub_.get(), id, path, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->read.metrics, 16);
  EXPECT_EQ(result->read.samples, 802);
  EXPECT_EQ(result->read.errors, 0);
  EXPECT_EQ(result->read.lines, static_cast<int64_t>(facts.lines.size()));
  EXPECT_EQ(result->samples_sent, 802u);
  EXPECT_EQ(result->shift_ns, absl::ToUnixNanos(options.now) - facts.last_ns);
  EXPECT_EQ(result->response.accepted(), 802u);
  EXPECT_EQ(result->response.rejected(), 0u);

  const v1::StopExportResponse stopped = StopExport(id);
  EXPECT_EQ(stopped.samples_accepted(), 802u);
  // The run's points lie where the shift put them: from the window of its first sample on;
  // the last sample (at `now`) is in the window that ends a second after it.
  const int64_t now_ms = absl::ToUnixMillis(options.now);
  const int64_t first_ms = (facts.first_ns + result->shift_ns) / 1'000'000;
  const auto [low, high] = ReceivedRange();
  EXPECT_EQ(low, (first_ms / 1000 + 1) * 1000);
  EXPECT_GE(high, now_ms + 1000);
  EXPECT_LE(high, absl::ToUnixMillis(absl::Now()) + 1000);
}

TEST_F(ReplayTest, KeepTimestampsDoesNotShift) {
  const std::string path = K6TestdataFile("finance-run.json");
  const FileFacts facts = Scan(path);
  const std::string id = StartExport();
  ReplayOptions options;
  options.keep_timestamps = true;
  absl::StatusOr<ReplayResult> result = ReplayK6File(stub_.get(), id, path, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->shift_ns, 0);
  EXPECT_EQ(result->response.accepted(), 802u);
  StopExport(id);
  // 2024-10-30T16:20:21.6Z .. 16:21:22.8Z, in 1 s windows.
  const auto [low, high] = ReceivedRange();
  EXPECT_EQ(low, (facts.first_ns / 1'000'000'000 + 1) * 1000);
  EXPECT_EQ(low, 1730305222000);
  EXPECT_GE(high, (facts.last_ns / 1'000'000'000 + 1) * 1000);
  EXPECT_LT(high, facts.last_ns / 1'000'000 + 60'000);
}

TEST_F(ReplayTest, RecordedPaceStartsAtNowAndTakesTheRecordedTime) {
  // Three points 100 ms apart.
  const FileFacts facts = Scan(K6TestdataFile("finance-run.json"));
  std::vector<std::string> lines = {facts.lines[0]};  // the http_reqs Metric line
  for (int i = 0; i < 3; ++i) {
    lines.push_back(
        absl::StrCat(R"({"metric":"http_reqs","type":"Point","data":{"time":"2024-10-30T16:20:21.)",
                     i, R"(00Z",)", R"("value":1,"tags":{"status":"200"}}})"));
  }
  const std::string path = TempPath("recorded.json");
  WriteLines(path, lines);
  const std::string id = StartExport();
  ReplayOptions options;
  options.pace = ReplayPace::kRecorded;
  options.batch_size = 1;
  options.now = absl::Now();
  const absl::Time start = absl::Now();
  absl::StatusOr<ReplayResult> result = ReplayK6File(stub_.get(), id, path, options);
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->response.accepted(), 3u);
  const int64_t first_ns = absl::ToUnixNanos(
      absl::FromCivil(absl::CivilSecond(2024, 10, 30, 16, 20, 21), absl::UTCTimeZone()));
  EXPECT_EQ(result->shift_ns, absl::ToUnixNanos(options.now) - first_ns);
  EXPECT_GE(took, absl::Milliseconds(200));
  StopExport(id);
}

TEST_F(ReplayTest, MalformedLineIsReportedWithItsNumberAndTheRestIsReplayed) {
  const FileFacts facts = Scan(K6TestdataFile("finance-run.json"));
  std::vector<std::string> lines(facts.lines.begin(), facts.lines.begin() + 40);
  lines.insert(lines.begin() + 10, R"({"metric":"http_reqs","type":"Point","data":{"time":)");
  const std::string path = TempPath("malformed.json");
  WriteLines(path, lines);
  const FileFacts expected = Scan(path);  // the broken line does not parse: 40 lines' worth

  const std::string id = StartExport();
  std::vector<ReadError> errors;
  ReplayOptions options;
  options.on_error = [&errors](const ReadError& e) { errors.push_back(e); };
  absl::StatusOr<ReplayResult> result = ReplayK6File(stub_.get(), id, path, options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 11);
  EXPECT_FALSE(errors[0].message.empty());
  EXPECT_EQ(result->read.errors, 1);
  EXPECT_EQ(result->read.lines, 41);
  EXPECT_EQ(result->read.samples, expected.points);
  EXPECT_EQ(result->read.metrics, expected.metrics);
  EXPECT_EQ(result->response.accepted(), static_cast<uint64_t>(expected.points));
  StopExport(id);
}

TEST_F(ReplayTest, AFileWithoutSamplesIsRefusedWhenOpened) {
  const std::string path = TempPath("no-samples.json");
  WriteLines(path, {"not k6", R"({"type":"Metric","data":{"name":"x","type":"counter"}})"});
  std::vector<ReadError> errors;
  ReplayOptions options;
  options.on_error = [&errors](const ReadError& e) { errors.push_back(e); };
  absl::StatusOr<std::unique_ptr<ReplayInput>> input = ReplayInput::Open(path, options);
  EXPECT_EQ(input.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(input.status().message(), HasSubstr("no-samples.json holds no k6 sample"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 1);
}

TEST_F(ReplayTest, MissingFileIsNotFound) {
  const std::string id = StartExport();
  absl::StatusOr<ReplayResult> result =
      ReplayK6File(stub_.get(), id, TempPath("does-not-exist.json"), ReplayOptions());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(), HasSubstr("does-not-exist.json"));
  StopExport(id);
}

TEST_F(ReplayTest, UnknownExportIsNotFound) {
  absl::StatusOr<ReplayResult> result = ReplayK6File(
      stub_.get(), "no-such-export", K6TestdataFile("finance-run.json"), ReplayOptions());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(result.status().message(), HasSubstr("no-such-export"));
}

TEST_F(ReplayTest, ReplaysCsv) {
  const std::string id = StartExport();
  absl::StatusOr<ReplayResult> result =
      ReplayK6File(stub_.get(), id, K6TestdataFile("finance-run.csv"), ReplayOptions());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->read.samples, 802);
  EXPECT_EQ(result->read.metrics, 0);  // CSV has no declarations: all of them are built in
  EXPECT_EQ(result->read.errors, 0);
  EXPECT_EQ(result->response.accepted(), 802u);
  EXPECT_EQ(result->response.rejected(), 0u);
  const v1::StopExportResponse stopped = StopExport(id);
  EXPECT_EQ(stopped.samples_accepted(), 802u);
}

TEST_F(ReplayTest, APipeIsSentAsItArrivesWithItsOwnTimestamps) {
  const std::string id = StartExport();
  const std::string fifo = TempPath("live.fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ReplayOptions options;
  options.flush_interval = absl::Milliseconds(50);
  absl::StatusOr<ReplayResult> result;
  std::thread replay([&] { result = ReplayK6File(stub_.get(), id, fifo, options); });

  const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // waits for the reader
  ASSERT_GE(fd, 0);
  const std::string first = absl::StrCat(kMetricLine, "\n", PointLine(absl::Now()));
  ASSERT_EQ(::write(fd, first.data(), first.size()), static_cast<ssize_t>(first.size()));
  // Far below the batch size, the pipe still open: sent by the flush interval.
  EXPECT_TRUE(WaitForAccepted(id, 1));
  const std::string second = PointLine(absl::Now());
  ASSERT_EQ(::write(fd, second.data(), second.size()), static_cast<ssize_t>(second.size()));
  ::close(fd);
  replay.join();

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->read.samples, 2);
  EXPECT_EQ(result->shift_ns, 0);
  EXPECT_EQ(result->end, LiveInput::End::kEndOfInput);
  EXPECT_EQ(result->response.accepted(), 2u);
}

TEST_F(ReplayTest, LiveInputTakesNoPace) {
  const std::string fifo = TempPath("paced.fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ReplayOptions options;
  options.pace = ReplayPace::kRecorded;
  std::thread writer([&] { ::close(::open(fifo.c_str(), O_WRONLY | O_CLOEXEC)); });
  absl::StatusOr<std::unique_ptr<ReplayInput>> input = ReplayInput::Open(fifo, options);
  writer.join();
  EXPECT_EQ(input.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(input.status().message(), HasSubstr("live input"));
}

TEST_F(ReplayTest, AFollowedFileIsReadAsItGrowsAgainWhenTruncatedAndEndsWhenIdle) {
  const std::string id = StartExport();
  const std::string path = TempPath("follow.json");
  std::ofstream(path) << kMetricLine << "\n" << PointLine(absl::Now());
  ReplayOptions options;
  options.follow = true;
  options.idle_timeout = absl::Seconds(1);
  options.flush_interval = absl::Milliseconds(50);
  std::string notices;
  options.on_notice = [&notices](const std::string& line) { notices += line; };
  absl::StatusOr<ReplayResult> result;
  std::thread replay([&] { result = ReplayK6File(stub_.get(), id, path, options); });

  EXPECT_TRUE(WaitForAccepted(id, 1));
  Append(path, PointLine(absl::Now()));
  EXPECT_TRUE(WaitForAccepted(id, 2));
  // A new k6 run truncates the file: it is read from its start again.
  std::ofstream(path, std::ios::trunc) << kMetricLine << "\n";
  Append(path, PointLine(absl::Now()));
  // Taken when the write is done, not once the server has the sample: the follower's idle
  // time runs from its read of that write, which the server's answer may follow by a while.
  const absl::Time last_write = absl::Now();
  EXPECT_TRUE(WaitForAccepted(id, 3));
  replay.join();

  EXPECT_GE(absl::Now() - last_write, absl::Milliseconds(900));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->end, LiveInput::End::kIdleTimeout);
  EXPECT_EQ(result->read.samples, 3);
  EXPECT_EQ(result->response.accepted(), 3u);
  EXPECT_THAT(notices, HasSubstr("follow.json was truncated"));
}

TEST_F(ReplayTest, TheStopDescriptorEndsAFollowedFile) {
  const std::string id = StartExport();
  const std::string path = TempPath("stop.json");
  std::ofstream(path) << kMetricLine << "\n" << PointLine(absl::Now());
  int stop[2];
  ASSERT_EQ(::pipe(stop), 0);
  ReplayOptions options;
  options.follow = true;  // and no idle timeout: only the stop ends it
  options.flush_interval = absl::Milliseconds(50);
  options.stop_fd = stop[0];
  absl::StatusOr<ReplayResult> result;
  std::thread replay([&] { result = ReplayK6File(stub_.get(), id, path, options); });
  EXPECT_TRUE(WaitForAccepted(id, 1));
  ASSERT_EQ(::write(stop[1], "x", 1), 1);
  replay.join();
  ::close(stop[0]);
  ::close(stop[1]);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->end, LiveInput::End::kStopped);
  EXPECT_EQ(result->response.accepted(), 1u);
}

}  // namespace
}  // namespace rwexport
