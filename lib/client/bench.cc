#include "lib/client/bench.h"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "lib/client/sample_stream.h"
#include "lib/common/mutex.h"
#include "lib/model/metric.h"
#include "lib/remote_write/null_receiver.h"

extern char** environ;

namespace rwexport {
namespace {

constexpr char kCustomTrend[] = "checkout_step_duration";
constexpr absl::Duration kChildTimeout = absl::Seconds(30);

using Tags = std::vector<std::pair<std::string, std::string>>;

// ---------------------------------------------------------------------------------------------
// The child process of a phase.

class ChildProcess {
 public:
  // Starts argv[0] with `argv`, its stdin and stdout piped to us, and waits for "port N".
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0) return Errno("pipe");
    if (pipe2(from_child, O_CLOEXEC) != 0) {
      close(to_child[0]);
      close(to_child[1]);
      return Errno("pipe");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid;
    const int error = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    if (error != 0) {
      close(to_child[1]);
      close(from_child[0]);
      return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", strerror(error)));
    }
    std::unique_ptr<ChildProcess> child(new ChildProcess(pid, to_child[1], from_child[0]));
    absl::StatusOr<std::string> line = child->ReadLine();
    if (!line.ok()) return line.status();
    absl::string_view rest = *line;
    if (!absl::ConsumePrefix(&rest, "port ") || !absl::SimpleAtoi(rest, &child->port_)) {
      return absl::InternalError(absl::StrCat("bench server: unexpected first line \"", *line,
                                              "\" (expected \"port N\")"));
    }
    return child;
  }

