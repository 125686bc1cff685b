#!/usr/bin/env bash
# Live latency: how long after k6 writes a sample Prometheus stores the window holding it.
#
# Starts a real Prometheus and rwexport_server on loopback, and `rwexport replay FILE --follow`
# on a file that a writer fills as k6 would: the lines of a real k6 run
# (shared/testdata/k6/finance-run.json, 802 samples over 61 s), each Point's time rewritten to
# the moment it is written, at the recorded pace (the file is played again, later, when
# LIVE_SECONDS exceeds it). A poller asks Prometheus every 50 ms for the newest window of
# k6_http_reqs_total (a counter: sent for every window from the first on). A sample written at
# time w lies in the window ending at E = (floor(w / R) + 1) * R; its latency is the first
# poll that saw E, minus w. Prints p50/p90/p99/max over every sample written, and the budget
# resampleRate + lateness + 1.5 s.
#
#   scripts/bench_live.sh                 # 60 s, resampleRate 1, server --lateness=2s
#   LIVE_SECONDS=120 RESAMPLE_RATE=3 LATENESS=2s FLUSH_INTERVAL=1s scripts/bench_live.sh
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${LIVE_SECONDS:-60}"
rate="${RESAMPLE_RATE:-1}"
lateness="${LATENESS:-2s}"
flush="${FLUSH_INTERVAL:-1s}"
testdata="${RWEXPORT_TESTDATA:-../shared/testdata/k6}"
source_file="$testdata/finance-run.json"
[ -r "$source_file" ] || { echo "bench_live: $source_file not found (set RWEXPORT_TESTDATA)" >&2; exit 1; }

bazel build //server:rwexport_server //client:rwexport >&2
bin="$(bazel info bazel-bin 2>/dev/null)"
work="$(mktemp -d /tmp/rwexport-live.XXXXXX)"
source scripts/lib/local_servers.sh
trap 'cleanup_servers; rm -rf "$work"' EXIT

start_prometheus || exit 1
pids+=("$prom_pid")
start_rwexport_server --lateness="$lateness" --log_level=warning || exit 1

run="live-$(date +%s)"
cat > "$work/apm.json" <<JSON
[{"provider": "prometheus", "remoteWriteURL": "http://127.0.0.1:$prom_port/api/v1/write",
  "resampleRate": $rate, "includeTestRunId": true}]
JSON
: > "$work/results.json"
"$bin/client/rwexport" replay "$work/results.json" --follow --idle_timeout=5s \
  --flush_interval="$flush" --config="$work/apm.json" --test_run_id="$run" \
  --server="$server" > "$work/replay.out" 2> "$work/replay.err" &
replay_pid=$!
pids+=("$replay_pid")
for _ in $(seq 1 100); do grep -q "started export" "$work/replay.err" && break; sleep 0.1; done

/usr/bin/python3 - "$source_file" "$work/results.json" "$seconds" "$rate" \
  "http://127.0.0.1:$prom_port" "$run" <<'PY'
import datetime, json, math, sys, threading, time, urllib.parse, urllib.request

source, out_path, seconds, rate, prom, run = sys.argv[1:7]
seconds, rate = float(seconds), int(rate)

def parse(text):
    base, _, frac = text.rstrip("Z").partition(".")
    t = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float("0." + (frac or "0"))

docs = [json.loads(l) for l in open(source) if l.strip()]
points = [parse(d["data"]["time"]) for d in docs if d.get("type") == "Point"]
first, span = min(points), max(points) - min(points) + 1.0

written = []  # write times (s) of every sample
seen = {}     # window end (ms) -> first poll time (s) that saw it
done = threading.Event()

def poll():
    query = urllib.parse.quote('timestamp(k6_http_reqs_total{test_run_id="%s"})' % run)
    while not done.is_set():
        at = time.time()
        url = "%s/api/v1/query?query=%s&time=%.3f" % (prom, query, at + 60)
        try:
            result = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
        except Exception:
            result = []
        seen_at = time.time()
        for r in result:
            end_ms = int(round(float(r["value"][1]) * 1000))
            for e in range(end_ms, end_ms - 600 * 1000 * rate, -1000 * rate):
                if e in seen:
                    break
                seen[e] = seen_at
        time.sleep(0.05)

poller = threading.Thread(target=poll)
poller.start()
start = time.time()
with open(out_path, "a") as out:
    for loop in range(int(math.ceil(seconds / span))):
        for d in docs:
            if d.get("type") != "Point":
                if loop == 0:
                    out.write(json.dumps(d) + "\n")
                continue
            due = start + loop * span + parse(d["data"]["time"]) - first
            if due - start > seconds:
                break
            delay = due - time.time()
            if delay > 0:
                out.flush()
                time.sleep(delay)
            now = time.time()
            d = dict(d, data=dict(d["data"], time=datetime.datetime.fromtimestamp(
                now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
            out.write(json.dumps(d) + "\n")
            written.append(now)
        out.flush()
# Wait for the last window to land: budget plus a margin.
deadline = time.time() + rate + 10
last_end = (math.floor(written[-1] * 1000 / (1000 * rate)) + 1) * 1000 * rate
while time.time() < deadline and last_end not in seen:
    time.sleep(0.1)
done.set()
poller.join()

latencies, missing = [], 0
for w in written:
    end = (math.floor(w * 1000 / (1000 * rate)) + 1) * 1000 * rate
    if end not in seen:
        missing += 1
        continue
    latencies.append(seen[end] - w)
latencies.sort()
def pct(p):
    return latencies[min(len(latencies) - 1, int(math.ceil(p / 100 * len(latencies))) - 1)]
windows = len([e for e in seen if e > written[0] * 1000])
print("samples written: %d over %.0f s, windows seen: %d, samples whose window never showed: %d"
      % (len(written), written[-1] - written[0], windows, missing))
print("latency from write to Prometheus storing the window (s): p50 %.3f  p90 %.3f  p99 %.3f  max %.3f"
      % (pct(50), pct(90), pct(99), latencies[-1]))
PY
lateness_s="$(/usr/bin/python3 -c "import sys; s=sys.argv[1]; print(float(s[:-2])/1000 if s.endswith('ms') else float(s.rstrip('s')))" "$lateness")"
flush_note="--flush_interval=$flush"
echo "budget: resampleRate $rate s + lateness $lateness_s s + 1.5 s = $(/usr/bin/python3 -c "print($rate + $lateness_s + 1.5)") s ($flush_note)"
wait "$replay_pid" || true
sed 's/^/replay: /' "$work/replay.out"
