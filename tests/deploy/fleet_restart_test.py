"""Restarts and failures in a fleet (README "Running a fleet"): 3 replicas (--replica_id r0, r1,
r2), each with its own --data_dir, behind the real HAProxy with the checked-in
deploy/haproxy/rwexport.cfg, a real Prometheus as the target. Test runs stream through HAProxy
with the acknowledged RPC (IngestSamples): replays of finance-run.json with the CLI
(`rwexport replay -`, the file's lines fed at about ten times its pace, timestamps shifted to
now) and generated runs with the Python client's AckedStream.

- sigkill: a third of the runs start; r1 is SIGKILLed while they stream; once HAProxy has
  marked it down a second third starts (they must all go to r0 and r2); r1 is started again on
  its data directory; the last third starts. Every run ends with exact totals in Prometheus,
  runs of r0 and r2 never resume, and the report prints per replica the runs it served and the
  pause the kill caused (from the kill to the first ack of each resumed run).
- rolling: a third of the runs starts before each of r0, r1, r2 in turn gets SIGTERM and is
  started again once it exited (its data directory keeps its exports across the graceful
  stop); every run ends with exact totals, a run resumes only while its own replica restarts,
  and the report prints the pause each restart caused.

FLEET_MODE=sigkill|rolling|all (default all), FLEET_RUNS (default 9) runs in total, all at
once per phase: scripts/fleet_test.sh runs it with 30."""

import calendar
import collections
import concurrent.futures
import json
import os
import random
import re
import subprocess
import threading
import time
import unittest
import urllib.parse

import harness
from fleet import FINANCE, Fleet, prometheus_and_config, cli
from rwexport_client import Client, RwexportError, export_owner

MODE = os.environ.get("FLEET_MODE", "all")
RUNS = int(os.environ.get("FLEET_RUNS", "9"))
# finance-run.json's totals (shared/testdata/k6/SOURCES.md).
FINANCE_HTTP_REQS, FINANCE_ITERATIONS, FINANCE_SAMPLES = 60, 20, 802
# How long a run streams: finance-run.json's 61 s fed in FEED_SECONDS; the Python runs send
# PY_BATCHES k6_batch (10 requests, 10 iterations each) every PY_INTERVAL s.
FEED_SECONDS = 6.0
PY_BATCHES, PY_INTERVAL = 24, 0.25
# Calls other than the stream (start, stop) are retried on UNAVAILABLE for this long.
RETRY_SECONDS = 60


def retrying(call, what):
    """call() until it does not raise an UNAVAILABLE RwexportError (an owner restarting)."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return call()
        except RwexportError as e:
            if e.code.name != "UNAVAILABLE" or time.monotonic() > deadline:
                raise AssertionError(f"{what}: {e}") from None
        time.sleep(0.5)


def cli_retrying(*args):
    """The CLI until it does not fail with UNAVAILABLE; (stdout, stderr)."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        code, out, err = cli(*args)
        if code == 0:
            return out, err
        if "UNAVAILABLE" not in err or time.monotonic() > deadline:
            raise AssertionError(f"rwexport {args[0]}: exit {code}: {err}")
        time.sleep(0.5)


def rfc3339(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + \
        f".{ns % 10**9:09d}Z"


def finance_lines(end_ns):
    """finance-run.json's lines with their times shifted so that the run ends at end_ns, and
    the shifted time of each line (None for metric declarations)."""
    stamp = re.compile(r'"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z"')

    def ns_of(m):
        return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) * 10**9 + \
            int((m.group(2) or "").ljust(9, "0"))

    with open(FINANCE) as f:
        lines = f.read().splitlines()
    last = max(ns_of(m) for m in map(stamp.search, lines) if m)
    shift = end_ns - last
    out = []
    for line in lines:
        m = stamp.search(line)
        if not m:
            out.append((line, None))
            continue
        t = ns_of(m) + shift
        out.append((line[:m.start()] + f'"time":"{rfc3339(t)}"' + line[m.end():], t))
    return out


