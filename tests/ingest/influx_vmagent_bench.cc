// Server CPU per million samples of rwexport's InfluxDB write API next to vmagent's /write, on
// identical request bodies, side by side in one run (scripts/bench_influx.sh runs it).
//
// The bodies: the k6-like samples of `rwexport bench` (MakeBenchWorkload: 200 endpoints x 3
// outcomes x 8 request metrics plus data, vus, iterations, checks and a custom trend) written as
// k6's InfluxDB output writes them (tags sorted, url as a string field, field value, ns),
// `--lines_per_body` lines a body, timestamps spread over the phase. Each repetition sends the
// same bodies to:
//   rwexport_server --influx_listen --influx_auto_export (the bench's export configuration,
//     custom trend declared, target a null receiver answering 204), --influx_idle_stop=1s: the
//     export starts on the first write and is stopped (flushed, delivered) after the load;
//   vmagent -remoteWrite.url=<the same kind of null receiver>: it forwards every sample.
// over --connections keep-alive connections, as fast as each server answers. A server's CPU
// is utime + stime of its process (/proc/PID/stat) from before the load to the moment it has
// delivered everything (rwexport: its export stopped; vmagent: no remote write for 2 s), so
// both pay for parsing, their work and their remote writes. A server's peak RSS is VmHWM of its
// process (/proc/PID/status), read after the load is delivered, before the process is stopped.
// Prints one line per repetition and min / median / max of the ratio (scripts/bench_peer.sh
// parses the repetition lines).
#include <arpa/inet.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/bench/workload.h"

ABSL_FLAG(std::string, server_binary, "bazel-bin/server/rwexport_server", "rwexport_server.");
ABSL_FLAG(std::string, vmagent, "/usr/bin/vmagent", "vmagent (Debian's victoria-metrics).");
ABSL_FLAG(int64_t, samples, 2000000, "Samples sent to each server per repetition.");
ABSL_FLAG(int, lines_per_body, 1000, "Lines per write request.");
ABSL_FLAG(int, connections, 4, "Concurrent keep-alive connections of the load.");
ABSL_FLAG(int, reps, 3, "Repetitions (each: rwexport, then vmagent).");
ABSL_FLAG(int, server_workers, 0, "rwexport_server --workers (0: one per core).");

