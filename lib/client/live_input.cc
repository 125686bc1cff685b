#include "lib/client/live_input.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/client/interruption.h"

namespace rwexport {
namespace {

// A followed file is looked at this often even without an inotify event (a file system
// without inotify support, a change the watch missed).
constexpr absl::Duration kFollowRecheck = absl::Milliseconds(500);
// How often Open looks for a followed file that does not exist yet.
constexpr absl::Duration kAppearRecheck = absl::Milliseconds(100);

int PollTimeoutMs(absl::Time until) {
  if (until == absl::InfiniteFuture()) return -1;
  const absl::Duration left = until - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 1 << 30));
}

bool Readable(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LiveInput>> LiveInput::Open(const std::string& path,
                                                           LiveInputOptions options) {
  int fd = 0;
  if (path != "-") {
    const absl::Time give_up = options.idle_timeout > absl::ZeroDuration()
                                   ? absl::Now() + options.idle_timeout
                                   : absl::InfiniteFuture();
    bool announced = false;
    for (;;) {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) break;
      const int err = errno;
      if (err != ENOENT) return absl::ErrnoToStatus(err, "opening k6 results file " + path);
      if (!options.follow || absl::Now() >= give_up || Readable(options.stop_fd)) {
        return absl::NotFoundError("k6 results file not found: " + path);
      }
      if (!announced && options.on_notice) {
        options.on_notice(absl::StrCat("waiting for ", path, " to appear"));
      }
      announced = true;
      WaitReadable(options.stop_fd, std::min(kAppearRecheck, give_up - absl::Now()));
    }
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    if (fd != 0) ::close(fd);
    return absl::ErrnoToStatus(err, "reading " + path);
  }
  if (S_ISDIR(st.st_mode)) {
    if (fd != 0) ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is a directory, not a k6 results file"));
  }
  return std::unique_ptr<LiveInput>(
      new LiveInput(fd, path, std::move(options), S_ISREG(st.st_mode)));
}

LiveInput::LiveInput(int fd, std::string path, LiveInputOptions options, bool regular)
    : fd_(fd),
      path_(std::move(path)),
      name_(path_ == "-" ? "standard input" : path_),
      options_(std::move(options)),
      regular_(regular),
      follow_(options_.follow),
      on_wait_(options_.on_wait),
      last_bytes_(absl::Now()) {
  if (regular_ && follow_ && path_ != "-") {
    inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ >= 0 && ::inotify_add_watch(inotify_fd_, path_.c_str(),
                                                IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE |
                                                    IN_MOVE_SELF | IN_DELETE_SELF) < 0) {
      ::close(inotify_fd_);
      inotify_fd_ = -1;
    }
  }
}

LiveInput::~LiveInput() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (fd_ != 0) ::close(fd_);
}

bool LiveInput::Rewind() {
  if (!regular_ || follow_ || ::lseek(fd_, 0, SEEK_SET) != 0) return false;
  offset_ = 0;
  end_ = End::kNone;
  return true;
}

bool LiveInput::StopRequested() {
  if (!stopped_ && Readable(options_.stop_fd)) stopped_ = true;
  return stopped_;
}

void LiveInput::Wait(absl::Time until) {
  pollfd fds[2];
  int n = 0;
  const int watched = regular_ ? inotify_fd_ : fd_;
  if (watched >= 0) fds[n++] = pollfd{watched, POLLIN, 0};
  if (options_.stop_fd >= 0) fds[n++] = pollfd{options_.stop_fd, POLLIN, 0};
  if (regular_) until = std::min(until, absl::Now() + kFollowRecheck);
  if (::poll(fds, n, PollTimeoutMs(until)) > 0 && regular_ && inotify_fd_ >= 0) {
    char events[4096];
    while (::read(inotify_fd_, events, sizeof(events)) > 0) {
    }
  }
}

absl::StatusOr<size_t> LiveInput::Read(char* dst, size_t n) {
  absl::Time call_back_at = absl::InfinitePast();  // on_wait is due
  for (;;) {
    if (StopRequested()) {
      end_ = End::kStopped;
      return 0;
    }
    // A pipe is read only once poll says so, so that waiting can be interleaved with on_wait.
    if (regular_ || Readable(fd_)) {
      const ssize_t got = ::read(fd_, dst, n);
      if (got < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return absl::ErrnoToStatus(errno, absl::StrCat("reading ", name_));
      }
      if (got > 0) {
        offset_ += got;
        last_bytes_ = absl::Now();
        return static_cast<size_t>(got);
      }
      if (!regular_ || !follow_) {
        end_ = End::kEndOfInput;
        return 0;
      }
      struct stat st;
      if (::fstat(fd_, &st) == 0 && st.st_size < offset_) {
        if (options_.on_notice) {
          options_.on_notice(absl::StrCat(name_, " was truncated; reading it from its start"));
        }
        ::lseek(fd_, 0, SEEK_SET);
        offset_ = 0;
        continue;
      }
    }
    const absl::Time now = absl::Now();
    absl::Time until = absl::InfiniteFuture();
    if (follow_ && options_.idle_timeout > absl::ZeroDuration()) {
      until = last_bytes_ + options_.idle_timeout;
      if (now >= until) {
        end_ = End::kIdleTimeout;
        return 0;
      }
    }
    if (on_wait_ && now >= call_back_at) call_back_at = on_wait_();
    Wait(std::min(until, call_back_at));
  }
}

}  // namespace rwexport
