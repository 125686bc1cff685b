// A k6 test running now, exported live: a writer appends the lines of a real k6 run
// (shared/testdata/k6/finance-run.json), timestamps rewritten to the moment each is written,
// at the recorded pace, to a file that the real `rwexport replay --follow` reads; a real
// Prometheus shows the first window while the writer is still writing, with the exact count
// of the requests written before that window's end.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/mutex.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_server.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// Writes the lines of a k6 JSON file to `path` at their recorded pace, each Point's time
// rewritten to the moment it is written, until the file ends or Stop().
class LiveK6Writer {
 public:
  LiveK6Writer(const std::string& source, const std::string& path) : path_(path) {
    std::ifstream in(source);
    std::string line;
    while (std::getline(in, line)) lines_.push_back(line);
    thread_ = std::thread([this] { Run(); });
  }
  ~LiveK6Writer() {
    Stop();
    thread_.join();
  }
  void Stop() {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  bool done() const { return done_.load(); }
  // The times (ns) of the http_reqs points written so far.
  std::vector<int64_t> HttpReqTimes() {
    MutexLock lock(&mu_);
    return http_reqs_ns_;
  }
  int64_t points_written() {
    MutexLock lock(&mu_);
    return points_;
  }

 private:
  void Run() {
    std::ofstream out(path_);
    absl::Time start = absl::InfinitePast();
    absl::Time first = absl::InfinitePast();
    for (const std::string& line : lines_) {
      nlohmann::json doc = nlohmann::json::parse(line, nullptr, false);
      if (doc.is_discarded()) continue;
      int64_t now_ns = 0;
      if (doc.value("type", "") == "Point") {
        absl::Time recorded;
        std::string error;
        if (!absl::ParseTime(absl::RFC3339_full, doc["data"]["time"].get<std::string>(), &recorded,
                             &error)) {
          continue;
        }
        if (start == absl::InfinitePast()) {
          start = absl::Now();
          first = recorded;
        }
        const absl::Time due = start + (recorded - first);
        MutexLock lock(&mu_);
        while (!stop_ && absl::Now() < due) {
          cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(due - absl::Now()));
        }
        if (stop_) break;
        const absl::Time now = absl::Now();
        now_ns = absl::ToUnixNanos(now);
        doc["data"]["time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", now, absl::UTCTimeZone());
        ++points_;
        if (doc.value("metric", "") == "http_reqs") http_reqs_ns_.push_back(now_ns);
      }
      out << doc.dump() << "\n" << std::flush;
    }
    done_ = true;
  }

  const std::string path_;
  std::vector<std::string> lines_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t points_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> http_reqs_ns_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> done_{false};
  std::thread thread_;
};

TEST(LiveK6Test, PrometheusShowsTheFirstWindowWhileK6IsStillWriting) {
  absl::StatusOr<PrometheusServer*> prometheus = PrometheusServer::Shared();
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  TestServer server;
  const std::string config = TempPath("live-apm.json");
  std::ofstream(config) << R"([{"provider": "prometheus", "remoteWriteURL": ")"
                        << (*prometheus)->remote_write_url()
                        << R"(", "resampleRate": 1, "includeTestRunId": true}])";
  const std::string results = TempPath("live-results.json");
  std::ofstream(results).flush();  // k6 creates its output file at start
  const std::string run = absl::StrCat("live-", absl::ToUnixMillis(absl::Now()));

  absl::StatusOr<std::unique_ptr<Subprocess>> replay =
      Subprocess::Start(RunfilePath("client/rwexport"),
                        {"replay", results, "--follow", "--idle_timeout=3s", "--config=" + config,
                         "--test_run_id=" + run, absl::StrCat("--server=", server.address())});
  ASSERT_TRUE(replay.ok()) << replay.status();
  ASSERT_TRUE((*replay)->WaitForStderr("started export ", absl::Seconds(20)))
      << (*replay)->stderr_text();
  LiveK6Writer writer(K6TestdataFile("finance-run.json"), results);

  // The recorded run lasts a minute; its first 1 s window must show within seconds.
  const std::string query = absl::StrCat("k6_http_reqs_total{test_run_id=\"", run, "\"}[5m]");
  std::vector<QueryResult> points;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (points.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    absl::StatusOr<std::vector<QueryResult>> found =
        (*prometheus)->Query(query, absl::Now() + absl::Minutes(1));
    ASSERT_TRUE(found.ok()) << found.status();
    points = *found;
  }
  ASSERT_FALSE(points.empty()) << (*replay)->stderr_text();
  EXPECT_FALSE(writer.done());
  // The counter of the first window: every request written before its end.
  const int64_t window_end_ns = points[0].timestamp_ms * 1'000'000;
  int64_t before_end = 0;
  for (int64_t t : writer.HttpReqTimes()) before_end += t < window_end_ns ? 1 : 0;
  EXPECT_GT(before_end, 0);
  EXPECT_EQ(points[0].value, static_cast<double>(before_end));

  // k6 ends: the replay ends after its idle timeout (the recorded run has gaps of up to 1 s),
  // stopping its export.
  writer.Stop();
  absl::StatusOr<int> code = (*replay)->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*replay)->stderr_text();
  EXPECT_THAT((*replay)->stdout_text(),
              HasSubstr(absl::StrCat("samples accepted: ", writer.points_written(), ", ")));
  EXPECT_THAT((*replay)->stdout_text(), HasSubstr("(no new line for 3s)"));
  EXPECT_EQ(server.registry().size(), 0u);
}

}  // namespace
}  // namespace rwexport
