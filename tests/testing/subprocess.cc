#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace rwexport {

std::string RunfilePath(absl::string_view path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/",
                      workspace != nullptr ? workspace : "rwexport", "/", path);
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::string& binary, const std::vector<std::string>& args) {
  // Everything the child needs is prepared before fork.
  std::vector<std::string> argv_strings = {binary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  static constexpr char kExecFailed[] = "exec failed\n";

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return absl::InternalError("pipe2 failed");
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(null_fd, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execv(argv[0], argv.data());
    ssize_t ignored = ::write(2, kExecFailed, sizeof(kExecFailed) - 1);
    (void)ignored;
    ::_exit(127);
  }
  ::close(null_fd);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return absl::InternalError(absl::StrCat("fork failed: ", std::strerror(errno)));
  }
  return std::unique_ptr<Subprocess>(new Subprocess(pid, out_pipe[0], err_pipe[0]));
}

Subprocess::Subprocess(pid_t pid, int out_fd, int err_fd) : pid_(pid) {
  reader_ = std::thread([this, out_fd, err_fd] { ReadLoop(out_fd, err_fd); });
}

Subprocess::~Subprocess() {
  Kill(SIGKILL);
  reader_.join();
}

void Subprocess::ReadLoop(int out_fd, int err_fd) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open_fds = 2;
  char buffer[4096];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      MutexLock lock(&mu_);
      if (n > 0) {
        (i == 0 ? out_ : err_).append(buffer, n);
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        if (i == 1) err_closed_ = true;
      }
      cv_.SignalAll();
    }
  }
  for (const pollfd& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  MutexLock lock(&mu_);
  exited_ = true;
  err_closed_ = true;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  cv_.SignalAll();
}

void Subprocess::Kill(int signal) {
  MutexLock lock(&mu_);
  // Not reaped yet, so the pid cannot have been reused.
  if (!exited_) ::kill(pid_, signal);
}

bool Subprocess::WaitForStderr(absl::string_view text, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (!absl::StrContains(err_, text)) {
    const absl::Time now = absl::Now();
    if (err_closed_ || now >= deadline) return false;
    cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(deadline - now));
  }
  return true;
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  {
    MutexLock lock(&mu_);
    while (!exited_) {
      const absl::Time now = absl::Now();
      if (now >= deadline) break;
      cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(deadline - now));
    }
    if (exited_) return exit_code_;
  }
  Kill(SIGKILL);
  return absl::DeadlineExceededError(
      absl::StrCat("pid ", pid_, " still ran after ", absl::FormatDuration(timeout), "; killed"));
}

std::string Subprocess::stdout_text() const {
  MutexLock lock(&mu_);
  return out_;
}

std::string Subprocess::stderr_text() const {
  MutexLock lock(&mu_);
  return err_;
}

absl::StatusOr<ProcessResult> RunProcess(const std::string& binary,
                                         const std::vector<std::string>& args,
                                         absl::Duration timeout) {
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(binary, args);
  if (!process.ok()) return process.status();
  absl::StatusOr<int> code = (*process)->Wait(timeout);
  if (!code.ok()) {
    return absl::Status(code.status().code(),
                        absl::StrCat(binary, ": ", code.status().message(),
                                     "; stderr so far: ", (*process)->stderr_text()));
  }
  ProcessResult result;
  result.exit_code = *code;
  // The reader has seen both pipes end before the exit was recorded.
  result.out = (*process)->stdout_text();
  result.err = (*process)->stderr_text();
  return result;
}

}  // namespace rwexport
