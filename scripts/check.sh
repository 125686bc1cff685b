#!/usr/bin/env bash
# The checkers (README, "Checkers"), run by scripts/test.sh after the normal tests:
#   1. every test under ASan + UBSan (LSan on)          bazel test --config=asan <every package>
#   2. the threaded code's tests under ThreadSanitizer   bazel test --config=tsan <TSAN_PACKAGES>
#      (and the gRPC tests, races excepted: see TSAN_GRPC_PACKAGES)
#   3. each libFuzzer target of tests/fuzz/ for a bounded time on its seed corpus
# Sanitizer builds use clang, so they run in an output base of their own (a second Bazel
# server), never in the default g++ one. Fails if any step finds anything; prints a summary.
#
# Environment: RWEXPORT_SAN_OUTPUT_BASE (default /root/.cache/rwexport-san),
# RWEXPORT_FUZZ_SECONDS (per target, default 12), RWEXPORT_FUZZ_RUNS (per target, default
# 1000000), RWEXPORT_CHECKS (comma-separated subset of asan,tsan,fuzz; default all).
# Arguments are passed to every `bazel test`/`bazel build`, e.g. --config=... or --jobs=1.
set -uo pipefail
cd "$(dirname "$0")/.."

output_base="${RWEXPORT_SAN_OUTPUT_BASE:-/root/.cache/rwexport-san}"
fuzz_seconds="${RWEXPORT_FUZZ_SECONDS:-12}"
fuzz_runs="${RWEXPORT_FUZZ_RUNS:-1000000}"
checks=",${RWEXPORT_CHECKS:-asan,tsan,fuzz},"
san_bazel=(bazel "--output_base=${output_base}")

