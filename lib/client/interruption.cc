#include "lib/client/interruption.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/time/clock.h"

namespace rwexport {
namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

bool WaitReadable(int fd, absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  for (;;) {
    int timeout_ms = -1;
    if (until != absl::InfiniteFuture()) {
      const absl::Duration left =
          absl::Ceil(std::max(until - absl::Now(), absl::ZeroDuration()), absl::Milliseconds(1));
      timeout_ms = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left), 1 << 30));
    }
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, fd < 0 ? 0 : 1, timeout_ms);
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

Interruption& Interruption::Install() {
  static Interruption* const instance = [] {
    auto* interruption = new Interruption();
    const sigset_t set = StopSignals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      interruption->read_fd_ = fds[0];
      interruption->write_fd_ = fds[1];
    }
    std::thread([interruption] { interruption->Run(); }).detach();
    return interruption;
  }();
  return *instance;
}

void Interruption::Run() {
  const sigset_t set = StopSignals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    int expected = 0;
    if (!signal_.compare_exchange_strong(expected, sig)) {
      std::fprintf(stderr, "\nrwexport: %s again: exiting now\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
      std::_Exit(128 + sig);
    }
    std::fprintf(stderr, "\nrwexport: %s: stopping (again to exit at once)\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (write_fd_ >= 0) {
      const char byte = 1;
      while (::write(write_fd_, &byte, 1) < 0 && errno == EINTR) {
      }
    }
  }
}

bool Interruption::SleepFor(absl::Duration duration) const {
  if (requested()) return false;
  return !WaitReadable(read_fd_, duration);
}

}  // namespace rwexport
