// jemalloc's settings for the binaries that link it (//lib/common:jemalloc); MALLOC_CONF in
// the environment still overrides them.
//
// oversize_threshold:0 keeps large allocations in the ordinary arenas. By default jemalloc
// serves every allocation of 8 MiB or more from a dedicated arena that gives its pages back
// as soon as they are freed, so a window flush of 100k trend series (800k points: ~50 MB of
// SeriesPoints, built anew every window) page-faulted all of it in again each time: 2.6x the
// CPU of the flush (BENCHMARKS.md, section 3). In the ordinary arenas freed pages are reused
// and decay back to the system within 10 s (dirty_decay_ms), and the purge after StopExport
// (ReleaseFreeMemory) still returns them at once.
extern "C" {
// NOLINTNEXTLINE: the name jemalloc looks for.
const char* malloc_conf = "oversize_threshold:0";
}
