#!/usr/bin/env bash
# rwexport next to a peer, vmagent (Debian's victoria-metrics), side by side in one run (issue 16,
# item 7; BENCHMARKS.md section 13). Each of --reps repetitions runs, interleaved:
#   1. tests/ingest/influx_vmagent_bench --reps=1: the same influx line-protocol bodies
#      (MakeBenchWorkload, ~5,400 series) to rwexport_server's InfluxDB write API and to
#      vmagent's /write, both remote-writing to a null receiver answering 204;
#   2. rwexport bench --mode=both --null_sink=false --json: the same workload over gRPC,
#      self-describing then compact streams, remote write to the bench's 204 receiver.
# Prints one table: vmagent, rwexport influx, rwexport self-describing, rwexport compact; server
# CPU seconds per million samples and peak RSS (VmHWM) in MB, min / median / max over the reps,
# and each rwexport row's ratio to vmagent's figure of the same repetition (min / median / max).
# vmagent forwards every raw sample; rwexport aggregates them into windows: the ratios compare
# the cost of two different jobs on the same input, not the same work.
#   scripts/bench_peer.sh [--reps=3] [--samples=2000000] [--connections=4] [--duration=2s]
#                         [--streams=4] [--bin=BAZEL_BIN] [--json_dir=DIR]
# --samples, --connections: influx samples per server per repetition and the load's keep-alive
#   connections (influx_vmagent_bench). --duration, --streams: each gRPC mode's load time and
#   concurrent streams (rwexport bench; it runs for a time, not a sample count: the table shows
#   the samples each row measured). --bin: a bazel-bin with server/rwexport_server,
#   client/rwexport and tests/ingest/influx_vmagent_bench built -c opt (default: build them).
#   --json_dir: keep each repetition's raw output there (default: a temporary directory,
#   removed). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=3
samples=2000000
connections=4
duration=2s
streams=4
bin=""
json_dir=""
for arg in "$@"; do
  case "$arg" in
    --reps=*) reps="${arg#*=}" ;;
    --samples=*) samples="${arg#*=}" ;;
    --connections=*) connections="${arg#*=}" ;;
    --duration=*) duration="${arg#*=}" ;;
    --streams=*) streams="${arg#*=}" ;;
    --bin=*) bin="${arg#*=}" ;;
    --json_dir=*) json_dir="${arg#*=}" ;;
    *) echo "bench_peer: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "bench_peer: --reps: expected a positive number, got $reps" >&2; exit 2; }
[[ "$samples" =~ ^[1-9][0-9]*$ ]] || { echo "bench_peer: --samples: expected a positive number, got $samples" >&2; exit 2; }
[ -x /usr/bin/vmagent ] || { echo "bench_peer: /usr/bin/vmagent missing (scripts/setup.sh installs victoria-metrics)" >&2; exit 1; }
if [ -z "$bin" ]; then
  bazel build -c opt //server:rwexport_server //client:rwexport //tests/ingest:influx_vmagent_bench >&2
  bin="$(bazel info -c opt bazel-bin 2>/dev/null)"
fi
for b in server/rwexport_server client/rwexport tests/ingest/influx_vmagent_bench; do
  [ -x "$bin/$b" ] || { echo "bench_peer: $bin/$b is not an executable" >&2; exit 1; }
done
tmp="$(mktemp -d /tmp/rwexport-peer.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
[ -n "$json_dir" ] || json_dir="$tmp/out"
mkdir -p "$json_dir"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); vmagent $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo '(version unknown)')"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "per rep: influx $samples samples x 2 servers, $connections connections; gRPC $streams streams x $duration per mode"
for rep in $(seq 1 "$reps"); do
  echo "bench_peer: rep $rep: influx (rwexport, vmagent)" >&2
  "$bin/tests/ingest/influx_vmagent_bench" --server_binary="$bin/server/rwexport_server" --reps=1 \
    --samples="$samples" --connections="$connections" > "$json_dir/influx.$rep.txt" 2> "$json_dir/influx.$rep.log" ||
    { echo "bench_peer: influx rep $rep failed:" >&2; cat "$json_dir/influx.$rep.log" >&2; exit 1; }
  echo "bench_peer: rep $rep: rwexport bench --mode=both" >&2
  "$bin/client/rwexport" bench --mode=both --null_sink=false --json --duration="$duration" \
    --streams="$streams" > "$json_dir/grpc.$rep.json" 2> "$json_dir/grpc.$rep.log" ||
    { echo "bench_peer: rwexport bench rep $rep failed:" >&2; cat "$json_dir/grpc.$rep.log" >&2; exit 1; }
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

/usr/bin/python3 - "$json_dir" "$reps" "$samples" <<'PY'
import json, re, statistics, sys
out, reps, influx_samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = {k: {"cpu": [], "rss": [], "samples": []} for k in ("vmagent", "influx", "self", "compact")}
line_re = re.compile(r"rep \d+: rwexport ([\d.]+) CPU s / M samples, peak RSS (\d+) kB .*"
                     r"\| vmagent ([\d.]+) CPU s / M samples, peak RSS (\d+) kB")
for rep in range(1, reps + 1):
    with open(f"{out}/influx.{rep}.txt") as f:
        m = next((line_re.search(l) for l in f if line_re.search(l)), None)
    if m is None:
        sys.exit(f"bench_peer: no repetition line in {out}/influx.{rep}.txt")
    for key, cpu, rss in (("influx", m[1], m[2]), ("vmagent", m[3], m[4])):
        rows[key]["cpu"].append(float(cpu)); rows[key]["rss"].append(int(rss) / 1024)
        rows[key]["samples"].append(influx_samples)
    with open(f"{out}/grpc.{rep}.json") as f:
        phases = {p["mode"]: p for p in json.load(f)["phases"] if p["server"] == "rwexport"}
    for mode in ("self", "compact"):
        p = phases[mode]
        rows[mode]["cpu"].append(p["serverCpuSecondsPerMillion"])
        rows[mode]["rss"].append(p["serverPeakRssKb"] / 1024)
        rows[mode]["samples"].append(p["samplesAccepted"])
def mmm(v, fmt):
    return " / ".join(format(x, fmt) for x in (min(v), statistics.median(v), max(v)))
names = {"vmagent": "vmagent (raw samples)", "influx": "rwexport influx",
         "self": "rwexport self-describing", "compact": "rwexport compact"}
print(f"\nmin / median / max over {reps} rep(s); ratios per rep against that rep's vmagent figure")
print("| server | M samples (median) | CPU s / M samples | peak RSS MB | CPU ratio to vmagent | RSS ratio to vmagent |")
print("|---|---|---|---|---|---|")
vm = rows["vmagent"]
for key in ("vmagent", "influx", "self", "compact"):
    r = rows[key]
    if key == "vmagent":
        cpu_ratio = rss_ratio = "1"
    else:
        cpu_ratio = mmm([a / b for a, b in zip(r["cpu"], vm["cpu"])], ".3f")
        rss_ratio = mmm([a / b for a, b in zip(r["rss"], vm["rss"])], ".2f")
    print(f"| {names[key]} | {statistics.median(r['samples']) / 1e6:.2f} | {mmm(r['cpu'], '.3f')}"
          f" | {mmm(r['rss'], '.0f')} | {cpu_ratio} | {rss_ratio} |")
PY