  ~ChildProcess() {
    close(to_child_);  // EOF on its stdin: it stops its server and exits
    const absl::Time deadline = absl::Now() + kChildTimeout;
    int status;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    close(from_child_);
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  absl::StatusOr<ProcessUsage> Usage() {
    static constexpr char kRequest[] = "usage\n";
    if (write(to_child_, kRequest, sizeof(kRequest) - 1) != sizeof(kRequest) - 1) {
      return Errno("bench server: write");
    }
    absl::StatusOr<std::string> line = ReadLine();
    if (!line.ok()) return line.status();
    std::vector<absl::string_view> parts = absl::StrSplit(*line, ' ');
    ProcessUsage usage;
    if (parts.size() != 5 || parts[0] != "usage" ||
        !absl::SimpleAtod(parts[1], &usage.cpu_seconds) ||
        !absl::SimpleAtoi(parts[2], &usage.peak_rss_kb) ||
        !absl::SimpleAtoi(parts[3], &usage.rss_kb) ||
        !absl::SimpleAtoi(parts[4], &usage.heap_in_use_kb)) {
      return absl::InternalError(absl::StrCat("bench server: unexpected answer \"", *line, "\""));
    }
    return usage;
  }

 private:
  ChildProcess(pid_t pid, int to_child, int from_child)
      : pid_(pid), to_child_(to_child), from_child_(from_child) {}

  static absl::Status Errno(const std::string& what) {
    return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
  }

  // The next line from the child, without its newline (bounded by kChildTimeout).
  absl::StatusOr<std::string> ReadLine() {
    const absl::Time deadline = absl::Now() + kChildTimeout;
    while (true) {
      const size_t eol = buffer_.find('\n');
      if (eol != std::string::npos) {
        std::string line = buffer_.substr(0, eol);
        buffer_.erase(0, eol + 1);
        return line;
      }
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError("bench server: no answer within 30s");
      }
      pollfd fd = {from_child_, POLLIN, 0};
      const int ready = poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;
      char chunk[256];
      const ssize_t n = read(from_child_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::UnavailableError("bench server: exited early (see its stderr)");
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  const pid_t pid_;
  const int to_child_;
  const int from_child_;
  int port_ = 0;
  std::string buffer_;
};

// Reads a child's RSS (from /proc) and heap in use (its answer) every `interval` on a thread of
// its own, from construction until Stop(); the child must not be used meanwhile.
// Thread-compatible (Stop from the constructing thread).
class RssSampler {
 public:
  // `pending` (may be null) answers the points the export holds undelivered.
  RssSampler(ChildProcess* child, absl::Duration interval, std::function<uint64_t()> pending)
      : child_(child),
        interval_(std::max(interval, absl::Milliseconds(10))),
        pending_(std::move(pending)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~RssSampler() { Stop(); }

  // Stops sampling (after one last reading) and returns the readings, in time order.
  std::vector<RssSample> Stop() {
    {
      MutexLock lock(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    if (thread_.joinable()) thread_.join();
    return std::move(samples_);
  }

 private:
  // A process that has exited has no reading; the phase reports its own error then.
  void Read(absl::Time start) {
    absl::StatusOr<uint64_t> rss = ProcessRssKb(child_->pid());
    if (!rss.ok()) return;
    RssSample sample{absl::Now() - start, *rss, 0, 0};
    absl::StatusOr<ProcessUsage> usage = child_->Usage();
    if (usage.ok()) sample.heap_in_use_kb = usage->heap_in_use_kb;
    if (pending_) sample.points_pending = pending_();
    samples_.push_back(sample);
  }

  void Run() {
    const absl::Time start = absl::Now();
    for (int64_t i = 0;; ++i) {
      Read(start);
      MutexLock lock(&mu_);
      const absl::Time next = start + interval_ * (i + 1);
      while (!stop_) {
        const absl::Duration left = next - absl::Now();
        if (left <= absl::ZeroDuration()) break;
        cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(left));
      }
      if (stop_) break;
    }
    Read(start);
  }

  ChildProcess* const child_;
  const absl::Duration interval_;
  const std::function<uint64_t()> pending_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<RssSample> samples_;  // the thread's until joined
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  // A connection of its own, as separate agents have.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::string Thousands(double v) {
  std::string digits = absl::StrFormat("%.0f", v);
  std::string out;
  const size_t n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0 && digits[i - 1] != '-') out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

}  // namespace

const char* BenchModeName(BenchMode mode) {
  return mode == BenchMode::kCompact ? "compact" : "self";
}

const char* BenchServerName(BenchServer server) {
  return server == BenchServer::kNullSink ? "null_sink" : "rwexport";
}

BenchWorkload MakeBenchWorkload(int endpoints, uint64_t seed) {
  static const char* const kResources[] = {"products", "cart", "checkout", "users", "search"};
  static const char* const kHttpMetrics[] = {
      "http_reqs",           "http_req_duration",        "http_req_blocked",
      "http_req_connecting", "http_req_tls_handshaking", "http_req_sending",
      "http_req_waiting",    "http_req_receiving",       "http_req_failed"};
  constexpr int kHttpMetricCount = sizeof(kHttpMetrics) / sizeof(kHttpMetrics[0]);
  constexpr int kOutcomes = 3;  // success, 404, 503
  BenchWorkload w;
  endpoints = std::max(endpoints, 1);
  // Series [0, endpoints * kOutcomes * kHttpMetricCount): endpoint e, outcome o, metric m at
  // ((e * kOutcomes) + o) * kHttpMetricCount + m.
  for (int e = 0; e < endpoints; ++e) {
    const bool post = e % 4 == 0;
    const std::string url = absl::StrCat("https://shop.test/api/v1/", kResources[e % 5], "/", e);
    for (int o = 0; o < kOutcomes; ++o) {
      const char* status = o == 0 ? (post ? "201" : "200") : (o == 1 ? "404" : "503");
      const Tags tags = {{"expected_response", o == 0 ? "true" : "false"},
                         {"method", post ? "POST" : "GET"},
                         {"name", url},
                         {"scenario", "checkout_flow"},
                         {"status", status},
                         {"url", url}};
      for (const char* metric : kHttpMetrics) w.series.push_back({metric, tags});
    }
  }
  const Tags scenario = {{"scenario", "checkout_flow"}};
  const uint32_t data_sent = w.series.size();
  w.series.push_back({"data_sent", scenario});
  const uint32_t data_received = w.series.size();
  w.series.push_back({"data_received", scenario});
  const uint32_t vus = w.series.size();
  w.series.push_back({"vus", {}});
  const uint32_t iterations = w.series.size();
  w.series.push_back({"iterations", scenario});
  const uint32_t iteration_duration = w.series.size();
  w.series.push_back({"iteration_duration", scenario});
  const uint32_t checks = w.series.size();
  w.series.push_back({"checks", {{"check", "status is 2xx"}, {"scenario", "checkout_flow"}}});
  w.series.push_back({"checks", {{"check", "body has items"}, {"scenario", "checkout_flow"}}});
  const uint32_t steps = w.series.size();
  for (const char* step : {"cart", "address", "shipping", "payment", "confirm"}) {
    w.series.push_back({kCustomTrend, {{"scenario", "checkout_flow"}, {"step", step}}});
  }

  // Rounds in which every endpoint is requested once, in a shuffled order; over 33 rounds each
  // endpoint answers 404 once and 503 once (6 % failures), so every series occurs in a cycle.
  constexpr int kRounds = 33;
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> latency(std::log(80.0), 0.6);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  auto add = [&](uint32_t series, double value) { w.cycle.emplace_back(series, value); };
  std::vector<int> order(static_cast<size_t>(endpoints));
  for (int e = 0; e < endpoints; ++e) order[static_cast<size_t>(e)] = e;
  uint64_t request = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::shuffle(order.begin(), order.end(), rng);
    for (int e : order) {
      const int phase = (round + e) % kRounds;
      const int outcome = phase == 0 ? 1 : (phase == kRounds / 2 ? 2 : 0);
      const uint32_t base = static_cast<uint32_t>((e * kOutcomes + outcome) * kHttpMetricCount);
      const double duration = latency(rng);
      const bool new_connection = request % 50 == 0;
      add(base + 0, 1);  // http_reqs
      add(base + 1, duration);
      add(base + 2, new_connection ? 3 + uniform(rng) * 10 : 0.002);  // blocked
      add(base + 3, new_connection ? 1 + uniform(rng) * 3 : 0);       // connecting
      add(base + 4, new_connection ? 2 + uniform(rng) * 5 : 0);       // tls_handshaking
      add(base + 5, 0.02 + uniform(rng) * 0.05);                      // sending
      add(base + 6, duration * 0.9);                                  // waiting
      add(base + 7, duration * 0.1);                                  // receiving
      add(base + 8, outcome == 0 ? 0 : 1);                            // http_req_failed
      add(data_sent, 200 + static_cast<double>(rng() % 300));
      add(data_received, outcome == 0 ? 1000 + static_cast<double>(rng() % 4000) : 150);
      if (request % 4 == 3) {
        add(iterations, 1);
        add(iteration_duration, 1000 + duration * 4);
        add(checks, outcome == 0 ? 1 : 0);
        add(checks + 1, uniform(rng) < 0.99 ? 1 : 0);
        add(steps + static_cast<uint32_t>(request / 4 % 5), duration / 2);
      }
      if (request % 100 == 0) add(vus, 50 + static_cast<double>(rng() % 10));
      ++request;
    }
  }
  return w;
}

v1::StartExportRequest MakeBenchExportRequest(const std::string& remote_write_url,
                                              int resample_rate_s) {
  v1::StartExportRequest request;
  request.set_test_run_id(absl::StrCat("bench-", absl::ToUnixSeconds(absl::Now())));
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(remote_write_url);
  target->set_resample_rate(resample_rate_s);
  target->set_include_test_run_id(true);
  for (const char* metric : {"http_req_duration", "http_reqs"}) {
    v1::MetricEntry* by_endpoint = target->add_metrics();
    by_endpoint->set_source_metric(metric);
    by_endpoint->set_target_metric(absl::StrCat("k6_", metric, "_by_endpoint"));
    for (const char* tag : {"name", "method", "status"}) by_endpoint->add_keep_tags(tag);
  }
  target->add_metrics()->set_source_metric("http_req_failed");
  target->add_metrics()->set_source_metric("http_req_waiting");
  target->add_metrics()->set_source_metric("checks");
  v1::MetricEntry* steps = target->add_metrics();
  steps->set_source_metric(kCustomTrend);
  steps->add_keep_tags("step");
  return request;
}

absl::Time BenchEventTime(absl::Time start, absl::Duration duration, absl::Duration event_span,
                          absl::Time now) {
  if (duration <= absl::ZeroDuration()) return now;
  const absl::Duration elapsed = std::clamp(now - start, absl::ZeroDuration(), duration);
  return start + duration - event_span + elapsed * absl::FDivDuration(event_span, duration);
}

absl::StatusOr<BenchLoadResult> RunBenchLoad(const std::string& address,
                                             const std::string& export_id,
                                             const BenchWorkload& workload,
                                             const BenchLoadOptions& options) {
  const bool compressed = options.event_span != absl::ZeroDuration();
  if (compressed && options.event_span < options.duration) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event span ", absl::FormatDuration(options.event_span), " is shorter than the duration ",
        absl::FormatDuration(options.duration), " (it must be zero or at least the duration)"));
  }
  const int streams = std::max(options.streams, 1);
  const size_t batch_size = std::max<size_t>(options.batch_size, 1);
  const bool compact = options.mode == BenchMode::kCompact;
  Mutex mu;
  BenchLoadResult result;
  absl::Status failure;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options.duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      std::shared_ptr<grpc::Channel> channel = NewChannel(address);
      std::unique_ptr<v1::ExportService::Stub> stub = v1::ExportService::NewStub(channel);
      SampleStream stream(stub.get(), export_id, batch_size);
      stream.Declare(kCustomTrend, MetricType::kTrend, ValueKind::kTime);
      if (compact) {
        for (size_t s = 0; s < workload.series.size(); ++s) {
          stream.DeclareSeries(static_cast<uint32_t>(s), workload.series[s].metric,
                               workload.series[s].tags);
        }
      }
      const size_t n = workload.cycle.size();
      size_t pos = n / static_cast<size_t>(streams) * static_cast<size_t>(i);
      absl::Time first = absl::InfinitePast(), last = absl::InfinitePast();
      absl::Status status;
      while (status.ok()) {
        const absl::Time now = absl::Now();
        if (now >= deadline) break;
        const absl::Time event_time =
            compressed ? BenchEventTime(start, options.duration, options.event_span, now) : now;
        if (first == absl::InfinitePast()) first = event_time;
        last = event_time;
        const int64_t ts = absl::ToUnixNanos(event_time);
        for (size_t k = 0; k < batch_size; ++k) {
          const auto& [series, value] = workload.cycle[pos];
          pos = pos + 1 == n ? 0 : pos + 1;
          if (compact) {
            stream.AddCompact(series, ts, value);
          } else {
            const BenchSeries& s = workload.series[series];
            stream.Add(s.metric, s.tags, ts, value);
          }
        }
        status = stream.Flush();
      }
      absl::StatusOr<v1::StreamSamplesResponse> response =
          status.ok() ? stream.Finish() : absl::StatusOr<v1::StreamSamplesResponse>(status);
      MutexLock lock(&mu);
      result.samples_sent += stream.samples_sent();
      if (first != absl::InfinitePast()) {
        if (result.first_sample_time == absl::InfinitePast() || first < result.first_sample_time) {
          result.first_sample_time = first;
        }
        result.last_sample_time = std::max(result.last_sample_time, last);
      }
      if (response.ok()) {
        result.accepted += response->accepted();
        result.rejected += response->rejected();
      } else if (failure.ok()) {
        failure = response.status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  result.elapsed = absl::Now() - start;
  if (!failure.ok()) return failure;
  return result;
}

ProcessUsage CurrentProcessUsage() {
  ProcessUsage usage;
  rusage ru = {};
  getrusage(RUSAGE_SELF, &ru);
  usage.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                      static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  usage.peak_rss_kb = static_cast<uint64_t>(ru.ru_maxrss);
  const struct mallinfo2 heap = mallinfo2();
  usage.heap_in_use_kb = (heap.uordblks + heap.hblkhd) / 1024;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    uint64_t* field = absl::ConsumePrefix(&rest, "VmHWM:")   ? &usage.peak_rss_kb
                      : absl::ConsumePrefix(&rest, "VmRSS:") ? &usage.rss_kb
                                                             : nullptr;
    if (field == nullptr) continue;
    absl::ConsumeSuffix(&rest, "kB");
    uint64_t kb;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kb)) *field = kb;
  }
  return usage;
}

