// Default options and suppressions of the sanitizer runtimes, compiled into every binary of a
// sanitizer build (see BUILD.bazel). The runtimes call these hooks at start-up; options given
// in the environment (ASAN_OPTIONS, TSAN_OPTIONS, ...) still override the defaults here.
//
// Suppressions are kept to frames of Debian's libraries, which are not built with the
// sanitizers: TSan cannot see their synchronisation and LSan cannot tell their process-lifetime
// caches from leaks. Nothing here may name a frame of our own code: a report there is a bug to
// fix, not to suppress.

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#define RWEXPORT_SANITIZER_HOOK extern "C" __attribute__((visibility("default"), used))

#if __has_feature(address_sanitizer)
RWEXPORT_SANITIZER_HOOK const char* __asan_default_options() {
  return "detect_leaks=1:check_initialization_order=1:strict_string_checks=1:"
         "detect_stack_use_after_return=1:print_suppressions=0";
}

// Each entry names a frame of a Debian library that allocates process-lifetime state on
// purpose, for a leak report whose allocation stack holds it.
RWEXPORT_SANITIZER_HOOK const char* __lsan_default_suppressions() { return ""; }
#endif

// UBSan has no __has_feature test in clang 14; this file is only linked into sanitizer builds,
// and the hook is inert in a build without UBSan.
RWEXPORT_SANITIZER_HOOK const char* __ubsan_default_options() {
  return "print_stacktrace=1:halt_on_error=1:report_error_type=1";
}

#if __has_feature(thread_sanitizer)
RWEXPORT_SANITIZER_HOOK const char* __tsan_default_options() {
  return "halt_on_error=1:second_deadlock_stack=1:print_suppressions=0";
}

// Debian's gRPC, protobuf and libcurl are not built with TSan: TSan never sees their own
// synchronisation (absl::Mutex, atomics), only the allocations and copies they make through
// intercepted functions (malloc, memcpy, free), so memory they hand from one thread to another
// looks raced. `called_from_lib:` makes TSan ignore the memory accesses of the intercepted
// calls made by those libraries themselves (their synchronisation calls still count); accesses
// made by our own code are checked as before, whichever thread runs it. Each entry must match
// exactly one loaded library.
// `race:` entries name frames of those libraries' internals (their header code is compiled into
// our binaries, hence instrumented) whose ordering comes from inside the library. None names
// a frame of our code: a report there is a bug to fix, not to suppress.
RWEXPORT_SANITIZER_HOOK const char* __tsan_default_suppressions() {
  return "called_from_lib:libgrpc.so\n"
         "called_from_lib:libgrpc++.so\n"
         "called_from_lib:libgrpc++_reflection.so\n"
         "called_from_lib:libgpr.so\n"
         "called_from_lib:libupb.so\n"
         "called_from_lib:libprotobuf.so\n"
         "called_from_lib:libcurl.so\n"
         // gRPC's event engine passes its epoll fd to its poller thread through atomics:
         // epoll_create1 (main thread) vs epoll_wait (event_engine thread).
         "race:grpc_event_engine::posix_engine::Epoll1Poller\n";
}
#endif
