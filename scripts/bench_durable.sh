#!/usr/bin/env bash
# Durable ingest against in memory (issue 12, BENCHMARKS.md "Durable ingest"): `rwexport bench`
# without and with --data_dir (the write-ahead log, default fsync policy `always`), both
# stream modes, without the null sink, alternating in-memory and durable runs --runs times.
# Prints per mode the durable/in-memory ratios of samples/s and of server CPU per sample,
# min / median / max over the runs (each ratio from one in-memory and the durable run after it).
#   scripts/bench_durable.sh [--duration=10s] [--runs=3] [--rpc=acked|stream] [--data_dir=DIR]
#                            [--rwexport=PATH] [--json_dir=DIR]
# --data_dir: where the durable server's log goes (default: a temporary directory under /tmp;
#   the disk it is on is what is measured). --rwexport: a built `rwexport` (default:
#   bazel build -c opt //client:rwexport and use it). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s
runs=3
rpc=acked
binary=""
json_dir=""
data_dir=""
for arg in "$@"; do
  case "$arg" in
    --duration=*) duration="${arg#*=}" ;;
    --runs=*) runs="${arg#*=}" ;;
    --rpc=*) rpc="${arg#*=}" ;;
    --data_dir=*) data_dir="${arg#*=}" ;;
    --rwexport=*) binary="${arg#*=}" ;;
    --json_dir=*) json_dir="${arg#*=}" ;;
    *) echo "bench_durable: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench_durable: --runs: expected a positive number, got $runs" >&2; exit 2; }
if [ -z "$binary" ]; then
  bazel build -c opt //client:rwexport >&2
  binary="$(bazel info -c opt bazel-bin 2>/dev/null)/client/rwexport"
fi
[ -x "$binary" ] || { echo "bench_durable: $binary is not an executable" >&2; exit 1; }
tmp="$(mktemp -d /tmp/rwexport-durable.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
[ -n "$json_dir" ] || json_dir="$tmp/json"
[ -n "$data_dir" ] || data_dir="$tmp/data"
mkdir -p "$json_dir" "$data_dir"

echo "bench_durable: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), rpc $rpc, $runs x $duration" >&2
for run in $(seq 1 "$runs"); do
  for kind in memory durable; do
    out="$json_dir/$kind.$run.json"
    flags=()
    [ "$kind" = memory ] || flags=(--data_dir="$data_dir")
    echo "bench_durable: run $run: $kind" >&2
    "$binary" bench --json --null_sink=false --rpc="$rpc" --duration="$duration" "${flags[@]}" \
      > "$out" 2> "$out.log" ||
      { echo "bench_durable: $kind run $run failed:" >&2; cat "$out.log" >&2; exit 1; }
  done
done
echo "bench_durable: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2

/usr/bin/python3 - "$json_dir" "$runs" <<'PY'
import json, statistics, sys
json_dir, runs = sys.argv[1], int(sys.argv[2])
def phases(kind, run):
    with open(f"{json_dir}/{kind}.{run}.json") as f:
        return {p["mode"]: p for p in json.load(f)["phases"] if p["server"] == "rwexport"}
def mmm(values):
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"
print("mode            in-memory samples/s   durable samples/s     samples/s ratio     "
      "CPU/sample ratio    (min / median / max over %d runs)" % runs)
for mode in ("self", "compact"):
    mem_sps, dur_sps, sps, cpu = [], [], [], []
    for run in range(1, runs + 1):
        m, d = phases("memory", run).get(mode), phases("durable", run).get(mode)
        if m is None or d is None:
            continue
        mem_sps.append(m["samplesPerSecond"]); dur_sps.append(d["samplesPerSecond"])
        sps.append(d["samplesPerSecond"] / m["samplesPerSecond"])
        cpu.append(d["serverCpuSecondsPerMillion"] / m["serverCpuSecondsPerMillion"])
    if not sps:
        continue
    print(f"{mode:15} {statistics.median(mem_sps):>19,.0f}   {statistics.median(dur_sps):>17,.0f}"
          f"   {mmm(sps):>17}   {mmm(cpu):>17}")
    print(f"{'':15} goal: samples/s ratio >= 0.80 ({'met' if min(sps) >= 0.8 else 'NOT met'} "
          f"at the min), CPU/sample ratio <= 1.25 ({'met' if max(cpu) <= 1.25 else 'NOT met'} at the max)")
PY
