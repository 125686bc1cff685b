"""Every query of the Grafana dashboards in deploy/grafana/ returns data of the expected shape
from a real Prometheus fed by a real load: rwexport_server exports two test runs (per-stat
Trend series, and native histograms) into Prometheus by remote write, plus a target that
answers 404 (drops); Prometheus scrapes the server's /metrics every second. A panel query
that returns nothing fails the test, as do template variables that find no values."""

import json
import math
import os
import re
import threading
import time
import unittest

import harness
from rwexport_client import Client

RUNS = ["run-stats", "run-native"]


def metrics_config():
    return [{"sourceMetric": "http_reqs", "keepTags": ["name"]},
            {"sourceMetric": "http_req_duration", "keepTags": ["name"]},
            {"sourceMetric": "http_req_failed", "keepTags": ["name"]},
            {"sourceMetric": "checks", "keepTags": ["check"]},
            "vus", "data_sent", "data_received", "iterations"]


def substitute(expr, span_seconds):
    values = {"$test_run_id": "|".join(RUNS), "$job": "rwexport", "$instance": ".*",
              "$__rate_interval": "5s", "$__range": f"{span_seconds}s", "$__interval": "1s"}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def grouping_labels(expr):
    labels = set()
    for group in re.findall(r"\bby \(([^)]*)\)", expr):
        labels.update(l.strip() for l in group.split(",") if l.strip() and l.strip() != "le")
    return labels


EXPECTED_VALUES = {  # label -> values every query grouping by it must show
    "name": {"home", "api"},
    "test_run_id": None,  # checked against RUNS below
}


class DashboardsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = harness.temp_dir()
        cls.server = harness.Server(cls.tmp)
        cls.prometheus = harness.Prometheus(
            cls.tmp, scrape_targets=[f"127.0.0.1:{cls.server.metrics_port}"])
        cls.start = time.time() - 2
        with Client(cls.server.address) as client:
            exports = []
            for run in RUNS:
                native = run == "run-native"
                targets = [{"provider": "prometheus",
                            "remoteWriteURL": cls.prometheus.url + "/api/v1/write",
                            "metrics": metrics_config(), "includeDefaultMetrics": False,
                            "includeTestRunId": True, "resampleRate": 1,
                            "nativeHistograms": native}]
                if not native:  # a target that refuses everything: drops by reason
                    targets.append({"provider": "prometheus",
                                    "remoteWriteURL": cls.prometheus.url + "/api/v1/nope",
                                    "metrics": ["vus"], "includeDefaultMetrics": False})
                exports.append(client.start(run, targets))
            threads = [threading.Thread(target=harness.stream_load,
                                        args=(client, e, 8, 2, i)) for i, e in enumerate(exports)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)
            # Let Prometheus scrape the exports' figures after their last windows went out.
            time.sleep(3)  # noqa: scrapes are what is awaited; 3 scrape intervals
            for e in exports:
                stopped = client.stop(e, delivery_timeout=10)
                assert stopped.targets[0].points_sent > 0, stopped
        cls.end = time.time() + 1
        # The last scrape and remote write are in: the newest series are queryable.
        harness.wait_for(lambda: cls.prometheus.query_range(
            'rwexport_exports_stopped_total == 2', cls.start, time.time()), "a scrape after the stops")
        cls.end = time.time()

    @classmethod
    def tearDownClass(cls):
        cls.prometheus.__exit__()
        cls.server.__exit__()

    def check_dashboard(self, filename, min_panels):
        dashboard = json.loads(harness.read(harness.runfile(f"deploy/grafana/{filename}")))
        panels = dashboard["panels"]
        self.assertGreaterEqual(len(panels), min_panels)
        self.assertEqual(len({p["id"] for p in panels}), len(panels), "panel ids unique")
        span = int(self.end - self.start) + 1
        checked = 0
        for panel in panels:
            self.assertEqual(panel["datasource"]["uid"], "${datasource}", panel["title"])
            self.assertTrue(panel["targets"], panel["title"])
            for target in panel["targets"]:
                expr = substitute(target["expr"], span)
                with self.subTest(panel=panel["title"], query=expr):
                    series = self.prometheus.query_range(expr, self.start, self.end)
                    self.assertTrue(series, "no data")
                    finite = [float(v) for s in series for _, v in s.get("values", [])
                              if not math.isnan(float(v)) and not math.isinf(float(v))]
                    self.assertTrue(finite, "only NaN")
                    for label in grouping_labels(expr):
                        got = {s["metric"].get(label) for s in series}
                        self.assertNotIn(None, got, f"series without {label}")
                        if label == "name":
                            self.assertEqual(got, {"home", "api"})
                        if label == "test_run_id":
                            self.assertTrue(got <= set(RUNS), got)
                        if label == "reason":
                            self.assertTrue(got & {"unknown_metric", "http_404"}, got)
                    checked += 1
        # Template variables find values.
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["query"]["query"])
            self.assertIsNotNone(m, variable["query"])
            match = substitute(m.group(1), span)
            status, body = harness.http_get(
                f"{self.prometheus.url}/api/v1/label/{m.group(2)}/values?"
                + harness.urllib.parse.urlencode({"match[]": match}))
            self.assertEqual(status, 200, body)
            self.assertTrue(json.loads(body)["data"], f"variable {variable['name']}: no values")
        return checked

    def test_k6_results_dashboard(self):
        checked = self.check_dashboard("k6-results.json", 10)
        self.assertGreaterEqual(checked, 18)
        # Both shapes of Trend data are in the dashboard and were answered.
        text = harness.read(harness.runfile("deploy/grafana/k6-results.json"))
        self.assertIn("k6_http_req_duration_p99", text)
        self.assertIn("k6_http_req_duration_seconds", text)

    def test_rwexport_dashboard(self):
        checked = self.check_dashboard("rwexport.json", 12)
        self.assertGreaterEqual(checked, 20)

    def test_provisioning_points_at_the_packaged_dashboards(self):
        text = harness.read(harness.runfile("deploy/grafana/provisioning.yaml"))
        self.assertIn("path: /usr/share/rwexport/grafana", text)
        self.assertIn("apiVersion: 1", text)


if __name__ == "__main__":
    unittest.main()
