// The write-ahead log's costs (BENCHMARKS.md, "Write-ahead log"):
//   1. append throughput with 1 and 8 appending threads, for `always` and `interval:100ms`:
//      records/s, MB/s, fsyncs/s, average records per fsync, acknowledgement latency. Each
//      thread acts like an acknowledged ingest stream: at most --window records of
//      --record_bytes in flight, the next one sent when one is acknowledged.
//   2. restart cost: a log of --replay_mib MiB is written and closed; then a restart is timed,
//      with the segments evicted from the page cache first (posix_fadvise DONTNEED; "cold")
//      and without ("warm"): Wal::Open with a replay callback (one pass that validates and
//      replays), and Wal::Open followed by Replay (two passes).
// Everything goes to a fresh directory under --tmp, deleted at the end.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/mutex.h"
#include "lib/durable/wal.h"

ABSL_FLAG(std::string, tmp, "/tmp", "where the bench makes its temporary log directories");
ABSL_FLAG(double, seconds, 3.0, "seconds of appending per configuration");
ABSL_FLAG(int, record_bytes, 16384, "payload bytes per record (a typical ingest batch)");
ABSL_FLAG(int, window, 16, "records in flight per appending thread");
ABSL_FLAG(std::string, policies, "always,interval:100ms", "fsync policies, comma-separated");
ABSL_FLAG(std::string, threads, "1,8", "appending threads, comma-separated");
ABSL_FLAG(int, replay_mib, 1024, "size of the log written for the replay measurement (MiB)");
ABSL_FLAG(bool, keep_page_cache, false,
          "keep the log's pages in the page cache after each fsync (WalOptions::"
          "drop_written_pages = false), for comparison with the default");

namespace rwexport {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string MakeDir() {
  std::string templ = absl::StrCat(absl::GetFlag(FLAGS_tmp), "/wal-bench.XXXXXX");
  if (mkdtemp(&templ[0]) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return templ;
}

// One appending thread: keeps `window` records in flight until `deadline`, then waits for all.
class Appender {
 public:
  Appender(Wal* wal, int window, int record_bytes)
      : wal_(wal), window_(window), payload_(record_bytes, 'w') {}

  void Run(Clock::time_point deadline) {
    while (Clock::now() < deadline) {
      {
        MutexLock lock(&mu_);
        while (in_flight_ >= window_) cv_.Wait(&mu_);
        ++in_flight_;
      }
      const Clock::time_point sent = Clock::now();
      wal_->Append(payload_, [this, sent](absl::Status s, WalPosition) {
        const double latency = Seconds(Clock::now() - sent);
        MutexLock lock(&mu_);
        if (!s.ok()) {
          ++errors_;
          if (error_text_.empty()) error_text_ = std::string(s.message());
        }
        latencies_.push_back(latency);
        --in_flight_;
        cv_.Signal();
      });
    }
    MutexLock lock(&mu_);
    while (in_flight_ > 0) cv_.Wait(&mu_);
  }

  std::vector<double> latencies() {
    MutexLock lock(&mu_);
    return latencies_;
  }
  int errors() {
    MutexLock lock(&mu_);
    return errors_;
  }
  std::string error_text() {
    MutexLock lock(&mu_);
    return error_text_;
  }

 private:
  Wal* const wal_;
  const int window_;
  const std::string payload_;
  Mutex mu_;
  CondVar cv_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::string error_text_ ABSL_GUARDED_BY(mu_);
  std::vector<double> latencies_ ABSL_GUARDED_BY(mu_);
};

void AppendThroughput(const std::string& policy_text, int threads) {
  auto policy = ParseFsyncPolicy(policy_text);
  if (!policy.ok()) {
    std::fprintf(stderr, "%s\n", std::string(policy.status().message()).c_str());
    std::exit(2);
  }
  WalOptions options;
  options.dir = MakeDir();
  options.fsync = *policy;
  options.drop_written_pages = !absl::GetFlag(FLAGS_keep_page_cache);
  auto wal = Wal::Open(options, nullptr);
  if (!wal.ok()) {
    std::fprintf(stderr, "%s\n", std::string(wal.status().message()).c_str());
    std::exit(1);
  }
  std::vector<std::unique_ptr<Appender>> appenders;
  for (int t = 0; t < threads; ++t) {
    appenders.push_back(std::make_unique<Appender>(wal->get(), absl::GetFlag(FLAGS_window),
                                                   absl::GetFlag(FLAGS_record_bytes)));
  }
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline =
      start + std::chrono::microseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_seconds) * 1e6));
  std::vector<std::thread> running;
  for (auto& a : appenders) running.emplace_back([&a, deadline] { a->Run(deadline); });
  for (std::thread& t : running) t.join();
  const double elapsed = Seconds(Clock::now() - start);
  const WalFigures f = (*wal)->Figures();
  std::vector<double> latencies;
  int errors = 0;
  std::string error_text;
  for (auto& a : appenders) {
    const std::vector<double> l = a->latencies();
    latencies.insert(latencies.end(), l.begin(), l.end());
    errors += a->errors();
    if (error_text.empty()) error_text = a->error_text();
  }
  std::sort(latencies.begin(), latencies.end());
  double mean = 0;
  for (double l : latencies) mean += l;
  if (!latencies.empty()) mean /= static_cast<double>(latencies.size());
  const double p99 = latencies.empty()
                         ? 0
                         : latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
  std::printf(
      "| %-15s | %2d | %9.0f | %7.1f | %7.1f | %7.1f | %7.2f | %7.2f | %lld | %d%s%s |\n",
      policy_text.c_str(), threads, static_cast<double>(f.records_appended) / elapsed,
      static_cast<double>(f.bytes_appended) / elapsed / 1e6,
      static_cast<double>(f.fsyncs) / elapsed,
      f.fsyncs > 0 ? static_cast<double>(f.records_appended) / static_cast<double>(f.fsyncs) : 0.0,
      mean * 1e3, p99 * 1e3, static_cast<long long>(f.largest_group), errors,
      error_text.empty() ? "" : " ", error_text.c_str());
  std::fflush(stdout);
  wal->reset();
  std::filesystem::remove_all(options.dir);
}

