// Which malloc this process runs on, how much heap it has in use, and giving free memory back
// to the system. The serving binaries link Debian's jemalloc (//lib/common:jemalloc); tests
// run on glibc's malloc; tcmalloc (libtcmalloc-minimal4 / libgoogle-perftools4) may be
// LD_PRELOADed. Each is recognised at run time by the symbols it exports (mallctl,
// MallocExtension_GetNumericProperty), a preloaded one first.
//
// Thread-safety: every function here may be called from any thread.
#ifndef RWEXPORT_LIB_COMMON_ALLOCATOR_H_
#define RWEXPORT_LIB_COMMON_ALLOCATOR_H_

#include <cstdint>
#include <string>

namespace rwexport {

enum class Allocator { kGlibc, kJemalloc, kTcmalloc };

// The allocator that serves malloc in this process.
Allocator CurrentAllocator();

// "glibc", "jemalloc", "tcmalloc".
const char* AllocatorName(Allocator allocator);

// The allocator and how it came in, for reports: "glibc malloc", "jemalloc (LD_PRELOAD)",
// "tcmalloc (linked)".
std::string AllocatorDescription();

// Bytes malloc'd and not freed, as the allocator counts them (glibc: mallinfo2's uordblks +
// hblkhd; jemalloc: stats.allocated; tcmalloc: generic.current_allocated_bytes). 0 in a
// sanitizer build, whose malloc none of them sees.
uint64_t HeapInUseBytes();

// Bytes of physical memory the allocator holds (jemalloc: stats.resident: in-use pages, its own
// metadata, and dirty pages not yet purged) and of that its metadata (stats.metadata); 0 for
// glibc and tcmalloc.
struct AllocatorResidency {
  uint64_t resident = 0;
  uint64_t metadata = 0;
};
AllocatorResidency CurrentAllocatorResidency();

// Hands free memory back to the system: glibc malloc_trim(0) (every arena), jemalloc purges
// every arena, tcmalloc ReleaseFreeMemory. Costs a walk over the free lists: call it after a
// large release (an export stopped), not on a hot path. A jemalloc process started with
// MALLOC_CONF=prof:true also dumps a heap profile then (what stays allocated).
void ReleaseFreeMemory();

// Returns the calling thread's cached free blocks to the allocator (jemalloc
// thread.tcache.flush), so that a later ReleaseFreeMemory can give their pages back; nothing
// for glibc and tcmalloc. For a thread that has just freed a large structure it will not
// allocate again soon (a stream ended, an export stopped).
void FlushThreadCache();

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_ALLOCATOR_H_
