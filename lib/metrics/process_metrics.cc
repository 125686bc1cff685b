#include "lib/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "lib/common/build_info.h"

namespace rwexport {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;

MetricFamily Gauge(std::string name, std::string help, double value,
                   prometheus::MetricType type = prometheus::MetricType::Gauge) {
  ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return MetricFamily{std::move(name), std::move(help), type, {m}};
}

// Seconds since the epoch at which the system booted (`btime` of /proc/stat).
double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) {
      double btime = 0;
      if (absl::SimpleAtod(line.substr(6), &btime)) return btime;
    }
  }
  return 0;
}

}  // namespace

absl::StatusOr<ProcessFigures> ReadProcessFigures() {
  std::ifstream in("/proc/self/stat");
  std::stringstream text;
  text << in.rdbuf();
  const std::string stat = text.str();
  // The command name (field 2) is in parentheses and may hold spaces: fields count from after
  // its closing parenthesis, which is field 3 (state).
  const size_t paren = stat.rfind(')');
  if (!in || paren == std::string::npos) {
    return absl::UnavailableError("cannot read /proc/self/stat");
  }
  const std::vector<std::string> fields =
      absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3; utime 14, stime 15, starttime 22, vsize 23, rss 24.
  auto field = [&fields](size_t n) {
    double value = 0;
    if (n - 3 < fields.size()) (void)absl::SimpleAtod(fields[n - 3], &value);
    return value;
  };
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  ProcessFigures figures;
  figures.cpu_seconds = (field(14) + field(15)) / ticks;
  figures.start_time_seconds = BootTimeSeconds() + field(22) / ticks;
  figures.virtual_bytes = field(23);
  figures.resident_bytes = field(24) * static_cast<double>(sysconf(_SC_PAGESIZE));
  if (DIR* dir = opendir("/proc/self/fd")) {
    int count = 0;
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
    figures.open_fds = count - 1;  // not the directory this count held open
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    figures.max_fds = static_cast<double>(limit.rlim_cur);
  }
  return figures;
}

std::vector<MetricFamily> ProcessCollector::Collect() const {
  std::vector<MetricFamily> out;
  const BuildInfo& build = GetBuildInfo();
  MetricFamily info =
      Gauge("rwexport_build_info", "1, labelled with the version, git revision and build date.", 1);
  info.metric[0].label = {
      {"version", build.version}, {"revision", build.revision}, {"build_date", build.build_date}};
  out.push_back(std::move(info));
  absl::StatusOr<ProcessFigures> figures = ReadProcessFigures();
  if (!figures.ok()) return out;
  out.push_back(Gauge("process_cpu_seconds_total",
                      "Total user and system CPU time spent in seconds.", figures->cpu_seconds,
                      prometheus::MetricType::Counter));
  out.push_back(Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                      figures->resident_bytes));
  out.push_back(Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                      figures->virtual_bytes));
  out.push_back(Gauge("process_open_fds", "Number of open file descriptors.", figures->open_fds));
  out.push_back(
      Gauge("process_max_fds", "Maximum number of open file descriptors.", figures->max_fds));
  out.push_back(Gauge("process_start_time_seconds",
                      "Start time of the process since unix epoch in seconds.",
                      figures->start_time_seconds));
  return out;
}

}  // namespace rwexport
