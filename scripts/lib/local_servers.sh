# Sourced by scripts that run a real Prometheus and rwexport_server on loopback (demo.sh,
# bench_live.sh). The caller sets `work` (a directory for configs, data and logs) and `bin`
# (bazel-bin); every process started is added to `pids`, which cleanup_servers stops.

pids=()
cleanup_servers() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts Prometheus with its remote-write receiver on a free port and waits until it is ready.
# Sets prom_port and prom_pid (not added to pids: the caller decides whether it outlives it).
start_prometheus() {
  prom_port="$(free_port)"
  printf 'global:\n  scrape_interval: 15s\n' > "$work/prometheus.yml"
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" --web.enable-remote-write-receiver \
    > "$work/prometheus.log" 2>&1 &
  prom_pid=$!
  for _ in $(seq 1 60); do
    curl -fs "http://127.0.0.1:$prom_port/-/ready" > /dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "Prometheus did not start; see $work/prometheus.log" >&2
  return 1
}

# Starts rwexport_server on a free port with the given extra flags; sets server (host:port).
start_rwexport_server() {
  "$bin/server/rwexport_server" --listen=127.0.0.1:0 --port_file="$work/port" "$@" \
    > "$work/server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
  [ -s "$work/port" ] || { echo "rwexport_server did not start; see $work/server.log" >&2; return 1; }
  server="127.0.0.1:$(cat "$work/port")"
}
