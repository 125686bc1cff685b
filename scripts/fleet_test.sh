#!/usr/bin/env bash
# The fleet tests at full size (README "Running a fleet"): 3 replicas (--replica_id r0, r1, r2)
# on loopback behind the real HAProxy with deploy/haproxy/rwexport.cfg, a real Prometheus, and
# FLEET_RUNS (30) test runs through HAProxy: replays of finance-run.json with the CLI and
# generated runs with the Python client. It prints the runs each replica served.
#
#   scripts/fleet_test.sh [routing|sigkill|rolling|all]     (or FLEET_MODE=...; default all)
#
# routing (tests/deploy/fleet_routing_test.py, 30 runs at once, about a minute): new runs
#   spread over all replicas; every call of a run reaches its owner (totals in Prometheus exact:
#   http_reqs 60 and iterations 20 per replay); non-owners answer UNAVAILABLE naming the owner;
#   influx writes are routed by db; a drained replica keeps its runs; HAProxy takes a replica
#   out while it drains after SIGTERM (gRPC health NOT_SERVING); runs started while a replica
#   is down stay where they are once it is back; the TLS variant of the configuration.
# sigkill (tests/deploy/fleet_restart_test.py, each replica with its own --data_dir, about
#   40 s): a third of the runs stream (acknowledged RPC, IngestSamples: `rwexport replay -` fed
#   finance-run.json at ten times its pace, and the Python client's AckedStream); r1 gets
#   SIGKILL; once HAProxy marks it down a second third starts (all on r0 and r2); r1 is started
#   again on its data directory and the last third starts. Every run's totals in Prometheus are
#   exact, only r1's runs resumed, each run is stopped by its owner only; it prints per replica
#   the runs served and the pause the kill caused (kill to the first ack after the restart).
# rolling (the same file, about 40 s): the runs stream while r0, r1 and r2 in turn get SIGTERM
#   and are started again; every run's totals exact; it prints the pause of each restart.
# `bazel test //tests/deploy:fleet_routing_test` and `:fleet_restart_test` run the same with 9
# runs.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-${FLEET_MODE:-all}}"
case "$mode" in
  routing|sigkill|rolling|all) ;;
  *) echo "fleet_test.sh: unknown mode '$mode' (routing, sigkill, rolling or all)"; exit 2 ;;
esac
if [ -z "${RWEXPORT_TESTDATA:-}" ] && [ -d ../shared/testdata/k6 ]; then
  RWEXPORT_TESTDATA="$(cd ../shared/testdata/k6 && pwd)"
fi
export RWEXPORT_TESTDATA="${RWEXPORT_TESTDATA:?set RWEXPORT_TESTDATA to the directory of finance-run.json}"
for tool in haproxy prometheus /usr/bin/python3; do
  command -v "$tool" > /dev/null || { echo "fleet_test.sh: $tool is missing (scripts/setup.sh)"; exit 1; }
done

bazel build //tests/deploy:fleet_routing_test //tests/deploy:fleet_restart_test
bin="$(bazel info bazel-bin 2> /dev/null)"  # before TEST_TMPDIR is set: bazel reads it
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export TEST_TMPDIR="$tmp" FLEET_RUNS="${FLEET_RUNS:-30}" FLEET_PARALLEL="${FLEET_PARALLEL:-30}"

run() {  # run TEST_NAME: one test file from its runfiles
  local runfiles="$bin/tests/deploy/$1.runfiles"
  TEST_SRCDIR="$runfiles" \
    PYTHONPATH="$runfiles/rwexport/clients/python:$runfiles/rwexport/tests/deploy" \
    /usr/bin/python3 -u "$runfiles/rwexport/tests/deploy/$1.py" -v
}

start=$(date +%s)
if [ "$mode" = routing ] || [ "$mode" = all ]; then
  echo "fleet test (routing): 3 replicas, HAProxy, Prometheus, ${FLEET_RUNS} runs (${FLEET_PARALLEL} at once)"
  run fleet_routing_test
fi
if [ "$mode" != routing ]; then
  echo "fleet test ($mode): 3 replicas with data dirs, HAProxy, Prometheus, ${FLEET_RUNS} runs"
  FLEET_MODE="$mode" run fleet_restart_test
fi
echo "fleet test ($mode) passed in $(( $(date +%s) - start )) s"
