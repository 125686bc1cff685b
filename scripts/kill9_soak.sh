#!/usr/bin/env bash
# The kill -9 test at length (README "Crash safety"): tests/server/kill9_test with
# KILL9_KILLS (20) SIGKILLs of rwexport_server while `rwexport replay` streams finance-run.json
# and a generated run of 108060 samples through IngestSamples into a real Prometheus. Seeded:
# KILL9_SEED (default random) is printed, and rerunning with it repeats the kill moments.
# Prints the seed, the kills, the duration and the outcome; exit code 0 when the test passed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${RWEXPORT_TESTDATA:-}" ] && [ -d ../shared/testdata/k6 ]; then
  RWEXPORT_TESTDATA="$(cd ../shared/testdata/k6 && pwd)"
fi
export RWEXPORT_TESTDATA="${RWEXPORT_TESTDATA:?set RWEXPORT_TESTDATA to the directory of finance-run.json}"
kills="${KILL9_KILLS:-20}"
seed="${KILL9_SEED:-$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')}"

bazel build //tests/server:kill9_test
runfiles="$(bazel info bazel-bin)/tests/server/kill9_test.runfiles"
log="$(mktemp -t kill9_soak.XXXXXX.log)"
tmp="$(mktemp -d -t kill9_soak.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
status=0
# As bazel test runs it: runfiles, a private TEST_TMPDIR (the data dir lives there).
(cd "$runfiles/rwexport" && TEST_SRCDIR="$runfiles" TEST_WORKSPACE=rwexport TEST_TMPDIR="$tmp" \
  KILL9_SEED="$seed" KILL9_KILLS="$kills" timeout 900 \
  "$runfiles/rwexport/tests/server/kill9_test") > "$log" 2>&1 || status=$?
duration=$(( $(date +%s) - start ))
grep -E '^(KILL9_SEED|kill [0-9]+ of|replays done|finance|generated)' "$log" || true
if [ "$status" -eq 0 ]; then outcome=PASSED; else outcome="FAILED (exit $status; log $log)"; fi
echo "kill9_soak: seed=$seed kills=$kills duration=${duration}s outcome=$outcome"
[ "$status" -eq 0 ] && rm -f "$log"
exit "$status"
