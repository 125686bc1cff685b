#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test: `bazel test //...`, the Debian
# package's acceptance test (scripts/package_test.sh, as root only), then the checkers
# (scripts/check.sh). The full-size fleet run (scripts/fleet_test.sh) only with
# RWEXPORT_FLEET_TEST=all.
# Integration tests start their own Prometheus on loopback. Extra arguments go to bazel test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# The k6 result files used by tests live beside the repository, in ../shared/testdata/k6.
if [ -z "${RWEXPORT_TESTDATA:-}" ] && [ -d ../shared/testdata/k6 ]; then
  RWEXPORT_TESTDATA="$(cd ../shared/testdata/k6 && pwd)"
fi
export RWEXPORT_TESTDATA="${RWEXPORT_TESTDATA:-}"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
bazel test //... "$@" 2>&1 | tee "$log" || status=$?

passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//[^ ]+ +(FAILED|TIMEOUT|NO STATUS|FAILED TO BUILD)' "$log" || true)

# Runs one acceptance script after the tests and counts it as a test.
acceptance() {
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "$1 failed: see above"
    status=1
    failed=$((failed + 1))
  fi
}

# The Debian package's acceptance test (build, lintian, dpkg -i, the unit's ExecStart as its
# user, dpkg -r/-P): needs root; RWEXPORT_PACKAGE_TEST=0 skips it.
if [ "$status" -eq 0 ] && [ "$(id -u)" -eq 0 ] && [ "${RWEXPORT_PACKAGE_TEST:-1}" != 0 ]; then
  acceptance scripts/package_test.sh
fi

# The fleet tests at full size (3 replicas, HAProxy, Prometheus, 30 runs each; about 2 minutes)
# are a script of their own, scripts/fleet_test.sh: `bazel test` above already runs the same
# tests with 9 runs each (tests/deploy/fleet_*_test.py). RWEXPORT_FLEET_TEST=all (or
# routing|sigkill|rolling) runs them here too, after the tests.
if [ "$status" -eq 0 ] && [ -n "${RWEXPORT_FLEET_TEST:-}" ] && [ "${RWEXPORT_FLEET_TEST}" != 0 ]; then
  fleet_mode="${RWEXPORT_FLEET_TEST}"
  [ "$fleet_mode" = 1 ] && fleet_mode=all
  acceptance scripts/fleet_test.sh "$fleet_mode"
fi

# Then the checkers, if the tests passed: ASan+UBSan, TSan, fuzzing (scripts/check.sh, about
# 20 minutes from cold). RWEXPORT_CHECKS=none skips them.
if [ "$status" -eq 0 ] && [ "${RWEXPORT_CHECKS:-}" != none ]; then
  checks=0
  scripts/check.sh || checks=$?
  if [ "$checks" -ne 0 ]; then
    echo "checkers failed (exit $checks): see above"
    status=$checks
    failed=$((failed + 1))
  fi
fi
# The closing line counts test targets (each a test file) of the normal run.
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