# ThreadSanitizer, first pass: the test packages of our threaded code that does not run gRPC
# (aggregation workers, worker pool, exports and their ticker, the sender thread over libcurl,
# the write-ahead log's writer thread,
# mutex), plus the batch fuzzer's corpus replay (an aggregator on a worker pool) and the bench's
# null receiver. Every data race is a finding. A package not (yet) in the tree is skipped with a
# note.
TSAN_PACKAGES=(aggregate ingest common remote_write export durable)
TSAN_EXTRA=(//tests/fuzz:batch_fuzz_corpus_test //tests/bench:null_receiver_test)
# Second pass: the tests that run rwexport's gRPC server or client (end_to_end, status, delivery,
# limits, TLS, CLI, server binary, ...). Debian's gRPC is not built with TSan, so every handoff
# of a call between its threads looks like a race; data races are suppressed there
# (tools/sanitizers/tsan_grpc_tests.supp says why and what is still checked: lock-order
# inversions, mutex misuse, signal-unsafe calls, thread leaks).
TSAN_GRPC_PACKAGES=(integration client server metrics bench)

# Fuzz targets: tests/fuzz/<name>.cc, seeds in tests/fuzz/corpus/<name>/.
FUZZ_TARGETS=(config_fuzz selector_fuzz k6_json_fuzz k6_csv_fuzz batch_fuzz line_protocol_fuzz
  wal_recovery_fuzz)

work="$(mktemp -d "${TMPDIR:-/tmp}/rwexport-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
results=()
failures=0
script_start=$SECONDS

banner() { printf '\n==== check: %s\n' "$*"; }
record() {  # record NAME STATUS(0=ok) SECONDS DETAIL
  local verdict=PASSED
  if [ "$2" -ne 0 ]; then
    verdict=FAILED
    failures=$((failures + 1))
  fi
  results+=("$(printf '%-28s %s in %ss%s' "$1" "$verdict" "$3" "${4:+ ($4)}")")
}
# What failed, from a Bazel log: build errors, and each failing test's output (where the
# sanitizer report is; .bazelrc sets --test_output=errors), at most 300 lines per test.
failure_details() {
  grep -E -A 12 '^ERROR: .*(failed|error)' "$1" | head -n 200
  awk '/^=+ Test output for /{on=1; n=0} on && n++ < 300 {print} /^=+$/{on=0}' "$1" | cut -c 1-1000
}
# Bazel's per-target result lines and its error lines, from a log.
bazel_summary() {
  grep -E '^//[^ ]+ +(\(cached\) )?(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|FAILED TO BUILD)|^(ERROR|FAILED):|Executed [0-9]+ out of' "$1" || true
}

# Every package of ours, named explicitly rather than //...: a second output base does not
# recognise the first one's convenience symlinks (bazel-<checkout dir>) and would walk into
# them, and their name depends on where the repository was cloned.
ALL_PACKAGES=(//lib/... //server/... //client/... //tests/... //tools/...)
# Tests tagged "long" (process-level acceptance runs of minutes: the bench, the fleet, the
# kill -9 test) run in the normal `bazel test //...` only; under the sanitizers they would cost
# several times that for code the other binary tests already cover.
SAN_TEST_FILTER=(--test_tag_filters=-long)

if [[ $checks == *,asan,* ]]; then
  banner "ASan + UBSan + LSan: bazel test --config=asan ${ALL_PACKAGES[*]}"
  start=$SECONDS
  status=0
  # --keep_going: a file that does not build with clang must not hide the other findings.
  # --build_tests_only: the tests that run and what they need; not the benchmarks and the
  # "long" tests, which never run here (the normal g++ build compiles them).
  "${san_bazel[@]}" test --config=asan --keep_going --build_tests_only "${SAN_TEST_FILTER[@]}" "${ALL_PACKAGES[@]}" "$@" \
    > "$work/asan.log" 2>&1 || status=$?
  [ "$status" -eq 0 ] || failure_details "$work/asan.log"
  bazel_summary "$work/asan.log"
  record "asan+ubsan (all tests)" "$status" $((SECONDS - start))
fi

# Target patterns for the packages named in "$@" that exist.
package_patterns() {
  local p
  for p in "$@"; do
    if [ -f "tests/$p/BUILD.bazel" ]; then
      echo "//tests/$p/..."
    else
      echo "check: tests/$p has no BUILD.bazel; skipped under TSan" >&2
    fi
  done
}

if [[ $checks == *,tsan,* ]]; then
  mapfile -t targets < <(package_patterns "${TSAN_PACKAGES[@]}")
  targets+=("${TSAN_EXTRA[@]}")
  banner "ThreadSanitizer, races checked: bazel test --config=tsan ${targets[*]}"
  start=$SECONDS
  status=0
  # --build_tests_only: build only those tests, not the binaries and benchmarks of the packages.
  "${san_bazel[@]}" test --config=tsan --keep_going --build_tests_only "${SAN_TEST_FILTER[@]}" \
    "${targets[@]}" "$@" > "$work/tsan.log" 2>&1 || status=$?
  [ "$status" -eq 0 ] || failure_details "$work/tsan.log"
  bazel_summary "$work/tsan.log"
  record "tsan (threaded code)" "$status" $((SECONDS - start))

  mapfile -t targets < <(package_patterns "${TSAN_GRPC_PACKAGES[@]}")
  supp="$PWD/tools/sanitizers/tsan_grpc_tests.supp"
  banner "ThreadSanitizer, gRPC tests (deadlocks, mutex misuse, signal safety): ${targets[*]}"
  start=$SECONDS
  status=0
  "${san_bazel[@]}" test --config=tsan --keep_going --build_tests_only "${SAN_TEST_FILTER[@]}" \
    "--test_env=TSAN_OPTIONS=suppressions=$supp" "${targets[@]}" "$@" \
    > "$work/tsan-grpc.log" 2>&1 || status=$?
  [ "$status" -eq 0 ] || failure_details "$work/tsan-grpc.log"
  bazel_summary "$work/tsan-grpc.log"
  record "tsan (gRPC tests)" "$status" $((SECONDS - start))
fi

if [[ $checks == *,fuzz,* ]]; then
  banner "libFuzzer: bazel build --config=fuzz, then ${fuzz_seconds}s / ${fuzz_runs} runs per target"
  start=$SECONDS
  labels=()
  for t in "${FUZZ_TARGETS[@]}"; do labels+=("//tests/fuzz:$t"); done
  status=0
  "${san_bazel[@]}" build --config=fuzz "${labels[@]}" "$@" > "$work/fuzz-build.log" 2>&1 ||
    status=$?
  bin="$("${san_bazel[@]}" info --config=fuzz "$@" bazel-bin 2> /dev/null)" || status=1
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/fuzz-build.log"
    record "fuzz build" 1 $((SECONDS - start))
  else
    record "fuzz build" 0 $((SECONDS - start))
    for t in "${FUZZ_TARGETS[@]}"; do
      start=$SECONDS
      dir="$work/fuzz-$t"
      mkdir -p "$dir/corpus"  # new inputs go here, never into the checked-in seeds
      status=0
      # -timeout: one input taking >10 s is a finding; -rss_limit_mb: so is a memory blow-up.
      # timeout(1) guards against a hang of libFuzzer itself.
      timeout --kill-after=10 $((fuzz_seconds + 120)) \
        "$bin/tests/fuzz/$t" -max_total_time="$fuzz_seconds" -runs="$fuzz_runs" \
        -timeout=10 -rss_limit_mb=2560 -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$dir/" "$dir/corpus" "tests/fuzz/corpus/$t" \
        > "$dir/log" 2>&1 || status=$?
      detail="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/log" | tail -n 1 | sed -E 's/[[:space:]]+/ /g')"
      if [ "$status" -ne 0 ]; then
        echo "---- $t failed (exit $status); the end of its log:"
        tail -n 80 "$dir/log"
        for a in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
          [ -f "$a" ] || continue
          echo "---- reproducer $(basename "$a"), base64 (save it and run the target on it):"
          base64 -w 0 "$a" | head -c 20000
          echo
        done
        detail="exit $status"
      fi
      echo "check: $t: ${detail:-no stats}"
      record "fuzz $t" "$status" $((SECONDS - start)) "$detail"
    done
  fi
fi

banner "summary ($((SECONDS - script_start))s in all; output base ${output_base})"
printf '  %s\n' "${results[@]}"
echo "checks: $((${#results[@]} - failures)) passed, ${failures} failed"
[ "$failures" -eq 0 ]
