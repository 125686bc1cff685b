#!/usr/bin/env bash
# Recovery time after a crash (issue 12, BENCHMARKS.md "Recovery time"): how long a server
# with --data_dir takes, from its start until grpc.health.v1 answers SERVING, after a SIGKILL
#   - with a large write-ahead log (--log_mb, default 1024 MB) of one running export, and
#   - with a small one (about one second of ingest): what a restart costs when only a second of
#     log follows the recovered state (what a checkpoint one second old would leave to replay).
# The log is made by `rwexport bench --data_dir` (self-describing acked streams); its server is
# SIGKILLed once the log has the size asked for. Each restart is timed --runs times (each
# restart ended by SIGKILL too, so the log is the same for every run); min / median / max.
#   scripts/bench_recovery.sh [--log_mb=1024] [--runs=3] [--dir=DIR] [--bin=BAZEL_BIN]
# --dir: where the data directories go (default: a temporary directory under /tmp, removed at
#   the end; the disk it is on is what is measured). --bin: a bazel-bin holding
#   client/rwexport and server/rwexport_server (default: bazel build -c opt of both).
# Loopback only. The page cache is not dropped: the restart reads a log recently written.
set -euo pipefail
cd "$(dirname "$0")/.."

log_mb=1024
runs=3
dir=""
bin=""
for arg in "$@"; do
  case "$arg" in
    --log_mb=*) log_mb="${arg#*=}" ;;
    --runs=*) runs="${arg#*=}" ;;
    --dir=*) dir="${arg#*=}" ;;
    --bin=*) bin="${arg#*=}" ;;
    *) echo "bench_recovery: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench_recovery: --runs: expected a positive number, got $runs" >&2; exit 2; }
[[ "$log_mb" =~ ^[1-9][0-9]*$ ]] || { echo "bench_recovery: --log_mb: expected a positive number, got $log_mb" >&2; exit 2; }
if [ -z "$bin" ]; then
  bazel build -c opt //client:rwexport //server:rwexport_server >&2
  bin="$(bazel info -c opt bazel-bin 2>/dev/null)"
fi
for b in client/rwexport server/rwexport_server; do
  [ -x "$bin/$b" ] || { echo "bench_recovery: $bin/$b is not an executable" >&2; exit 1; }
done
remove_dir=0
if [ -z "$dir" ]; then
  dir="$(mktemp -d /tmp/rwexport-recovery.XXXXXX)"
  remove_dir=1
fi
bench_pid=""
cleanup() {
  [ -z "$bench_pid" ] || kill -TERM "$bench_pid" 2>/dev/null || true
  [ "$remove_dir" = 0 ] || rm -rf "$dir"
}
trap cleanup EXIT

# make_log NAME MB: a data dir $dir/NAME whose log holds at least MB megabytes (MB 0: about one
# second of ingest), its server killed by SIGKILL while the export runs. Prints the data dir.
make_log() {
  local name="$1" mb="$2" child="" wal_bytes=0 i
  mkdir -p "$dir/$name"
  "$bin/client/rwexport" bench --null_sink=false --mode=self --duration=1h --resume_timeout=1s \
    --data_dir="$dir/$name" > "$dir/$name.bench.out" 2> "$dir/$name.bench.err" &
  bench_pid=$!
  for i in $(seq 1 36000); do  # 0.1 s each: at most an hour
    child="$(pgrep -P "$bench_pid" | head -n1 || true)"
    if [ -n "$child" ] && ls -d "$dir/$name"/bench-*/wal > /dev/null 2>&1; then
      wal_bytes="$(du -sb "$dir/$name"/bench-*/wal | cut -f1)"
      if [ "$mb" = 0 ]; then
        [ "$wal_bytes" -gt 0 ] && { sleep 1; break; }
      elif [ "$wal_bytes" -ge $((mb * 1024 * 1024)) ]; then
        break
      fi
    fi
    kill -0 "$bench_pid" 2> /dev/null || { echo "bench_recovery: the bench ended early:" >&2; cat "$dir/$name.bench.err" >&2; exit 1; }
    sleep 0.1
  done
  kill -KILL "$child"
  wait "$bench_pid" 2> /dev/null || true  # it fails: its server is gone
  bench_pid=""
  ls -d "$dir/$name"/bench-*
}

# time_restarts DATA_DIR: starts rwexport_server on it --runs times, each until health says
# SERVING, then SIGKILL; prints the seconds of each run and the server's recovery lines.
time_restarts() {
  /usr/bin/python3 - "$bin/server/rwexport_server" "$1" "$runs" <<'PY'
import grpc, os, signal, socket, subprocess, sys, time
server, data_dir, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
for run in range(runs):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    log = open(f"{data_dir}.restart{run}.log", "w")
    start = time.monotonic()
    proc = subprocess.Popen([server, f"--data_dir={data_dir}", f"--listen=127.0.0.1:{port}",
                             "--metrics_listen="], stdout=log, stderr=subprocess.STDOUT)
    served = None
    deadline = start + 600
    while time.monotonic() < deadline and proc.poll() is None:
        # A fresh channel per attempt: a channel refused once waits out its reconnect backoff
        # (up to seconds), which would be measured instead of the server.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                        request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
            try:
                if check(b"", timeout=0.5) == b"\x08\x01":  # status: SERVING
                    served = time.monotonic() - start
                    break
            except grpc.RpcError:
                pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL); proc.wait(); log.close()
    if served is None:
        sys.exit(f"bench_recovery: the server on {data_dir} did not serve; see {log.name}")
    print(f"{served:.3f}")
PY
}

summary() {  # NAME SECONDS...: min / median / max
  /usr/bin/python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[2:]]; print(f"{sys.argv[1]}: {min(v):.2f} / {statistics.median(v):.2f} / {max(v):.2f} s (min / median / max of {len(v)})")' "$@"
}

echo "bench_recovery: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" >&2
for case_ in large small; do
  mb="$log_mb"; [ "$case_" = large ] || mb=0
  echo "bench_recovery: making the $case_ log" >&2
  data="$(make_log "$case_" "$mb")"
  size="$(du -sb "$data/wal" | cut -f1)"
  times="$(time_restarts "$data")"
  # shellcheck disable=SC2086
  summary "$case_ log, $((size / 1024 / 1024)) MB in $(ls "$data/wal"/*.wal | wc -l) segments, start to SERVING" $times
  grep -h 'wal re\|data dir loaded' "$data.restart0.log" | sed 's/^/  /' | cut -c1-300
done
echo "bench_recovery: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
