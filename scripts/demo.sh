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
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

prom_port="$(free_port)"
printf 'global:\n  scrape_interval: 15s\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --web.enable-remote-write-receiver \
  > "$work/prometheus.log" 2>&1 &
prom_pid=$!
if [ "${DEMO_KEEP:-0}" != "1" ]; then pids+=("$prom_pid"); fi
for _ in $(seq 1 60); do
  curl -fs "http://127.0.0.1:$prom_port/-/ready" > /dev/null 2>&1 && break
  sleep 0.5
done
curl -fs "http://127.0.0.1:$prom_port/-/ready" > /dev/null ||
  { echo "demo: Prometheus did not start; see $work/prometheus.log" >&2; exit 1; }
echo "Prometheus is up at http://127.0.0.1:$prom_port (log: $work/prometheus.log)"

"$bin/server/rwexport_server" --listen=127.0.0.1:0 --port_file="$work/port" \
  > "$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "demo: rwexport_server did not start; see $work/server.log" >&2; exit 1; }
server="127.0.0.1:$(cat "$work/port")"
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
