#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts a real Prometheus and rwexport_server on
# loopback, streams a synthetic load test into an export for DEMO_DURATION (default 30s), and
# prints what landed in Prometheus. DEMO_KEEP=1 leaves Prometheus running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

duration="${DEMO_DURATION:-30s}"
bazel build //server:rwexport_server //client:rwexport
bin="$(bazel info bazel-bin 2>/dev/null)"

work="$(mktemp -d /tmp/rwexport-demo.XXXXXX)"
source scripts/lib/local_servers.sh
trap cleanup_servers EXIT

start_prometheus || exit 1
if [ "${DEMO_KEEP:-0}" != "1" ]; then pids+=("$prom_pid"); fi
echo "Prometheus is up at http://127.0.0.1:$prom_port (log: $work/prometheus.log)"

start_rwexport_server || exit 1
echo "rwexport_server is up at $server (log: $work/server.log)"
echo

"$bin/client/rwexport" demo --server="$server" \
  --remote_write_url="http://127.0.0.1:$prom_port/api/v1/write" \
  --prometheus_url="http://127.0.0.1:$prom_port" --duration="$duration"

echo
echo "server log:"
sed 's/^/  /' "$work/server.log"
if [ "${DEMO_KEEP:-0}" = "1" ]; then
  echo "Prometheus keeps running at http://127.0.0.1:$prom_port (pid $prom_pid)."
fi
