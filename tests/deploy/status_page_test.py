"""The status page at / of --metrics_listen, rendered by a real browser (Debian's headless
Chromium) while an export runs with a stream open: the DOM holds the export's figures, the
target's URL with its credentials redacted, no secret; a screenshot goes to the test outputs.
Also /-/healthy, /-/ready, /metrics (process_*, rwexport_build_info) and a 404."""

import os
import re
import threading
import time
import unittest

import harness
from rwexport_client import Client

SECRET = "s3cret-Pa55"


class StatusPageTest(unittest.TestCase):
    def test_page_in_chromium_during_export(self):
        tmp = harness.temp_dir()
        with harness.NullReceiver() as receiver, harness.Server(tmp) as server, \
                Client(server.address) as client:
            apm = [{"provider": "prometheus",
                    "remoteWriteURL": receiver.url(f"loadtest:{SECRET}@") + f"?api_key={SECRET}",
                    "metrics": [{"sourceMetric": "http_req_duration", "keepTags": ["name"]}],
                    "resampleRate": 1, "includeTestRunId": True}]
            export_id = client.start("checkout-soak-42", apm)

            # One stream that stays open while the browser looks: 5 batches, then it waits.
            release = threading.Event()
            sent = []

            def samples():
                rng = harness.random.Random(7)
                for _ in range(5):
                    batch = harness.k6_batch(time.time_ns(), rng, unknown=3)
                    sent.extend(batch)
                    yield from batch
                    time.sleep(0.1)
                release.wait(120)

            answer = {}
            streamer = threading.Thread(
                target=lambda: answer.update(r=client.stream(export_id, samples(), batch_size=74)))
            streamer.start()
            try:
                status = harness.wait_for(
                    lambda: (lambda s: s if s.samples_accepted == 5 * 71 and
                             s.figures[0].points_sent > 0 else None)(client.status(export_id)),
                    "the samples accepted and some points delivered")
                self.assertEqual(status.active_streams, 1)
                dom = harness.chromium("--dump-dom", server.metrics_url + "/")
                png = os.path.join(harness.outputs_dir(), "status_page.png")
                harness.chromium(f"--screenshot={png}", "--window-size=1400,900",
                                 "--hide-scrollbars", server.metrics_url + "/")
            finally:
                release.set()
                streamer.join(60)
            self.assertEqual(answer["r"].accepted, 5 * 71)
            self.assertEqual(answer["r"].rejected, 5 * 3)

            # The browser ran the page: the export and its figures are in the DOM.
            self.assertIn("<title>rwexport status</title>", dom)
            self.assertIn(f'data-export-id="{export_id}"', dom)
            self.assertIn("checkout-soak-42", dom)
            self.assertIn('<td class="state l">RUNNING</td>', dom)
            self.assertIn('<td class="streams">1</td>', dom)
            self.assertIn('<td class="samples-accepted">355</td>', dom)
            self.assertIn('<td class="rejected l">unknown_metric 15</td>', dom)
            self.assertIn('id="ready" class="ok">ready<', dom)
            self.assertRegex(dom, r'<td class="points-sent">[1-9][0-9,]*</td>')
            self.assertRegex(dom, r'<td class="series">[1-9][0-9,]*</td>')
            # Credentials redacted by the same rules as GetExport: never the secret.
            self.assertNotIn(SECRET, dom)
            url_cell = re.search(r'<td class="url l">([^<]*)</td>', dom).group(1)
            self.assertIn("REDACTED", url_cell)
            self.assertIn(f"127.0.0.1:{receiver.port}/api/v1/write", url_cell)
            self.assertGreater(os.path.getsize(png), 10000)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

            # The other endpoints of the listener.
            self.assertEqual(harness.http_get(server.metrics_url + "/-/healthy")[0], 200)
            self.assertEqual(harness.http_get(server.metrics_url + "/-/ready")[0], 200)
            self.assertEqual(harness.http_get(server.metrics_url + "/nope")[0], 404)
            code, metrics = harness.http_get(server.metrics_url + "/metrics")
            self.assertEqual(code, 200)
            for name in ["process_cpu_seconds_total", "process_resident_memory_bytes",
                         "process_open_fds", "process_max_fds", "process_start_time_seconds",
                         "process_virtual_memory_bytes", "rwexport_samples_accepted_total"]:
                self.assertRegex(metrics, rf"(?m)^{name} [0-9.e+]+$")
            self.assertRegex(metrics, r'(?m)^rwexport_build_info\{version="\d+\.\d+\.\d+",'
                                      r'revision="([0-9a-f]{12}(-dirty)?|unknown)",build_date="[0-9TZ:-]+"'
                                      r'\} 1$')
            self.assertNotIn(SECRET, metrics)
            start = float(re.search(r"(?m)^process_start_time_seconds (\S+)$", metrics)[1])
            self.assertLess(abs(start - time.time()), 120)
            client.stop(export_id, delivery_timeout=10)


if __name__ == "__main__":
    unittest.main()