namespace rwexport {
namespace {

std::atomic<uint64_t> null_requests{0};

MHD_Result NullAnswer(void*, MHD_Connection* connection, const char*, const char*, const char*,
                      const char*, size_t* upload_data_size, void** con_cls) {
  if (*con_cls == nullptr) {
    *con_cls = connection;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  ++null_requests;
  MHD_Response* response = MHD_create_response_from_buffer(0, nullptr, MHD_RESPMEM_PERSISTENT);
  const MHD_Result r = MHD_queue_response(connection, MHD_HTTP_NO_CONTENT, response);
  MHD_destroy_response(response);
  return r;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* out = std::fopen(log.c_str(), "w");
    if (out != nullptr) {
      dup2(fileno(out), 1);
      dup2(fileno(out), 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

void Stop(pid_t pid) {
  kill(pid, SIGTERM);
  int status;
  for (int i = 0; i < 300; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) return;
    absl::SleepFor(absl::Milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
}

// utime + stime of every thread of `pid`, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');
  std::vector<std::string> fields = absl::StrSplit(text.substr(paren + 2), ' ');
  // After "pid (comm) ": field 3 is state; utime and stime are fields 14 and 15.
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

// VmHWM (peak resident set) of `pid` in kB, 0 when unreadable.
uint64_t PeakRssKb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

struct HttpResult {
  long status = 0;
  std::string body;
};

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

HttpResult Get(const std::string& url) {
  CURL* curl = curl_easy_init();
  HttpResult r;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  if (curl_easy_perform(curl) == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(curl);
  return r;
}

bool WaitReady(const std::string& url, int want) {
  for (int i = 0; i < 200; ++i) {
    if (Get(url).status == want) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// Escapes as k6's InfluxDB client does (tag keys/values: comma, equals, space).
std::string EscapeTag(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '=' || c == ' ') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::vector<std::string> MakeBodies(int64_t samples, int lines_per_body) {
  const BenchWorkload workload = MakeBenchWorkload(200, 1);
  std::vector<std::string> prefixes;  // "metric,tags url=\"...\",value="
  for (const BenchSeries& s : workload.series) {
    std::vector<std::pair<std::string, std::string>> tags = s.tags;
    std::sort(tags.begin(), tags.end());
    std::string line = s.metric;
    std::string url;
    for (const auto& [k, v] : tags) {
      if (k == "url") {
        url = v;
        continue;
      }
      if (!v.empty()) absl::StrAppend(&line, ",", EscapeTag(k), "=", EscapeTag(v));
    }
    absl::StrAppend(&line, " ");
    if (!url.empty()) absl::StrAppend(&line, "url=\"", url, "\",");
    absl::StrAppend(&line, "value=");
    prefixes.push_back(line);
  }
  // Timestamps: 10 s ending now, in sending order.
  const int64_t end = absl::ToUnixNanos(absl::Now());
  const int64_t step = std::max<int64_t>(1, 10000000000 / std::max<int64_t>(samples, 1));
  std::vector<std::string> bodies;
  std::string body;
  int in_body = 0;
  for (int64_t i = 0; i < samples; ++i) {
    const auto& [series, value] = workload.cycle[static_cast<size_t>(i) % workload.cycle.size()];
    char number[64];
    std::snprintf(number, sizeof(number), "%.6g", value);
    absl::StrAppend(&body, prefixes[series], number, " ", end - (samples - i) * step, "\n");
    if (++in_body == lines_per_body) {
      bodies.push_back(std::move(body));
      body.clear();
      in_body = 0;
    }
  }
  if (!body.empty()) bodies.push_back(std::move(body));
  return bodies;
}

// Posts every body once, from `connections` threads; returns the non-2xx answers.
int PostAll(const std::string& url, const std::vector<std::string>& bodies, int connections) {
  std::atomic<size_t> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      CURL* curl = curl_easy_init();
      std::string sink;
      curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
      curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
      curl_slist* headers = curl_slist_append(nullptr, "Content-Type:");
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
      for (size_t i = next++; i < bodies.size(); i = next++) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, bodies[i].data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(bodies[i].size()));
        long status = 0;
        if (curl_easy_perform(curl) == CURLE_OK) {
          curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        }
        if (status / 100 != 2) {
          if (failures++ < 3)
            std::fprintf(stderr, "POST %s: %ld %s\n", url.c_str(), status, sink.c_str());
        }
        sink.clear();
      }
      curl_slist_free_all(headers);
      curl_easy_cleanup(curl);
    });
  }
  for (std::thread& t : threads) t.join();
  return failures;
}

// Waits until the null receiver got no request for `quiet`.
void WaitQuiet(absl::Duration quiet, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  uint64_t last = null_requests;
  absl::Time changed = absl::Now();
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    const uint64_t now = null_requests;
    if (now != last) {
      last = now;
      changed = absl::Now();
    } else if (absl::Now() - changed >= quiet) {
      return;
    }
  }
}

int Run() {
  curl_global_init(CURL_GLOBAL_ALL);
  const int null_port = FreePort();
  MHD_Daemon* null_sink = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
                                           static_cast<uint16_t>(null_port), nullptr, nullptr,
                                           &NullAnswer, nullptr, MHD_OPTION_END);
  if (null_sink == nullptr) {
    std::fprintf(stderr, "cannot start the null receiver\n");
    return 1;
  }
  const std::string null_url = absl::StrCat("http://127.0.0.1:", null_port, "/api/v1/write");
  const std::string dir = absl::StrCat("/tmp/rwexport-bench-influx-", getpid());
  std::system(absl::StrCat("mkdir -p ", dir).c_str());
  // The bench's export configuration, its custom trend declared.
  v1::StartExportRequest request = MakeBenchExportRequest(null_url, 1);
  std::string apm = "[";
  for (const v1::MetricEntry& m : request.targets(0).metrics()) {
    absl::StrAppend(&apm, apm.size() > 1 ? "," : "", "{\"sourceMetric\":\"",
                    absl::StrReplaceAll(m.source_metric(), {{"\\", "\\\\"}, {"\"", "\\\""}}), "\"");
    if (!m.target_metric().empty())
      absl::StrAppend(&apm, ",\"targetMetric\":\"", m.target_metric(), "\"");
    if (m.keep_tags_size() > 0) {
      absl::StrAppend(&apm, ",\"keepTags\":[\"", absl::StrJoin(m.keep_tags(), "\",\""), "\"]");
    }
    absl::StrAppend(&apm, "}");
  }
  apm += "]";
  const std::string config_path = dir + "/apm.json";
  {
    std::ofstream config(config_path);
    config << "{\"apm\":[{\"provider\":\"prometheus\",\"remoteWriteURL\":\"" << null_url
           << "\",\"resampleRate\":1,\"metrics\":" << apm
           << "}],\"metricTypes\":{\"checkout_step_duration\":\"trend:time\"}}";
  }
  const int64_t samples = absl::GetFlag(FLAGS_samples);
  const std::vector<std::string> bodies = MakeBodies(samples, absl::GetFlag(FLAGS_lines_per_body));
  size_t bytes = 0;
  for (const std::string& b : bodies) bytes += b.size();
  std::printf("bodies: %zu x ~%d lines, %.1f MB; %d connections\n", bodies.size(),
              absl::GetFlag(FLAGS_lines_per_body), bytes / 1e6, absl::GetFlag(FLAGS_connections));
  std::vector<double> ratios;
  for (int rep = 0; rep < absl::GetFlag(FLAGS_reps); ++rep) {
    // rwexport
    const int rw_port = FreePort();
    const pid_t rw = Spawn(
        {absl::GetFlag(FLAGS_server_binary), "--listen=127.0.0.1:0",
         absl::StrCat("--influx_listen=127.0.0.1:", rw_port), "--influx_auto_export=" + config_path,
         "--influx_idle_stop=1s", absl::StrCat("--workers=", absl::GetFlag(FLAGS_server_workers)),
         "--log_level=warning"},
        dir + "/rwexport.log");
    const std::string rw_base = absl::StrCat("http://127.0.0.1:", rw_port);
    if (!WaitReady(rw_base + "/ping", 204)) {
      std::fprintf(stderr, "rwexport_server did not start; see %s/rwexport.log\n", dir.c_str());
      return 1;
    }
    double cpu0 = CpuSeconds(rw);
    absl::Time t0 = absl::Now();
    int failed = PostAll(rw_base + "/write?db=bench-run&precision=ns", bodies,
                         absl::GetFlag(FLAGS_connections));
    const absl::Duration rw_load = absl::Now() - t0;
    // Delivered: the auto-started export stops after 1 s without writes.
    for (int i = 0; i < 300; ++i) {
      if (Get(rw_base + "/query?q=SHOW+DATABASES").body.find("bench-run") == std::string::npos)
        break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    WaitQuiet(absl::Milliseconds(500), absl::Seconds(30));
    const double rw_cpu = CpuSeconds(rw) - cpu0;
    const uint64_t rw_rss_kb = PeakRssKb(rw);
    Stop(rw);
    if (failed > 0) std::fprintf(stderr, "rwexport: %d writes failed\n", failed);

    // vmagent
    const int vm_port = FreePort();
    const pid_t vm = Spawn(
        {absl::GetFlag(FLAGS_vmagent), absl::StrCat("-httpListenAddr=127.0.0.1:", vm_port),
         "-remoteWrite.url=" + null_url,
         absl::StrCat("-remoteWrite.tmpDataPath=", dir, "/vmagent-", rep), "-loggerLevel=ERROR"},
        dir + "/vmagent.log");
    const std::string vm_base = absl::StrCat("http://127.0.0.1:", vm_port);
    if (!WaitReady(vm_base + "/health", 200)) {
      std::fprintf(stderr, "vmagent did not start; see %s/vmagent.log\n", dir.c_str());
      return 1;
    }
    absl::SleepFor(absl::Seconds(1));
    cpu0 = CpuSeconds(vm);
    t0 = absl::Now();
    failed = PostAll(vm_base + "/write?db=bench-run&precision=ns", bodies,
                     absl::GetFlag(FLAGS_connections));
    const absl::Duration vm_load = absl::Now() - t0;
    WaitQuiet(absl::Seconds(2), absl::Seconds(60));
    const double vm_cpu = CpuSeconds(vm) - cpu0;
    const uint64_t vm_rss_kb = PeakRssKb(vm);
    Stop(vm);
    if (failed > 0) std::fprintf(stderr, "vmagent: %d writes failed\n", failed);

    const double per_m = 1e6 / static_cast<double>(samples);
    const double ratio = rw_cpu / vm_cpu;
    ratios.push_back(ratio);
    std::printf(
        "rep %d: rwexport %.3f CPU s / M samples, peak RSS %llu kB (load %.2f s, %.2fM "
        "samples/s) | vmagent %.3f CPU s / M samples, peak RSS %llu kB (load %.2f s, %.2fM "
        "samples/s) | ratio %.3f\n",
        rep + 1, rw_cpu * per_m, static_cast<unsigned long long>(rw_rss_kb),
        absl::ToDoubleSeconds(rw_load), samples / absl::ToDoubleSeconds(rw_load) / 1e6,
        vm_cpu * per_m, static_cast<unsigned long long>(vm_rss_kb), absl::ToDoubleSeconds(vm_load),
        samples / absl::ToDoubleSeconds(vm_load) / 1e6, ratio);
    std::fflush(stdout);
  }
  std::sort(ratios.begin(), ratios.end());
  std::printf("ratio rwexport / vmagent CPU per sample: min %.3f, median %.3f, max %.3f\n",
              ratios.front(), ratios[ratios.size() / 2], ratios.back());
  MHD_stop_daemon(null_sink);
  std::system(absl::StrCat("rm -rf ", dir).c_str());
  return 0;
}

}  // namespace
}  // namespace rwexport

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return rwexport::Run();
}
