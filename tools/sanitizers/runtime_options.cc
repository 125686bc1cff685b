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

// `leak:` entries for frames of Debian libraries that keep process-lifetime allocations on
// purpose. None is needed today: every test passes with leak checking on.
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

// `race:` entries for frames inside Debian's uninstrumented libraries, should a report ever
// come from their internals. None is needed today: the tests of the first TSan pass
// (scripts/check.sh: aggregation, worker pool, exports, sender over libcurl, mutex) report
// nothing from libcurl or Abseil, and the tests that run gRPC are checked with
// tools/sanitizers/tsan_grpc_tests.supp instead (see there why).
RWEXPORT_SANITIZER_HOOK const char* __tsan_default_suppressions() { return ""; }
#endif
