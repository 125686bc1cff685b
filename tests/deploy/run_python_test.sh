#!/usr/bin/env bash
# Runs one Python test of this package with Debian's /usr/bin/python3 (python3-grpcio), the
# Python client and its generated stubs on the path.
set -euo pipefail
root="$TEST_SRCDIR/rwexport"
export PYTHONPATH="$root/clients/python:$root/tests/deploy"
exec /usr/bin/python3 -u "$root/tests/deploy/$1" -v
