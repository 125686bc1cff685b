#include "lib/client/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace rwexport {

bool ProgressLine::Enabled() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDERR_FILENO) == 1 && (term == nullptr || std::strcmp(term, "dumb") != 0);
}

ProgressLine::ProgressLine(std::function<std::string()> text) : text_(std::move(text)) {
  if (Enabled()) thread_ = std::thread([this] { Run(); });
}

ProgressLine::~ProgressLine() {
  if (!thread_.joinable()) return;
  {
    MutexLock lock(&mu_);
    done_ = true;
  }
  cv_.SignalAll();
  thread_.join();
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
}

void ProgressLine::Run() {
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (!done_) cv_.WaitFor(&mu_, std::chrono::milliseconds(500));
      if (done_) return;
    }
    // \033[K clears what a longer previous line left.
    std::fprintf(stderr, "\r%s\033[K", text_().c_str());
    std::fflush(stderr);
  }
}

std::string ProgressText(int64_t samples, absl::Duration elapsed, int64_t points_sent) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  std::string text = absl::StrFormat("read %d samples (%.0f/s)", samples,
                                     seconds > 0 ? static_cast<double>(samples) / seconds : 0.0);
  if (points_sent >= 0) absl::StrAppend(&text, ", points sent ", points_sent);
  return text;
}

}  // namespace rwexport
