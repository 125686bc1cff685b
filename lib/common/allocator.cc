#include "lib/common/allocator.h"

#include <dlfcn.h>
#include <malloc.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

// jemalloc's and gperftools' C entry points, looked up at run time so that the program needs
// neither library to build or run.
using MallctlFn = int (*)(const char*, void*, size_t*, void*, size_t);
using TcPropertyFn = int (*)(const char*, size_t*);
using TcReleaseFn = void (*)();

MallctlFn Mallctl() {
  static const MallctlFn fn = reinterpret_cast<MallctlFn>(dlsym(RTLD_DEFAULT, "mallctl"));
  return fn;
}

TcPropertyFn TcProperty() {
  static const TcPropertyFn fn =
      reinterpret_cast<TcPropertyFn>(dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty"));
  return fn;
}

// Whether LD_PRELOAD names a library whose name contains `name`.
bool Preloaded(const char* name) {
  const char* preload = std::getenv("LD_PRELOAD");
  return preload != nullptr && std::strstr(preload, name) != nullptr;
}

}  // namespace

Allocator CurrentAllocator() {
  // A preloaded allocator serves malloc even when another one is linked.
  if (Preloaded("tcmalloc") && TcProperty() != nullptr) return Allocator::kTcmalloc;
  if (Mallctl() != nullptr) return Allocator::kJemalloc;
  if (TcProperty() != nullptr) return Allocator::kTcmalloc;
  return Allocator::kGlibc;
}

const char* AllocatorName(Allocator allocator) {
  switch (allocator) {
    case Allocator::kJemalloc:
      return "jemalloc";
    case Allocator::kTcmalloc:
      return "tcmalloc";
    case Allocator::kGlibc:
      break;
  }
  return "glibc";
}

std::string AllocatorDescription() {
  const Allocator allocator = CurrentAllocator();
  if (allocator == Allocator::kGlibc) return "glibc malloc";
  return absl::StrCat(AllocatorName(allocator),
                      Preloaded(AllocatorName(allocator)) ? " (LD_PRELOAD)" : " (linked)");
}

uint64_t HeapInUseBytes() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return 0;  // the sanitizer's malloc serves every block; glibc's counts would be wrong
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return 0;
#endif
#endif
  switch (CurrentAllocator()) {
    case Allocator::kJemalloc: {
      // stats.* are refreshed when the epoch is written.
      uint64_t epoch = 1;
      size_t size = sizeof(epoch);
      Mallctl()("epoch", &epoch, &size, &epoch, sizeof(epoch));
      size_t allocated = 0;
      size = sizeof(allocated);
      if (Mallctl()("stats.allocated", &allocated, &size, nullptr, 0) != 0) return 0;
      return allocated;
    }
    case Allocator::kTcmalloc: {
      size_t allocated = 0;
      if (TcProperty()("generic.current_allocated_bytes", &allocated) == 0) return 0;
      return allocated;
    }
    case Allocator::kGlibc:
      break;
  }
  const struct mallinfo2 heap = mallinfo2();
  return heap.uordblks + heap.hblkhd;
}

AllocatorResidency CurrentAllocatorResidency() {
  AllocatorResidency out;
  if (CurrentAllocator() != Allocator::kJemalloc) return out;
  uint64_t epoch = 1;
  size_t size = sizeof(epoch);
  Mallctl()("epoch", &epoch, &size, &epoch, sizeof(epoch));
  size_t value = 0;
  size = sizeof(value);
  if (Mallctl()("stats.resident", &value, &size, nullptr, 0) == 0) out.resident = value;
  size = sizeof(value);
  if (Mallctl()("stats.metadata", &value, &size, nullptr, 0) == 0) out.metadata = value;
  return out;
}

void FlushThreadCache() {
  if (CurrentAllocator() != Allocator::kJemalloc) return;
  Mallctl()("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
}

void ReleaseFreeMemory() {
  switch (CurrentAllocator()) {
    case Allocator::kJemalloc: {
      // MALLCTL_ARENAS_ALL is 4096 in jemalloc 5.
      Mallctl()("arena.4096.purge", nullptr, nullptr, nullptr, 0);
      // With MALLOC_CONF=prof:true (Debian's jemalloc is built with profiling): what is still
      // allocated now, as a heap profile file for jeprof (opt.prof_prefix, default "jeprof").
      bool prof = false;
      size_t size = sizeof(prof);
      if (Mallctl()("opt.prof", &prof, &size, nullptr, 0) == 0 && prof) {
        Mallctl()("prof.dump", nullptr, nullptr, nullptr, 0);
      }
      return;
    }
    case Allocator::kTcmalloc: {
      static const TcReleaseFn release =
          reinterpret_cast<TcReleaseFn>(dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"));
      if (release != nullptr) release();
      return;
    }
    case Allocator::kGlibc:
      break;
  }
  malloc_trim(0);
}

}  // namespace rwexport
