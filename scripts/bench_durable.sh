#!/usr/bin/env bash
# Durable ingest against in memory (issue 12, BENCHMARKS.md "Durable ingest"): `rwexport bench`
# without and with --data_dir (the write-ahead log, default fsync policy `always`), both
# stream modes, without the null sink, alternating in-memory and durable runs --runs times.
# Prints per mode the durable/in-memory ratios of samples/s and of server CPU per sample,
# min / median / max over the runs (each ratio from one in-memory and the durable run after it).
#   scripts/bench_durable.sh [--duration=10s] [--runs=3] [--rpc=acked|stream] [--data_dir=DIR]
#                            [--rwexport=PATH] [--before=PATH] [--json_dir=DIR]
# --data_dir: where the durable server's log goes (default: a temporary directory under /tmp;
#   the disk it is on is what is measured). --rwexport: a built `rwexport` (default:
#   bazel build -c opt //client:rwexport and use it). --before: another build (e.g. of an
#   earlier commit) measured the same way in the same run, its pair right after each pair of
#   --rwexport, so that a change is judged by ratios taken under the same load. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s
runs=3
rpc=acked
binary=""
before=""
json_dir=""
data_dir=""
for arg in "$@"; do
  case "$arg" in
    --duration=*) duration="${arg#*=}" ;;
    --runs=*) runs="${arg#*=}" ;;
    --rpc=*) rpc="${arg#*=}" ;;
    --data_dir=*) data_dir="${arg#*=}" ;;
    --rwexport=*) binary="${arg#*=}" ;;
    --before=*) before="${arg#*=}" ;;
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
[ -z "$before" ] || [ -x "$before" ] ||
  { echo "bench_durable: --before: $before is not an executable" >&2; exit 1; }
tmp="$(mktemp -d /tmp/rwexport-durable.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
[ -n "$json_dir" ] || json_dir="$tmp/json"
[ -n "$data_dir" ] || data_dir="$tmp/data"
mkdir -p "$json_dir" "$data_dir"

echo "bench_durable: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), rpc $rpc, $runs x $duration" >&2
builds=(after)
[ -z "$before" ] || builds+=(before)
for run in $(seq 1 "$runs"); do
  for build in "${builds[@]}"; do
    exe="$binary"
    [ "$build" = after ] || exe="$before"
    for kind in memory durable; do
      out="$json_dir/$build.$kind.$run.json"
      flags=()
      [ "$kind" = memory ] || flags=(--data_dir="$data_dir")
      echo "bench_durable: run $run: ${before:+$build build, }$kind" >&2
      "$exe" bench --json --null_sink=false --rpc="$rpc" --duration="$duration" "${flags[@]}" \
        > "$out" 2> "$out.log" ||
        { echo "bench_durable: $kind run $run failed:" >&2; cat "$out.log" >&2; exit 1; }
    done
  done
done
echo "bench_durable: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2

/usr/bin/python3 - "$json_dir" "$runs" "${builds[@]}" <<'PY'
import json, statistics, sys
json_dir, runs, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def phases(build, kind, run):
    with open(f"{json_dir}/{build}.{kind}.{run}.json") as f:
        return {p["mode"]: p for p in json.load(f)["phases"] if p["server"] == "rwexport"}
def mmm(values):
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"
print("mode            in-memory samples/s   durable samples/s     samples/s ratio     "
      "CPU/sample ratio    (min / median / max over %d runs)" % runs)
for build, mode in [(b, m) for b in builds for m in ("self", "compact")]:
    if len(builds) > 1 and mode == "self":
        print(f"{build} (--{'rwexport' if build == 'after' else 'before'}):")
    mem_sps, dur_sps, sps, cpu, per_run = [], [], [], [], []
    for run in range(1, runs + 1):
        m, d = phases(build, "memory", run).get(mode), phases(build, "durable", run).get(mode)
        if m is None or d is None:
            continue
        mem_sps.append(m["samplesPerSecond"]); dur_sps.append(d["samplesPerSecond"])
        sps.append(d["samplesPerSecond"] / m["samplesPerSecond"])
        cpu.append(d["serverCpuSecondsPerMillion"] / m["serverCpuSecondsPerMillion"])
        per_run.append(f"{m['samplesPerSecond'] / 1e3:,.0f}k {m['serverCpuSecondsPerMillion']:.3f} -> "
                       f"{d['samplesPerSecond'] / 1e3:,.0f}k {d['serverCpuSecondsPerMillion']:.3f}")
    if not sps:
        continue
    print(f"{mode:15} {statistics.median(mem_sps):>19,.0f}   {statistics.median(dur_sps):>17,.0f}"
          f"   {mmm(sps):>17}   {mmm(cpu):>17}")
    print(f"{'':15} goal: samples/s ratio >= 0.80 ({'met' if min(sps) >= 0.8 else 'NOT met'} "
          f"at the min), CPU/sample ratio <= 1.25 ({'met' if max(cpu) <= 1.25 else 'NOT met'} at the max)")
    print(f"{'':15} per run, samples/s and server CPU s per million, in memory -> durable: "
          + "; ".join(per_run))
PY
