// ReplayK6File on live input (a FIFO, a followed file) against the gRPC server in-process:
// samples reach the server while the writer still writes, a followed file ends after its idle
// timeout or when the stop descriptor becomes readable, and is read again once truncated.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "lib/client/replay.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

constexpr char kMetricLine[] =
    R"({"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default"},)"
    R"("metric":"http_reqs"})";

// A k6 JSON Point line of http_reqs at `time`.
std::string PointLine(absl::Time time) {
  return absl::StrCat(R"({"metric":"http_reqs","type":"Point","data":{"time":")",
                      absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", time, absl::UTCTimeZone()),
                      R"(","value":1,"tags":{"status":"200"}}})", "\n");
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

void Append(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::app);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

class LiveReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    stub_ = server_.NewStub();
    v1::StartExportRequest request;
    request.set_test_run_id("live");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    target->set_resample_rate(1);
    absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
    ASSERT_TRUE(started.ok()) << started.status();
    id_ = started->export_id();
  }

  void TearDown() override {
    if (!id_.empty()) StopExportRpc(*stub_, id_).IgnoreError();
  }

  // True once the export accepted at least `n` samples (within 10 s).
  bool WaitForAccepted(uint64_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::ExportStatus> status = GetExportRpc(*stub_, id_);
      if (status.ok() && status->samples_accepted() >= n) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  std::unique_ptr<FakeReceiver> receiver_;
  TestServer server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
  std::string id_;
};

TEST_F(LiveReplayTest, APipeIsSentAsItArrivesWithItsOwnTimestamps) {
  const std::string fifo = TempPath("live.fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ReplayOptions options;
  options.flush_interval = absl::Milliseconds(50);
  absl::StatusOr<ReplayResult> result;
  std::thread replay([&] { result = ReplayK6File(stub_.get(), id_, fifo, options); });

  const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // waits for the reader
  ASSERT_GE(fd, 0);
  const std::string first = absl::StrCat(kMetricLine, "\n", PointLine(absl::Now()));
  ASSERT_EQ(::write(fd, first.data(), first.size()), static_cast<ssize_t>(first.size()));
  // Far below the batch size, the pipe still open: sent by the flush interval.
  EXPECT_TRUE(WaitForAccepted(1));
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

TEST_F(LiveReplayTest, LiveInputTakesNoPace) {
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

TEST_F(LiveReplayTest, AFollowedFileIsReadAsItGrowsAgainWhenTruncatedAndEndsWhenIdle) {
  const std::string path = TempPath("follow.json");
  std::ofstream(path) << kMetricLine << "\n" << PointLine(absl::Now());
  ReplayOptions options;
  options.follow = true;
  options.idle_timeout = absl::Seconds(1);
  options.flush_interval = absl::Milliseconds(50);
  std::string notices;
  options.on_notice = [&notices](const std::string& line) { notices += line; };
  absl::StatusOr<ReplayResult> result;
  std::thread replay([&] { result = ReplayK6File(stub_.get(), id_, path, options); });

  EXPECT_TRUE(WaitForAccepted(1));
  Append(path, PointLine(absl::Now()));
  EXPECT_TRUE(WaitForAccepted(2));
  // A new k6 run truncates the file: it is read from its start again.
  std::ofstream(path, std::ios::trunc) << kMetricLine << "\n";
  Append(path, PointLine(absl::Now()));
  EXPECT_TRUE(WaitForAccepted(3));
  const absl::Time last_write = absl::Now();
  replay.join();

  EXPECT_GE(absl::Now() - last_write, absl::Milliseconds(900));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->end, LiveInput::End::kIdleTimeout);
  EXPECT_EQ(result->read.samples, 3);
  EXPECT_EQ(result->response.accepted(), 3u);
  EXPECT_THAT(notices, HasSubstr("follow.json was truncated"));
}

TEST_F(LiveReplayTest, TheStopDescriptorEndsAFollowedFile) {
  const std::string path = TempPath("stop.json");
  std::ofstream(path) << kMetricLine << "\n" << PointLine(absl::Now());
  int stop[2];
  ASSERT_EQ(::pipe(stop), 0);
  ReplayOptions options;
  options.follow = true;  // and no idle timeout: only the stop ends it
  options.flush_interval = absl::Milliseconds(50);
  options.stop_fd = stop[0];
  absl::StatusOr<ReplayResult> result;
  std::thread replay([&] { result = ReplayK6File(stub_.get(), id_, path, options); });
  EXPECT_TRUE(WaitForAccepted(1));
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
