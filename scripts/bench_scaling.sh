#!/usr/bin/env bash
# The scaling tables of issue 16 in one run (BENCHMARKS.md, "Scaling"): `rwexport bench` with
#   series  1k / 10k / 100k              (4 streams, 1 export)
#   streams 1 / 2 / 4 at 100k series     (1 export): the heap per declared series per stream
#     (--hold=3s: also with the streams open and idle after the load, vs once they ended)
#   exports 1 / 10 / 100                 (the default 5,412 series, 4 streams): fixed cost
#   allocators: the binary's own (jemalloc, linked; glibc's malloc up to commit ada3a39),
#     jemalloc and tcmalloc LD_PRELOADed (Debian's libraries), at 100k series:
#     RSS before StartExport, at the end of the load and after StopExport
# each in both stream modes, without the null sink; every configuration --runs times, figures
# as min / median / max over the runs (ratios within one run first). Loopback only.
#   scripts/bench_scaling.sh [--duration=10s] [--runs=1] [--tables=series,streams,exports,allocators]
#                            [--rwexport=PATH] [--json_dir=DIR]
# --rwexport: a built `rwexport` (default: bazel build -c opt //client:rwexport and use it).
# --json_dir: keep every bench's --json output there (default: a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10s
runs=1
tables=series,streams,exports,allocators
binary=""
json_dir=""
for arg in "$@"; do
  case "$arg" in
    --duration=*) duration="${arg#*=}" ;;
    --runs=*) runs="${arg#*=}" ;;
    --tables=*) tables="${arg#*=}" ;;
    --rwexport=*) binary="${arg#*=}" ;;
    --json_dir=*) json_dir="${arg#*=}" ;;
    *) echo "bench_scaling: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench_scaling: --runs: expected a positive number, got $runs" >&2; exit 2; }
if [ -z "$binary" ]; then
  bazel build -c opt //client:rwexport >&2
  binary="$(bazel info -c opt bazel-bin 2>/dev/null)/client/rwexport"
fi
[ -x "$binary" ] || { echo "bench_scaling: $binary is not an executable" >&2; exit 1; }
keep_json=1
if [ -z "$json_dir" ]; then
  json_dir="$(mktemp -d /tmp/rwexport-scaling.XXXXXX)"
  keep_json=0
fi
mkdir -p "$json_dir"
[ "$keep_json" = 1 ] || trap 'rm -rf "$json_dir"' EXIT

lib=/usr/lib/x86_64-linux-gnu
declare -A preload=([default]="" [jemalloc]="$lib/libjemalloc.so.2" [tcmalloc]="$lib/libtcmalloc_minimal.so.4")

# bench NAME ALLOCATOR FLAGS...: one `rwexport bench --json` into $json_dir/NAME.ALLOCATOR.RUN.json
bench() {
  local name="$1" allocator="$2" out
  shift 2
  out="$json_dir/$name.$allocator.$run.json"
  echo "bench_scaling: run $run: $name ($allocator): $*" >&2
  LD_PRELOAD="${preload[$allocator]}" "$binary" bench --json --null_sink=false \
    --duration="$duration" --rss_csv="$out.csv" "$@" > "$out" 2> "$out.log" ||
    { echo "bench_scaling: $name failed:" >&2; cat "$out.log" >&2; exit 1; }
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "binary: $binary; commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)'); $duration per phase, $runs run(s)"
for run in $(seq 1 "$runs"); do
  if [[ ",$tables," == *,series,* ]]; then
    for n in 1000 10000 100000; do bench "series$n" default --series=$n --streams=4; done
  fi
  if [[ ",$tables," == *,streams,* ]]; then
    for s in 1 2 4; do bench "streams$s" default --series=100000 --streams=$s --hold=3s; done
  fi
  if [[ ",$tables," == *,exports,* ]]; then
    for e in 1 10 100; do bench "exports$e" default --exports=$e --streams=4; done
  fi
  if [[ ",$tables," == *,allocators,* ]]; then
    for a in default jemalloc tcmalloc; do bench allocator100k "$a" --series=100000 --streams=4; done
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 "$(dirname "$0")/lib/bench_scaling_tables.py" "$json_dir" "$runs" "$duration"