// User + system CPU seconds of the process so far.
double CpuSeconds() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void EvictSegments(const std::string& dir) {
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const int fd = open(entry.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

void ReplaySpeed() {
  WalOptions options;
  options.dir = MakeDir();
  // Written with its pages kept, so that "warm" means the log is in the page cache (the
  // default drops them as it goes: a restart then reads as in "cold").
  options.drop_written_pages = false;
  const int record_bytes = absl::GetFlag(FLAGS_record_bytes);
  const int64_t target = static_cast<int64_t>(absl::GetFlag(FLAGS_replay_mib)) << 20;
  const int64_t records = (target + record_bytes - 1) / record_bytes;
  const Clock::time_point write_start = Clock::now();
  {
    auto wal = Wal::Open(options, nullptr);
    if (!wal.ok()) {
      std::fprintf(stderr, "%s\n", std::string(wal.status().message()).c_str());
      std::exit(1);
    }
    // One writer, 128 records in flight.
    Mutex mu;
    CondVar cv;
    int64_t in_flight = 0;
    int64_t failed = 0;
    const std::string payload(record_bytes, 'r');
    for (int64_t i = 0; i < records; ++i) {
      {
        MutexLock lock(&mu);
        while (in_flight >= 128) cv.Wait(&mu);
        ++in_flight;
      }
      (*wal)->Append(payload, [&](absl::Status s, WalPosition) {
        MutexLock lock(&mu);
        if (!s.ok()) ++failed;
        --in_flight;
        cv.Signal();
      });
    }
    MutexLock lock(&mu);
    while (in_flight > 0) cv.Wait(&mu);
    if (failed > 0) {
      std::fprintf(stderr, "%lld appends failed\n", static_cast<long long>(failed));
      std::exit(1);
    }
  }
  const double write_seconds = Seconds(Clock::now() - write_start);
  int64_t log_bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(options.dir)) {
    if (entry.is_regular_file()) log_bytes += static_cast<int64_t>(entry.file_size());
  }
  const double gb = static_cast<double>(log_bytes) / 1e9;
  std::printf("log: %lld records of %d bytes, %.3f GB in %zu-MiB segments, written in %.1f s\n",
              static_cast<long long>(records), record_bytes, gb,
              static_cast<size_t>(options.segment_bytes >> 20), write_seconds);

  // A restart: one pass (Open with a replay callback), or Open then Replay (two passes).
  std::printf(
      "| restart | page cache | wall s | wall s/GB | CPU s/GB | of which Open: wall s/GB |\n");
  for (const char* mode : {"one pass", "Open + Replay"}) {
    for (const bool cold : {true, false}) {
      const bool one_pass = mode[0] == 'o';
      if (cold) EvictSegments(options.dir);
      int64_t replayed = 0;
      uint64_t checksum = 0;
      const Wal::ReplayCallback count = [&](WalPosition, absl::string_view payload) {
        ++replayed;
        checksum += static_cast<unsigned char>(payload[payload.size() / 2]);
        return absl::OkStatus();
      };
      const double cpu0 = CpuSeconds();
      const Clock::time_point t0 = Clock::now();
      WalRecoveryReport report;
      auto wal = one_pass ? Wal::Open(options, &report, {}, count) : Wal::Open(options, &report);
      const double open_seconds = Seconds(Clock::now() - t0);
      if (!wal.ok() || report.records != records || !report.clean()) {
        std::fprintf(stderr, "unexpected recovery: %s\n", report.Summary().c_str());
        std::exit(1);
      }
      absl::Status s;
      if (!one_pass) s = (*wal)->Replay({}, count);
      const double seconds = Seconds(Clock::now() - t0);
      const double cpu = CpuSeconds() - cpu0;
      if (!s.ok() || replayed != records) {
        std::fprintf(stderr, "replay failed: %s (%lld records)\n", s.ToString().c_str(),
                     static_cast<long long>(replayed));
        std::exit(1);
      }
      std::printf("| %s | %s | %.2f | %.2f | %.2f | %.2f |\n", mode, cold ? "cold" : "warm",
                  seconds, seconds / gb, cpu / gb, open_seconds / gb);
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(options.dir);
}

}  // namespace
}  // namespace rwexport

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::printf("record %d bytes, window %d per thread, %.1f s per configuration\n\n",
              absl::GetFlag(FLAGS_record_bytes), absl::GetFlag(FLAGS_window),
              absl::GetFlag(FLAGS_seconds));
  std::printf(
      "| policy          | threads | records/s | MB/s | fsyncs/s | records/fsync | ack mean ms | "
      "ack p99 ms | largest group | errors |\n");
  const std::vector<std::string> policies =
      absl::StrSplit(absl::GetFlag(FLAGS_policies), ',', absl::SkipEmpty());
  const std::vector<std::string> thread_counts =
      absl::StrSplit(absl::GetFlag(FLAGS_threads), ',', absl::SkipEmpty());
  for (const std::string& policy : policies) {
    for (const std::string& threads : thread_counts) {
      rwexport::AppendThroughput(policy, std::stoi(threads));
    }
  }
  std::printf("\n");
  if (absl::GetFlag(FLAGS_replay_mib) > 0) rwexport::ReplaySpeed();
  return 0;
}
