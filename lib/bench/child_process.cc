#include "lib/bench/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "lib/common/allocator.h"

extern char** environ;

namespace rwexport {
namespace {

constexpr absl::Duration kChildTimeout = absl::Seconds(30);

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::vector<std::string>& argv) {
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
    return absl::InternalError(
        absl::StrCat("bench server: unexpected first line \"", *line, "\" (expected \"port N\")"));
  }
  return child;
}

ChildProcess::~ChildProcess() {
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

absl::StatusOr<ProcessUsage> ChildProcess::Usage() {
  static constexpr char kRequest[] = "usage\n";
  if (write(to_child_, kRequest, sizeof(kRequest) - 1) != sizeof(kRequest) - 1) {
    return Errno("bench server: write");
  }
  absl::StatusOr<std::string> line = ReadLine();
  if (!line.ok()) return line.status();
  std::vector<absl::string_view> parts = absl::StrSplit(*line, ' ');
  ProcessUsage usage;
  if (parts.size() != 10 || parts[0] != "usage" ||
      !absl::SimpleAtod(parts[1], &usage.cpu_seconds) ||
      !absl::SimpleAtoi(parts[2], &usage.peak_rss_kb) ||
      !absl::SimpleAtoi(parts[3], &usage.rss_kb) ||
      !absl::SimpleAtoi(parts[4], &usage.heap_in_use_kb) ||
      !absl::SimpleAtoi(parts[5], &usage.rss_anon_kb) ||
      !absl::SimpleAtoi(parts[6], &usage.rss_file_kb) ||
      !absl::SimpleAtoi(parts[7], &usage.threads) ||
      !absl::SimpleAtoi(parts[8], &usage.allocator_resident_kb) ||
      !absl::SimpleAtoi(parts[9], &usage.allocator_metadata_kb)) {
    return absl::InternalError(absl::StrCat("bench server: unexpected answer \"", *line, "\""));
  }
  return usage;
}

absl::StatusOr<std::string> ChildProcess::ReadLine() {
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

ProcessUsage CurrentProcessUsage() {
  ProcessUsage usage;
  rusage ru = {};
  getrusage(RUSAGE_SELF, &ru);
  usage.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                      static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  usage.peak_rss_kb = static_cast<uint64_t>(ru.ru_maxrss);
  usage.heap_in_use_kb = HeapInUseBytes() / 1024;
  const AllocatorResidency residency = CurrentAllocatorResidency();
  usage.allocator_resident_kb = residency.resident / 1024;
  usage.allocator_metadata_kb = residency.metadata / 1024;
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    uint64_t* field = absl::ConsumePrefix(&rest, "VmHWM:")     ? &usage.peak_rss_kb
                      : absl::ConsumePrefix(&rest, "VmRSS:")   ? &usage.rss_kb
                      : absl::ConsumePrefix(&rest, "RssAnon:") ? &usage.rss_anon_kb
                      : absl::ConsumePrefix(&rest, "RssFile:") ? &usage.rss_file_kb
                      : absl::ConsumePrefix(&rest, "Threads:") ? &usage.threads
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

absl::Status ServeBenchChild(int port) {
  std::printf("port %d\n", port);
  std::fflush(stdout);
  char line[256];
  while (std::fgets(line, sizeof(line), stdin) != nullptr) {
    if (absl::StripAsciiWhitespace(line) != "usage") continue;
    const ProcessUsage usage = CurrentProcessUsage();
    std::printf("usage %.6f %llu %llu %llu %llu %llu %llu %llu %llu\n", usage.cpu_seconds,
                static_cast<unsigned long long>(usage.peak_rss_kb),
                static_cast<unsigned long long>(usage.rss_kb),
                static_cast<unsigned long long>(usage.heap_in_use_kb),
                static_cast<unsigned long long>(usage.rss_anon_kb),
                static_cast<unsigned long long>(usage.rss_file_kb),
                static_cast<unsigned long long>(usage.threads),
                static_cast<unsigned long long>(usage.allocator_resident_kb),
                static_cast<unsigned long long>(usage.allocator_metadata_kb));
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

}  // namespace rwexport