absl::StatusOr<uint64_t> ProcessRssKb(int pid) {
  const std::string path = absl::StrCat("/proc/", pid, "/status");
  std::ifstream status(path);
  if (!status) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "VmRSS:")) continue;
    absl::ConsumeSuffix(&rest, "kB");
    uint64_t kb;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kb)) {
      return absl::InternalError(absl::StrCat(path, ": unexpected VmRSS line \"", line, "\""));
    }
    return kb;
  }
  return absl::NotFoundError(absl::StrCat(path, ": no VmRSS line"));
}

RssProfile SummarizeRss(const std::vector<RssSample>& samples, absl::Duration duration, bool heap) {
  RssProfile p;
  p.samples = samples.size();
  if (samples.empty()) return p;
  auto kb_of = [heap](const RssSample& s) { return heap ? s.heap_in_use_kb : s.rss_kb; };
  auto at = [&](double fraction) {
    uint64_t kb = kb_of(samples.front());
    for (const RssSample& s : samples) {
      if (s.at > duration * fraction) break;
      kb = kb_of(s);
    }
    return kb;
  };
  p.at_10_kb = at(0.10);
  p.at_25_kb = at(0.25);
  p.at_50_kb = at(0.50);
  p.at_75_kb = at(0.75);
  p.at_100_kb = at(1.0);
  p.after_warmup_min_kb = p.after_warmup_max_kb = p.at_25_kb;
  uint64_t q2_sum = 0, q2_n = 0, q4_sum = 0, q4_n = 0;
  for (const RssSample& s : samples) {
    p.max_kb = std::max(p.max_kb, kb_of(s));
    if (s.at > duration / 4 && s.at <= duration) {
      p.after_warmup_min_kb = std::min(p.after_warmup_min_kb, kb_of(s));
      p.after_warmup_max_kb = std::max(p.after_warmup_max_kb, kb_of(s));
    }
    if (s.at > duration / 4 && s.at <= duration / 2) {
      q2_sum += kb_of(s);
      ++q2_n;
    }
    if (s.at > duration * 3 / 4 && s.at <= duration) {
      q4_sum += kb_of(s);
      ++q4_n;
    }
  }
  if (q2_n > 0 && q4_n > 0) {
    p.second_quarter_mean_kb = q2_sum / q2_n;
    p.last_quarter_mean_kb = q4_sum / q4_n;
    if (p.second_quarter_mean_kb > 0) {
      p.quarter_mean_growth_percent = (static_cast<double>(p.last_quarter_mean_kb) -
                                       static_cast<double>(p.second_quarter_mean_kb)) /
                                      static_cast<double>(p.second_quarter_mean_kb) * 100;
    }
  }
  if (p.at_25_kb > 0) {
    p.growth_percent = (static_cast<double>(p.at_100_kb) - static_cast<double>(p.at_25_kb)) /
                       static_cast<double>(p.at_25_kb) * 100;
  }
  return p;
}

