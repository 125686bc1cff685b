// ReplayK6File against the gRPC server in-process, its export delivering to the fake
// remote-write receiver, with the real k6 result files of shared/testdata/k6.
#include "lib/client/replay.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
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

}  // namespace
}  // namespace rwexport
