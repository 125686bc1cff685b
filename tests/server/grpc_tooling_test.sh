#!/usr/bin/env bash
# rwexport_server answers standard gRPC tooling: health checks and reflection, asked by a
# client that is not ours (Python grpcio from Debian).
set -euo pipefail
server="$TEST_SRCDIR/rwexport/server/rwexport_server"
check="$TEST_SRCDIR/rwexport/tests/server/grpc_tooling_check.py"
dir="$(mktemp -d "${TEST_TMPDIR:-/tmp}/tooling.XXXXXX")"
"$server" --listen=127.0.0.1:0 --port_file="$dir/port" 2> "$dir/server.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || { echo "server did not start:"; cat "$dir/server.log"; exit 1; }
/usr/bin/python3 "$check" "127.0.0.1:$(cat "$dir/port")"
