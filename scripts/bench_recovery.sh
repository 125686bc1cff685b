#!/usr/bin/env bash
# Recovery time after a crash (issue 12, BENCHMARKS.md "Recovery time"): how long a server
# with --data_dir takes, from its start until grpc.health.v1 answers SERVING, after a SIGKILL
#   - with a large write-ahead log (--log_mb, default 1024 MB) of one running export and no
#     checkpoint (the whole log is replayed), and
#   - after as long an ingest with checkpoints every second (rwexport_server
#     --checkpoint_interval=1s): the log is truncated behind each checkpoint, and the kill comes
#     with a checkpoint about a second old (its age is printed); the restart restores it and
#     replays only the log after it.
# The log is made by `rwexport bench --data_dir` (self-describing acked streams); its server is
# SIGKILLed once the log has the size asked for (the checkpointed case: after the same time).
# Each restart is timed --runs times (each
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

# make_log NAME MB SECONDS CHECKPOINT_INTERVAL: a data dir $dir/NAME whose log holds at least MB
# megabytes (MB 0: after SECONDS of ingest instead), its server killed by SIGKILL while the export
# runs; the bench's server checkpoints every CHECKPOINT_INTERVAL (0s: never). Prints the data
# dir; the ingest's seconds go to $dir/NAME.seconds, the newest checkpoint's age at the kill to
# $dir/NAME.checkpoint_age.
make_log() {
  local name="$1" mb="$2" seconds="$3" interval="$4" child="" wal_bytes=0 i start
  mkdir -p "$dir/$name"
  "$bin/client/rwexport" bench --null_sink=false --mode=self --duration=1h --resume_timeout=1s \
    --data_dir="$dir/$name" --checkpoint_interval="$interval" \
    > "$dir/$name.bench.out" 2> "$dir/$name.bench.err" &
  bench_pid=$!
  start=""
  for i in $(seq 1 36000); do  # 0.1 s each: at most an hour
    child="$(pgrep -P "$bench_pid" | head -n1 || true)"
    if [ -n "$child" ] && ls -d "$dir/$name"/bench-*/wal > /dev/null 2>&1; then
      wal_bytes="$(du -sb "$dir/$name"/bench-*/wal | cut -f1)"
      [ -n "$start" ] || { [ "$wal_bytes" -gt 0 ] && start="$(date +%s.%N)"; }
      if [ "$mb" = 0 ]; then
        [ -n "$start" ] && /usr/bin/python3 -c "import sys,time; sys.exit(0 if time.time() - $start >= $seconds else 1)" && break
      elif [ "$wal_bytes" -ge $((mb * 1024 * 1024)) ]; then
        break
      fi
    fi
    kill -0 "$bench_pid" 2> /dev/null || { echo "bench_recovery: the bench ended early:" >&2; cat "$dir/$name.bench.err" >&2; exit 1; }
    sleep 0.1
  done
  kill -KILL "$child"
  local killed
  killed="$(date +%s.%N)"
  /usr/bin/python3 -c "print(f'{$killed - $start:.1f}')" > "$dir/$name.seconds"
  wait "$bench_pid" 2> /dev/null || true  # it fails: its server is gone
  bench_pid=""
  local checkpoint
  checkpoint="$(ls -t "$dir/$name"/bench-*/checkpoints/*.binpb 2> /dev/null | head -n1 || true)"
  if [ -n "$checkpoint" ]; then
    /usr/bin/python3 -c "import os; print(f'{$killed - os.path.getmtime(\"$checkpoint\"):.2f} s')" > "$dir/$name.checkpoint_age"
  else
    echo "none" > "$dir/$name.checkpoint_age"
  fi
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
for case_ in large checkpointed; do
  if [ "$case_" = large ]; then
    data="$(make_log large "$log_mb" 0 0s)"
  else
    data="$(make_log checkpointed 0 "$(cat "$dir/large.seconds")" 1s)"
  fi
  echo "bench_recovery: made the $case_ log ($(cat "$dir/$case_.seconds") s of ingest)" >&2
  size="$(du -sb "$data/wal" | cut -f1)"
  times="$(time_restarts "$data")"
  # shellcheck disable=SC2086
  summary "$case_: $(cat "$dir/$case_.seconds") s of ingest, log at the kill $((size / 1024 / 1024)) MB in $(ls "$data/wal"/*.wal | wc -l) segments, checkpoint age $(cat "$dir/$case_.checkpoint_age"); start to SERVING" $times
  grep -h 'wal re\|data dir loaded\|restored from a checkpoint' "$data.restart0.log" | sed 's/^/  /' | cut -c1-300
done
echo "bench_recovery: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