absl::Status ServeBenchChild(int port) {
  std::printf("port %d\n", port);
  std::fflush(stdout);
  char line[256];
  while (std::fgets(line, sizeof(line), stdin) != nullptr) {
    if (absl::StripAsciiWhitespace(line) != "usage") continue;
    const ProcessUsage usage = CurrentProcessUsage();
    std::printf("usage %.6f %llu %llu %llu\n", usage.cpu_seconds,
                static_cast<unsigned long long>(usage.peak_rss_kb),
                static_cast<unsigned long long>(usage.rss_kb),
                static_cast<unsigned long long>(usage.heap_in_use_kb));
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

const BenchPhase* BenchReport::Find(BenchServer server, BenchMode mode) const {
  for (const BenchPhase& p : phases) {
    if (p.server == server && p.mode == mode) return &p;
  }
  return nullptr;
}

absl::StatusOr<BenchReport> RunBench(const BenchOptions& options) {
  if (!options.command) return absl::InvalidArgumentError("BenchOptions.command: required");
  if (options.rss_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("BenchOptions.rss_interval: must be positive");
  }
  NullReceiverOptions receiver_options;
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start(receiver_options);
  if (!receiver.ok()) return receiver.status();
  const BenchWorkload workload = MakeBenchWorkload(options.endpoints, options.seed);
  BenchReport report;
  report.distinct_series = workload.series.size();
  std::vector<BenchServer> servers;
  if (options.null_sink) servers.push_back(BenchServer::kNullSink);
  servers.push_back(BenchServer::kRwexport);

  for (BenchMode mode : options.modes) {
    for (BenchServer server : servers) {
      absl::StatusOr<std::unique_ptr<ChildProcess>> child =
          ChildProcess::Spawn(options.command(server));
      if (!child.ok()) return child.status();
      const std::string address = absl::StrCat("127.0.0.1:", (*child)->port());
      std::unique_ptr<v1::ExportService::Stub> stub =
          v1::ExportService::NewStub(NewChannel(address));

      absl::StatusOr<ProcessUsage> before = (*child)->Usage();
      if (!before.ok()) return before.status();
      const NullReceiverCounts received_before = (*receiver)->Counts();
      v1::StartExportResponse started;
      {
        grpc::ClientContext context;
        absl::Status status = FromGrpcStatus(stub->StartExport(
            &context, MakeBenchExportRequest((*receiver)->Url(), options.resample_rate_s),
            &started));
        if (!status.ok()) return status;
      }
      BenchLoadOptions load_options = options.load;
      load_options.mode = mode;
      const ProcessUsage client_before = CurrentProcessUsage();
      std::function<uint64_t()> pending;
      if (server == BenchServer::kRwexport) {
        pending = [&stub, &started] {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          v1::GetExportRequest request;
          request.set_export_id(started.export_id());
          v1::ExportStatus status;
          uint64_t points = 0;
          if (!stub->GetExport(&context, request, &status).ok()) return points;
          for (const v1::TargetFigures& t : status.figures()) points += t.points_pending();
          return points;
        };
      }
      auto sampler =
          std::make_unique<RssSampler>(child->get(), options.rss_interval, std::move(pending));
      absl::StatusOr<BenchLoadResult> load =
          RunBenchLoad(address, started.export_id(), workload, load_options);
      std::vector<RssSample> rss = sampler->Stop();
      const ProcessUsage client_after = CurrentProcessUsage();
      if (!load.ok()) return load.status();
      v1::StopExportResponse stopped;
      {
        grpc::ClientContext context;
        v1::StopExportRequest request;
        request.set_export_id(started.export_id());
        request.set_delivery_timeout_ms(60000);
        absl::Status status = FromGrpcStatus(stub->StopExport(&context, request, &stopped));
        if (!status.ok()) return status;
      }
      absl::StatusOr<ProcessUsage> after = (*child)->Usage();
      if (!after.ok()) return after.status();
      const NullReceiverCounts received_after = (*receiver)->Counts();

      BenchPhase phase;
      phase.server = server;
      phase.mode = mode;
      phase.load = *load;
      const double seconds = absl::ToDoubleSeconds(load->elapsed);
      phase.samples_per_second = seconds > 0 ? static_cast<double>(load->accepted) / seconds : 0;
      phase.server_cpu_seconds = after->cpu_seconds - before->cpu_seconds;
      phase.server_cpu_seconds_per_million =
          load->accepted > 0 ? phase.server_cpu_seconds / static_cast<double>(load->accepted) * 1e6
                             : 0;
      phase.server_peak_rss_kb = after->peak_rss_kb;
      phase.rss_profile = SummarizeRss(rss, load_options.duration);
      phase.heap_profile = SummarizeRss(rss, load_options.duration, /*heap=*/true);
      phase.rss = std::move(rss);
      phase.server_rss_after_stop_kb = after->rss_kb;
      phase.server_heap_after_stop_kb = after->heap_in_use_kb;
      for (const v1::TargetFigures& t : stopped.targets()) {
        phase.series += t.series();
        phase.points_sent += t.points_sent();
        phase.points_dropped += t.points_dropped();
        phase.highest_point_time =
            std::max(phase.highest_point_time, absl::FromUnixMillis(t.highest_timestamp_ms()));
      }
      phase.points_received = received_after.points - received_before.points;
      phase.requests_received = received_after.requests - received_before.requests;
      phase.client_cpu_seconds = client_after.cpu_seconds - client_before.cpu_seconds;
      report.phases.push_back(phase);
      if (options.on_progress) {
        options.on_progress(absl::StrFormat(
            "  %-9s %-7s %12s samples/s  %.3f server CPU s per million samples",
            BenchServerName(server), BenchModeName(mode), Thousands(phase.samples_per_second),
            phase.server_cpu_seconds_per_million));
      }
    }
  }
  return report;
}

std::string FormatBenchReport(const BenchReport& report, const BenchOptions& options) {
  std::string out = absl::StrFormat(
      "workload: %d distinct series, %d streams, %s per phase, batches of %d samples, "
      "windows of %ds\n\n",
      report.distinct_series, options.load.streams, absl::FormatDuration(options.load.duration),
      options.load.batch_size, options.resample_rate_s);
  if (options.load.event_span != absl::ZeroDuration()) {
    absl::StrAppendFormat(
        &out,
        "event time: each phase replays %s of sample timestamps in %s (%.1fx wall speed), "
        "ending when the phase ends\n\n",
        absl::FormatDuration(options.load.event_span), absl::FormatDuration(options.load.duration),
        absl::FDivDuration(options.load.event_span, options.load.duration));
  }
  absl::StrAppendFormat(&out, "%-9s  %-7s  %13s  %9s  %14s  %12s  %11s  %7s  %11s  %11s  %10s\n",
                        "server", "mode", "samples", "seconds", "samples/s", "CPU s/M smpl",
                        "peak RSS MB", "series", "points sent", "points recv", "client CPU");
  for (const BenchPhase& p : report.phases) {
    const bool real = p.server == BenchServer::kRwexport;
    absl::StrAppendFormat(
        &out, "%-9s  %-7s  %13s  %9.2f  %14s  %12.3f  %11.1f  %7s  %11s  %11s  %9.2fs\n",
        BenchServerName(p.server), BenchModeName(p.mode), Thousands(p.load.accepted),
        absl::ToDoubleSeconds(p.load.elapsed), Thousands(p.samples_per_second),
        p.server_cpu_seconds_per_million, static_cast<double>(p.server_peak_rss_kb) / 1024,
        real ? Thousands(p.series) : "-", real ? Thousands(p.points_sent) : "-",
        real ? Thousands(p.points_received) : "-", p.client_cpu_seconds);
    if (p.load.rejected > 0 || p.points_dropped > 0) {
      absl::StrAppendFormat(&out, "  (!) %llu samples rejected, %llu points dropped\n",
                            static_cast<unsigned long long>(p.load.rejected),
                            static_cast<unsigned long long>(p.points_dropped));
    }
  }
  absl::StrAppendFormat(
      &out,
      "\nserver memory during the load, MB, read every %s: rss = /proc/PID/status VmRSS, heap = "
      "malloc'd and not freed (mallinfo2). \"p%%\": the last reading at or before p%% of the "
      "phase (of its event time); growth: 100%% vs 25%%, i.e. after the warm-up quarter in which "
      "every series appears; range: lowest and highest reading from 25%% to 100%%; q4/q2: mean of "
      "the readings in the last quarter vs in the second; pending: most points undelivered\n",
      absl::FormatDuration(options.rss_interval));
  absl::StrAppendFormat(
      &out,
      "%-9s  %-7s  %-4s  %8s  %7s  %7s  %7s  %7s  %7s  %7s  %7s  %15s  %7s  %10s  "
      "%11s  %11s\n",
      "server", "mode", "", "readings", "10%", "25%", "50%", "75%", "100%", "max", "growth",
      "range", "q4/q2", "after stop", "pending", "event time");
  auto mb = [](uint64_t kb) { return static_cast<double>(kb) / 1024; };
  for (const BenchPhase& p : report.phases) {
    const std::string event_time =
        p.load.first_sample_time == absl::InfinitePast()
            ? "-"
            : absl::FormatDuration(absl::Trunc(p.load.last_sample_time - p.load.first_sample_time,
                                               absl::Milliseconds(1)));
    uint64_t most_pending = 0;
    for (const RssSample& r : p.rss) most_pending = std::max(most_pending, r.points_pending);
    for (bool heap : {false, true}) {
      const RssProfile& r = heap ? p.heap_profile : p.rss_profile;
      absl::StrAppendFormat(
          &out,
          "%-9s  %-7s  %-4s  %8d  %7.1f  %7.1f  %7.1f  %7.1f  %7.1f  %7.1f  %+6.1f%%  %15s  "
          "%+6.1f%%  %10.1f  %11s  %11s\n",
          BenchServerName(p.server), BenchModeName(p.mode), heap ? "heap" : "rss", r.samples,
          mb(r.at_10_kb), mb(r.at_25_kb), mb(r.at_50_kb), mb(r.at_75_kb), mb(r.at_100_kb),
          mb(r.max_kb), r.growth_percent,
          absl::StrFormat("%.1f-%.1f", mb(r.after_warmup_min_kb), mb(r.after_warmup_max_kb)),
          r.quarter_mean_growth_percent,
          mb(heap ? p.server_heap_after_stop_kb : p.server_rss_after_stop_kb),
          heap ? "" : Thousands(static_cast<double>(most_pending)), heap ? "" : event_time);
    }
  }
  std::string ratios;
  for (BenchMode mode : options.modes) {
    const BenchPhase* real = report.Find(BenchServer::kRwexport, mode);
    const BenchPhase* null = report.Find(BenchServer::kNullSink, mode);
    if (real == nullptr || null == nullptr || null->samples_per_second == 0 ||
        null->server_cpu_seconds_per_million == 0) {
      continue;
    }
    absl::StrAppendFormat(
        &ratios, "  %-7s rwexport / null sink: samples/s %.2fx, server CPU per sample %.2fx\n",
        BenchModeName(mode), real->samples_per_second / null->samples_per_second,
        real->server_cpu_seconds_per_million / null->server_cpu_seconds_per_million);
  }
  for (BenchServer server : {BenchServer::kRwexport, BenchServer::kNullSink}) {
    const BenchPhase* self = report.Find(server, BenchMode::kSelfDescribing);
    const BenchPhase* compact = report.Find(server, BenchMode::kCompact);
    if (self == nullptr || compact == nullptr || self->samples_per_second == 0 ||
        compact->server_cpu_seconds_per_million == 0) {
      continue;
    }
    absl::StrAppendFormat(
        &ratios, "  %-9s compact / self: samples/s %.2fx, server CPU per sample %.2fx less\n",
        BenchServerName(server), compact->samples_per_second / self->samples_per_second,
        self->server_cpu_seconds_per_million / compact->server_cpu_seconds_per_million);
  }
  if (!ratios.empty()) absl::StrAppend(&out, "\nratios (same run):\n", ratios);
  return out;
}

std::string FormatRssReadings(const BenchReport& report) {
  std::string out = "server,mode,seconds,rss_kb,heap_in_use_kb,points_pending\n";
  for (const BenchPhase& p : report.phases) {
    for (const RssSample& r : p.rss) {
      absl::StrAppendFormat(&out, "%s,%s,%.3f,%d,%d,%d\n", BenchServerName(p.server),
                            BenchModeName(p.mode), absl::ToDoubleSeconds(r.at), r.rss_kb,
                            r.heap_in_use_kb, r.points_pending);
    }
  }
  return out;
}

}  // namespace rwexport
