#include "lib/common/crash_point.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace rwexport {
namespace {

// The armed point's name; set once before threads start, never freed.
std::atomic<const std::string*> armed{nullptr};

}  // namespace

void ArmCrashPointFromEnvironment() {
  const char* name = std::getenv("RWEXPORT_CRASH_AT");
  if (name == nullptr || *name == '\0') return;
  armed.store(new std::string(name));
  std::fprintf(stderr, "RWEXPORT_CRASH_AT=%s: this process kills itself there (a test hook)\n",
               name);
}

void CrashPoint(absl::string_view name) {
  const std::string* point = armed.load(std::memory_order_relaxed);
  if (point == nullptr || *point != name) return;
  std::fprintf(stderr, "crash point %s reached: SIGKILL\n", point->c_str());
  std::fflush(stderr);
  std::raise(SIGKILL);
}

}  // namespace rwexport