class Run:
    """One test run's record: its owner, what Prometheus must hold, its resumes."""

    def __init__(self, name, kind, phase):
        self.name, self.kind, self.phase = name, kind, phase
        self.export_id = None
        self.owner = None
        self.http_reqs = self.iterations = 0
        self.resume_times = []  # time.time() of the first ack of each resumed call
        self.stream_started = self.stream_ended = None


class FleetRestartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.temp_dir()
        cls.prometheus, cls.config = prometheus_and_config(cls.tmp)
        with open(cls.config) as f:
            cls.apm = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.prometheus.__exit__()

    # --- one run ----------------------------------------------------------------------------

    def run_one(self, run, haproxy):
        with Client(haproxy.address) as client:
            if run.kind == "cli":
                out, _ = cli_retrying("start", f"--server={haproxy.address}",
                                      f"--config={self.config}", f"--test_run_id={run.name}")
                run.export_id = out.strip()
            else:
                run.export_id = retrying(lambda: client.start(run.name, self.apm), run.name)
            run.owner = export_owner(run.export_id)
            run.stream_started = time.time()
            if run.kind == "cli":
                self.cli_stream(run, haproxy)
                out, _ = cli_retrying("stop", run.export_id, f"--server={haproxy.address}",
                                      "--json")
                stopped = json.loads(out)
                self.assertEqual(stopped["samplesAccepted"], FINANCE_SAMPLES, run.name)
                self.assertEqual(stopped["pointsDropped"], 0, run.name)
                run.http_reqs, run.iterations = FINANCE_HTTP_REQS, FINANCE_ITERATIONS
            else:
                sent = self.python_stream(run, client)
                stopped = retrying(lambda: client.stop(run.export_id, delivery_timeout=20),
                                   run.name)
                self.assertEqual(stopped.samples_accepted, sent, run.name)
                self.assertEqual(sum(t.points_dropped for t in stopped.targets), 0, run.name)
                run.http_reqs = run.iterations = PY_BATCHES * 10
        return run

    def cli_stream(self, run, haproxy):
        """`rwexport replay -` fed finance-run.json over FEED_SECONDS; stderr lines stamped."""
        start = time.time_ns()
        lines = finance_lines(start + int(FEED_SECONDS * 1e9))
        first = next(t for _, t in lines if t is not None)
        proc = subprocess.Popen(
            [harness.runfile("client/rwexport"), "replay", "-", f"--server={haproxy.address}",
             f"--export_id={run.export_id}", "--flush_interval=200ms", "--resume_timeout=60s",
             "--json"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        errors = []

        def read_stderr():
            for line in proc.stderr:
                errors.append(line)
                if "resumed stream" in line:
                    run.resume_times.append(time.time())

        reader = threading.Thread(target=read_stderr)
        reader.start()
        try:
            # Each line is written once its (shifted) time has passed, at ten times its pace.
            for line, t in lines:
                if t is not None:
                    due = start + (t - first) / 10
                    delay = (due - time.time_ns()) / 1e9
                    if delay > 0:
                        time.sleep(delay)
                try:
                    proc.stdin.write(line + "\n")
                    proc.stdin.flush()
                except BrokenPipeError:
                    break  # the CLI ended: its exit code and stderr say why
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            out = proc.stdout.read()
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join()
            proc.stdout.close()
            proc.stderr.close()
        run.stream_ended = time.time()
        self.assertEqual(proc.returncode, 0, "".join(errors) + out)
        self.assertEqual(json.loads(out)["input"]["samples"], FINANCE_SAMPLES)

    def python_stream(self, run, client):
        """PY_BATCHES k6_batch through an AckedStream, one every PY_INTERVAL s."""
        rng = random.Random(run.name)
        stream = client.acked_stream(run.export_id, resume_timeout=60)
        sent = 0
        try:
            for _ in range(PY_BATCHES):
                batch = harness.k6_batch(time.time_ns(), rng)
                stream.send(batch)
                sent += len(batch)
                time.sleep(PY_INTERVAL)
            stream.finish()
        except RwexportError as e:
            raise AssertionError(f"{run.name} on {run.owner} ({run.export_id}), resumed at "
                                 f"{stream.resume_times}: {e}\n" +
                                 "\n".join(stream.events)) from None
        run.resume_times = list(stream.resume_times)
        run.stream_ended = time.time()
        return sent

    # --- checks and report ------------------------------------------------------------------

    def query(self, promql):
        params = urllib.parse.urlencode({"query": promql, "time": time.time() + 60})
        status, body = harness.http_get(f"{self.prometheus.url}/api/v1/query?{params}")
        self.assertEqual(status, 200, body)
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def assert_totals(self, runs):
        for run in runs:
            sel = f'{{test_run_id="{run.name}"}}'
            self.assertEqual(self.query(f"sum(k6_http_reqs_total{sel})"), run.http_reqs,
                             f"{run.name} ({run.kind} on {run.owner})")
            self.assertEqual(self.query(f"sum(k6_iterations_total{sel})"), run.iterations,
                             f"{run.name} ({run.kind} on {run.owner})")

    def assert_owner_logs(self, fleet, runs):
        """Each run was stopped by its owner, in no other replica's logs."""
        logs = collections.defaultdict(str)
        for name in fleet.replicas:
            for start in range(1, fleet.replicas[name].starts + 1):
                logs[name] += harness.read(os.path.join(fleet.tmp, f"{name}.{start}.log"))
        for run in runs:
            for name, log in logs.items():
                self.assertEqual(f"export stopped export_id={run.export_id}" in log,
                                 name == run.owner, f"{run.name} in {name}'s log")

    def report(self, title, runs, pauses):
        served = collections.Counter(r.owner for r in runs)
        kinds = collections.Counter((r.owner, r.kind) for r in runs)
        print(f"\n{title}: {len(runs)} runs")
        for name in sorted(served):
            line = (f"  {name}: served {served[name]} runs ({kinds[(name, 'cli')]} CLI replays, "
                    f"{kinds[(name, 'python')]} Python runs)")
            if name in pauses:
                values = pauses[name]
                if values:
                    line += (f"; pause max {max(values):.1f} s (min {min(values):.1f} s) "
                             f"over the {len(values)} runs that resumed")
                else:
                    line += "; no run was streaming at the restart"
            print(line)

    # --- tests ----------------------------------------------------------------------------

    def fleet(self, tag):
        return Fleet(self.tmp, flags=("--delivery_timeout=15s",), data_dirs=True, tag=tag)

    def launch(self, pool, runs, phase, count, first_index, haproxy, prefix):
        futures = []
        for i in range(first_index, first_index + count):
            run = Run(f"{prefix}-{i}", "python" if i % 3 == 2 else "cli", phase)
            runs.append(run)
            futures.append(pool.submit(self.run_one, run, haproxy))
        return futures

    @unittest.skipUnless(MODE in ("sigkill", "all"), "FLEET_MODE")
    def test_sigkill_a_replica_mid_run_and_restart_it(self):
        third = max(3, RUNS // 3)
        runs = []
        with self.fleet("k") as fleet, \
                concurrent.futures.ThreadPoolExecutor(3 * third) as pool:
            haproxy, victim = fleet.haproxy, fleet.replicas["r1"]
            futures = self.launch(pool, runs, "before", third, 0, haproxy, "kill")
            # Kill r1 once every first-phase run is streaming and some have a few acks.
            harness.wait_for(lambda: all(r.stream_started for r in runs), "runs streaming")
            time.sleep(2)
            streaming_on_victim = [r for r in runs if r.owner == "r1" and not r.stream_ended]
            killed_at = time.time()
            victim.kill()
            haproxy.wait_states({"r0": "UP", "r1": "DOWN", "r2": "UP"})
            down_at = time.time()
            futures += self.launch(pool, runs, "while down", third, third, haproxy, "kill")
            harness.wait_for(lambda: all(r.owner for r in runs), "the second third started")
            victim.start()
            haproxy.wait_states({"r0": "UP", "r1": "UP", "r2": "UP"})
            up_at = time.time()
            futures += self.launch(pool, runs, "after", RUNS - 2 * third, 2 * third, haproxy,
                                   "kill")
            for f in futures:
                f.result()
            print(f"\nr1 SIGKILLed; HAProxy marked it down {down_at - killed_at:.1f} s later; "
                  f"up again {up_at - killed_at:.1f} s after the kill")
            pauses = {"r1": [min(r.resume_times) - killed_at for r in runs
                             if r.owner == "r1" and r.resume_times]}
            self.report("sigkill", runs, pauses)
            for r in runs:
                print(f"  {r.name} {r.kind} {r.phase}: {r.owner}, resumed {len(r.resume_times)}")
            self.assertEqual({r.owner for r in runs}, {"r0", "r1", "r2"})
            # Runs started while r1 was down went to the others (and stayed there: every
            # call reached its owner, the totals below are exact).
            self.assertNotIn("r1", [r.owner for r in runs if r.phase == "while down"])
            # Only r1's runs resumed; r1's runs that streamed at the kill all did.
            self.assertEqual([r.name for r in runs if r.resume_times and r.owner != "r1"], [])
            self.assertGreater(len(streaming_on_victim), 0)
            for r in streaming_on_victim:
                if r.stream_ended is not None and r.stream_ended > killed_at:
                    self.assertTrue(r.resume_times, f"{r.name} streamed on r1 at the kill")
            for r in runs:
                if r.resume_times:
                    self.assertIn(f"export recovered from the data dir export_id={r.export_id}",
                                  victim.process.log())
            self.assert_owner_logs(fleet, runs)
        self.assert_totals(runs)

    @unittest.skipUnless(MODE in ("rolling", "all"), "FLEET_MODE")
    def test_rolling_sigterm_restarts_of_every_replica(self):
        runs = []
        restarts = {}
        with self.fleet("r") as fleet, concurrent.futures.ThreadPoolExecutor(RUNS) as pool:
            haproxy = fleet.haproxy
            futures = []
            # A third of the runs starts before each restart, so that each replica restarts
            # while runs stream on it.
            for i, name in enumerate(("r0", "r1", "r2")):
                count = RUNS // 3 if i < 2 else RUNS - 2 * (RUNS // 3)
                futures += self.launch(pool, runs, f"before {name}", count, len(runs), haproxy,
                                       "roll")
                harness.wait_for(lambda: all(r.stream_started for r in runs), "runs streaming")
                time.sleep(1.5)
                replica = fleet.replicas[name]
                stopped_at = time.time()
                self.assertEqual(replica.stop(), 0, name)
                replica.start()
                haproxy.wait_states({n: "UP" for n in fleet.replicas})
                restarts[name] = (stopped_at, time.time())
            for f in futures:
                f.result()
            pauses = {name: [min(t for t in r.resume_times if t >= stopped_at) - stopped_at
                             for r in runs
                             if r.owner == name and any(t >= stopped_at for t in r.resume_times)]
                      for name, (stopped_at, _) in restarts.items()}
            for name, (stopped_at, up_at) in restarts.items():
                print(f"{name}: SIGTERM, exited and back up in {up_at - stopped_at:.1f} s")
            self.report("rolling", runs, pauses)
            # A run resumed only while its own replica restarted (the others' runs were not
            # affected), and some did.
            for r in runs:
                stopped_at, up_at = restarts[r.owner]
                for t in r.resume_times:
                    self.assertTrue(stopped_at <= t <= up_at + 10,
                                    f"{r.name} on {r.owner} resumed outside its restart")
            self.assertGreater(sum(len(v) for v in pauses.values()), 0)
            for r in runs:  # a resumed run's export outlived the SIGTERM
                if r.resume_times:
                    self.assertIn(f"export recovered from the data dir export_id={r.export_id}",
                                  harness.read(os.path.join(fleet.tmp, f"{r.owner}.2.log")))
            self.assert_owner_logs(fleet, runs)
        self.assert_totals(runs)


if __name__ == "__main__":
    unittest.main()
