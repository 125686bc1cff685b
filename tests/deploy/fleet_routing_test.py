"""Routing in a fleet (README "Running a fleet"): 3 replicas (--replica_id r0, r1, r2) behind
the real HAProxy with the checked-in deploy/haproxy/rwexport.cfg, a real Prometheus as the
target. New runs are spread over every replica; every later call of a run (stream, status,
stop; influx writes by db) reaches its owner through HAProxy thanks to the rwexport-replica
header; a replica that does not own a run answers UNAVAILABLE naming the owner; with one
replica stopped, new runs go to the others and stay there after it returns.

FLEET_RUNS (default 9) runs, FLEET_PARALLEL (default 3) at once: scripts/fleet_test.sh runs
the same test with 30 runs."""

import collections
import concurrent.futures
import json
import os
import random
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import harness
from fleet import FINANCE, Fleet, prometheus_and_config, HAProxy, SilentTarget, cli
from rwexport_client import Client, RwexportError, export_owner

RUNS = int(os.environ.get("FLEET_RUNS", "9"))
PARALLEL = int(os.environ.get("FLEET_PARALLEL", "3"))
# finance-run.json's totals (shared/testdata/k6/SOURCES.md).
FINANCE_HTTP_REQS, FINANCE_ITERATIONS, FINANCE_SAMPLES = 60, 20, 802
# How long a stopping replica tries to deliver (--delivery_timeout): longer than HAProxy needs
# to see it NOT_SERVING (2 failed checks, 1 s apart, each waiting up to 1 s).
DRAIN_SECONDS = 15
# A run of the Python client: 20 k6_batch calls, 10 requests and 10 iterations each.
PY_BATCHES = 20


class FleetRoutingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.temp_dir()
        cls.prometheus, cls.config = prometheus_and_config(cls.tmp)
        try:
            cls.fleet = Fleet(cls.tmp, flags=(f"--influx_auto_export={cls.config}",
                                              "--influx_idle_stop=5m",
                                              f"--delivery_timeout={DRAIN_SECONDS}s"))
        except BaseException:
            cls.prometheus.__exit__()
            raise
        cls.haproxy = cls.fleet.haproxy

    @classmethod
    def tearDownClass(cls):
        cls.fleet.close()
        cls.prometheus.__exit__()

    # --- helpers ------------------------------------------------------------------------

    def start(self, run, config=None):
        """StartExport through HAProxy with the CLI; the export id."""
        code, out, err = cli("start", f"--server={self.haproxy.address}",
                             f"--config={config or self.config}", f"--test_run_id={run}")
        self.assertEqual(code, 0, err)
        return out.strip()

    def finance_run(self, run, export_id):
        """Replays finance-run.json into `export_id` through HAProxy, reads its status, stops it:
        every call with the routing header, so every one must reach the owner."""
        server = f"--server={self.haproxy.address}"
        code, out, err = cli("replay", FINANCE, server, f"--export_id={export_id}", "--json")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["stream"]["accepted"], FINANCE_SAMPLES, run)
        code, out, err = cli("status", export_id, server, "--json")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["samplesAccepted"], str(FINANCE_SAMPLES), run)
        code, out, err = cli("stop", export_id, server, "--json")
        self.assertEqual(code, 0, err)
        stopped = json.loads(out)
        self.assertEqual(stopped["samplesAccepted"], FINANCE_SAMPLES, run)
        self.assertEqual(stopped["pointsDropped"], 0, run)
        return run, FINANCE_HTTP_REQS, FINANCE_ITERATIONS

    def python_run(self, run, export_id):
        """The same with the Python client: stream, status, stop through HAProxy."""
        rng = random.Random(run)
        now = time.time_ns()
        samples = [s for k in range(PY_BATCHES)
                   for s in harness.k6_batch(now - (PY_BATCHES - k) * 100_000_000, rng)]
        with Client(self.haproxy.address) as client:
            self.assertEqual(client.stream(export_id, samples).accepted, len(samples))
            self.assertEqual(client.status(export_id).samples_accepted, len(samples))
            stopped = client.stop(export_id, delivery_timeout=20)
            self.assertEqual(stopped.samples_accepted, len(samples))
        return run, PY_BATCHES * 10, PY_BATCHES * 10

    def run_all(self, runs):
        """Every (run, export id): a finance replay (CLI) for two runs in three, a Python
        client run for the third, PARALLEL at once. Returns [(run, http_reqs, iterations)]."""
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            futures = [pool.submit(self.python_run if i % 3 == 2 else self.finance_run, run, id_)
                       for i, (run, id_) in enumerate(runs)]
            return [f.result() for f in futures]

    def query(self, promql):
        params = urllib.parse.urlencode({"query": promql, "time": time.time() + 60})
        status, body = harness.http_get(f"{self.prometheus.url}/api/v1/query?{params}")
        self.assertEqual(status, 200, body)
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def assert_totals(self, expected):
        for run, http_reqs, iterations in expected:
            sel = f'{{test_run_id="{run}"}}'
            self.assertEqual(self.query(f"sum(k6_http_reqs_total{sel})"), http_reqs, run)
            self.assertEqual(self.query(f"sum(k6_iterations_total{sel})"), iterations, run)

    # --- tests (unittest runs them in name order) -------------------------------------------

    def test_1_runs_spread_over_replicas_and_every_call_reaches_the_owner(self):
        runs = [(f"spread-{i}", self.start(f"spread-{i}")) for i in range(RUNS)]
        owners = collections.Counter(export_owner(id_) for _, id_ in runs)
        print(f"runs per replica: {dict(sorted(owners.items()))}")
        self.assertEqual(set(owners), {"r0", "r1", "r2"})
        self.assertLessEqual(max(owners.values()) - min(owners.values()), 1)
        self.assert_totals(self.run_all(runs))
        # `replay --config` starts the run itself (balanced), then streams and stops it at its
        # owner.
        code, out, err = cli("replay", FINANCE, f"--server={self.haproxy.address}",
                             f"--config={self.config}", "--test_run_id=self-started", "--json")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["stop"]["samplesAccepted"], FINANCE_SAMPLES)
        self.assert_totals([("self-started", FINANCE_HTTP_REQS, FINANCE_ITERATIONS)])
        for _, export_id in runs:  # started and stopped by its owner, nowhere else
            for name, r in self.fleet.replicas.items():
                self.assertEqual(f"export stopped export_id={export_id}" in r.process.log(),
                                 name == export_owner(export_id), export_id)

    def test_2_a_replica_that_does_not_own_a_run_answers_unavailable_naming_the_owner(self):
        export_id = self.start("not-mine")
        owner = export_owner(export_id)
        other = next(r for name, r in self.fleet.replicas.items() if name != owner)
        with Client(other.address) as direct:
            with self.assertRaises(RwexportError) as raised:
                direct.status(export_id)
        self.assertEqual(raised.exception.code.name, "UNAVAILABLE")
        self.assertIn(f"export {export_id} is owned by replica {owner}",
                      raised.exception.details)
        code, _, err = cli("stop", export_id, f"--server={other.address}")
        self.assertEqual(code, 1)
        self.assertIn(f"UNAVAILABLE: export {export_id} is owned by replica {owner}", err)
        # The influx write API of a non-owner: 503 naming the owner, and no export started.
        status, body = self.influx_write(f"http://127.0.0.1:{other.influx_port}", export_id)
        self.assertEqual(status, 503)
        self.assertIn(f"is owned by replica {owner}", body)
        # Through HAProxy, routed by db: every write reaches the owner.
        for _ in range(6):
            self.assertEqual(self.influx_write(self.haproxy.influx_url, export_id)[0], 204)
        code, out, err = cli("stop", export_id, f"--server={self.haproxy.address}", "--json")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["samplesAccepted"], 6)

    def test_2b_haproxy_serves_its_metrics_and_stats_page(self):
        base = f"http://127.0.0.1:{self.haproxy.stats_port}"
        status, body = harness.http_get(base + "/metrics")
        self.assertEqual(status, 200)
        self.assertIn('haproxy_backend_active_servers{proxy="rwexport_grpc"} 3', body)
        self.assertIn('haproxy_backend_active_servers{proxy="rwexport_influx"} 3', body)
        status, body = harness.http_get(base + "/stats")
        self.assertEqual(status, 200)
        self.assertIn("rwexport_grpc", body)

    def influx_write(self, base_url, db):
        line = f"http_reqs,name=home,method=GET,status=200 value=1 {time.time_ns()}\n"
        request = urllib.request.Request(
            f"{base_url}/write?db={db}&precision=ns", data=line.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_3_auto_export_dbs_stick_to_the_replica_of_their_first_write(self):
        # k6 --out influxdb=http://HAPROXY/<test run id>: the db names no owner; the first
        # write starts the export on one replica, and every later write follows it there.
        for db in ("auto-a", "auto-b", "auto-c"):
            for _ in range(5):
                self.assertEqual(self.influx_write(self.haproxy.influx_url, db)[0], 204, db)
            holders = {}
            for name, r in self.fleet.replicas.items():
                code, out, err = cli("ls", f"--server={r.address}", "--json")
                self.assertEqual(code, 0, err)
                for e in json.loads(out).get("exports", []):
                    if e["testRunId"] == db:
                        holders[name] = e
            self.assertEqual(len(holders), 1, f"{db}: {holders}")
            (export,) = holders.values()
            self.assertEqual(export["samplesAccepted"], "5", db)
            code, _, err = cli("stop", export["exportId"], f"--server={self.haproxy.address}")
            self.assertEqual(code, 0, err)

    def test_4_a_drained_replica_keeps_its_runs_and_takes_no_new_ones(self):
        owned = {}
        for i in range(12):
            export_id = self.start(f"drain-{i}")
            owned.setdefault(export_owner(export_id), export_id)
            if len(owned) == 3:
                break
        self.assertEqual(set(owned), {"r0", "r1", "r2"})
        for backend in ("rwexport_grpc", "rwexport_influx"):
            self.haproxy.command(f"set server {backend}/r0 state drain")
        try:
            new = [export_owner(self.start(f"drained-{i}")) for i in range(4)]
            self.assertNotIn("r0", new)
            self.assertEqual(set(new), {"r1", "r2"})
            for _ in range(3):  # r0's run still reaches r0
                code, out, err = cli("status", owned["r0"], f"--server={self.haproxy.address}")
                self.assertEqual(code, 0, err)
        finally:
            for backend in ("rwexport_grpc", "rwexport_influx"):
                self.haproxy.command(f"set server {backend}/r0 state ready")
        for export_id in owned.values():
            code, _, err = cli("stop", export_id, f"--server={self.haproxy.address}")
            self.assertEqual(code, 0, err)

    def test_5_runs_started_while_a_replica_is_down_stay_where_they_are(self):
        r2 = self.fleet.replicas["r2"]
        with SilentTarget() as silent:
            # A run of r2 whose points its target never takes: r2 drains for DRAIN_SECONDS.
            on_r2 = self.start_on("r2", silent.url)
            code, _, err = cli("replay", FINANCE, f"--server={self.haproxy.address}",
                               f"--export_id={on_r2}")
            self.assertEqual(code, 0, err)
            r2.terminate()
            self.haproxy.wait_states({"r0": "UP", "r1": "UP", "r2": "DOWN"})
            # HAProxy's gRPC health check took r2 out while it drains (NOT_SERVING), not
            # only once it is gone.
            self.assertTrue(r2.draining(), "r2 exited before HAProxy saw it NOT_SERVING")
            # A call of r2's run meanwhile: another replica answers, retryable.
            code, _, err = cli("status", on_r2, f"--server={self.haproxy.address}")
            self.assertEqual(code, 1)
            self.assertIn(f"UNAVAILABLE: export {on_r2} is owned by replica r2", err)
            self.assertEqual(r2.stop(), 0)
        runs = [(f"while-down-{i}", self.start(f"while-down-{i}"))
                for i in range(max(6, RUNS // 3))]
        owners = collections.Counter(export_owner(id_) for _, id_ in runs)
        print(f"runs started while r2 was down, per replica: {dict(sorted(owners.items()))}")
        self.assertEqual(set(owners), {"r0", "r1"})
        self.assertLessEqual(abs(owners["r0"] - owners["r1"]), 1)
        r2.start()
        self.haproxy.wait_states({"r0": "UP", "r1": "UP", "r2": "UP"})
        # r2 is back; the runs started without it keep their owners for every call.
        self.assert_totals(self.run_all(runs))
        # And r2 takes new runs again.
        back = [self.start(f"after-{i}") for i in range(6)]
        self.assertIn("r2", [export_owner(id_) for id_ in back])
        for export_id in back:
            code, _, err = cli("stop", export_id, f"--server={self.haproxy.address}")
            self.assertEqual(code, 0, err)

    def start_on(self, replica, url):
        """A new run with one target at `url`, started through HAProxy until `replica` owns
        one (the others are stopped again); its export id."""
        config = os.path.join(self.tmp, f"target-{replica}.json")
        with open(config, "w") as f:
            json.dump([{"provider": "prometheus", "remoteWriteURL": url}], f)
        for i in range(12):
            export_id = self.start(f"on-{replica}-{i}", config)
            if export_owner(export_id) == replica:
                return export_id
            code, _, err = cli("stop", export_id, f"--server={self.haproxy.address}")
            self.assertEqual(code, 0, err)
        self.fail(f"no run started on {replica} in 12 tries")

    def test_6_tls_to_haproxy(self):
        # The TLS variant of the configuration (FLEET_TLS_CERT): clients verify HAProxy's
        # certificate; routing is the same.
        cert = os.path.join(self.tmp, "haproxy-cert.pem")
        key = os.path.join(self.tmp, "haproxy-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        bundle = os.path.join(self.tmp, "haproxy-bundle.pem")
        with open(bundle, "w") as out, open(cert) as c, open(key) as k:
            out.write(c.read() + k.read())
        tls = HAProxy(self.tmp, list(self.fleet.replicas.values()),
                      extra_env={"FLEET_TLS_CERT": bundle}, name="haproxy-tls")
        try:
            tls.wait_states({name: "UP" for name in self.fleet.replicas})
            flags = [f"--server={tls.address}", f"--tls_ca_file={cert}"]
            owners = set()
            for i in range(3):
                code, out, err = cli("start", *flags, f"--config={self.config}",
                                     f"--test_run_id=tls-{i}")
                self.assertEqual(code, 0, err)
                export_id = out.strip()
                owners.add(export_owner(export_id))
                code, out, err = cli("status", export_id, *flags, "--json")
                self.assertEqual(code, 0, err)
                self.assertEqual(json.loads(out)["testRunId"], f"tls-{i}")
                code, _, err = cli("stop", export_id, *flags)
                self.assertEqual(code, 0, err)
            self.assertGreater(len(owners), 1)
            # Plaintext to the TLS listener fails.
            code, _, err = cli("ls", f"--server={tls.address}")
            self.assertEqual(code, 1, err)
            # TLS to the replicas too (FLEET_BACKEND_CA): a valid configuration (the replicas
            # here serve plaintext, so it is only checked).
            checked = subprocess.run(["haproxy", "-c", "-f", tls.config],
                                     env=dict(tls.env, FLEET_BACKEND_CA=cert),
                                     capture_output=True, text=True)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        finally:
            tls.stop()


if __name__ == "__main__":
    unittest.main()
