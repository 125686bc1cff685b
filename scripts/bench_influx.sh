#!/usr/bin/env bash
# rwexport's InfluxDB write API next to vmagent (Debian's victoria-metrics) on identical request
# bodies: server CPU per million samples, 3 repetitions side by side, min / median / max of the
# ratio (BENCHMARKS.md, "InfluxDB ingest"). Loopback only; both forward to a null receiver.
#   scripts/bench_influx.sh [--samples=2000000] [--connections=4] [--reps=3] [--server_workers=0]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/vmagent ] || { echo "bench_influx: /usr/bin/vmagent missing (scripts/setup.sh installs victoria-metrics)" >&2; exit 1; }
bazel build -c opt //server:rwexport_server //tests/ingest:influx_vmagent_bench >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)')"
exec bazel-bin/tests/ingest/influx_vmagent_bench --server_binary=bazel-bin/server/rwexport_server "$@"
