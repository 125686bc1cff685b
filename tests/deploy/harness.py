"""Processes for the deploy tests: the real rwexport_server binary, a real Prometheus, a
remote-write receiver answering 204, and a k6-like load streamed through the Python client.
Every process a test starts is stopped by the test (context managers); loopback only."""

import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from rwexport_client import Client, Sample

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", ""), "rwexport")


def runfile(path):
    return os.path.join(RUNFILES, path)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def wait_for(predicate, what, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Process:
    """A child process, stopped with SIGTERM (then SIGKILL) on exit; its log in a file."""

    def __init__(self, argv, log_path, env=None):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log(self):
        return read(self.log_path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class Server:
    """rwexport_server from the runfiles with --metrics_listen; ready when /-/ready says so."""

    def __init__(self, tmp, *flags):
        self.tmp = tmp
        self.metrics_port = free_port()
        port_file = os.path.join(tmp, "server.port")
        self.process = Process(
            [runfile("server/rwexport_server"), "--listen=127.0.0.1:0",
             f"--port_file={port_file}", f"--metrics_listen=127.0.0.1:{self.metrics_port}",
             "--lateness=500ms", *flags],
            os.path.join(tmp, "server.log"))
        wait_for(lambda: os.path.exists(port_file) and read(port_file).strip(),
                 "the server's port file")
        self.address = f"127.0.0.1:{read(port_file).strip()}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        wait_for(lambda: http_get(self.metrics_url + "/-/ready")[0] == 200, "/-/ready")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        code = self.process.stop()
        if code != 0:
            print(self.process.log())
        assert code == 0, f"rwexport_server exited with {code}"


class Prometheus:
    """Debian's Prometheus with the remote-write receiver and native histograms, scraping
    `scrape_targets` every second."""

    def __init__(self, tmp, scrape_targets=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n")
            if scrape_targets:
                f.write("scrape_configs:\n  - job_name: rwexport\n    static_configs:\n"
                        f"      - targets: {json.dumps(list(scrape_targets))}\n")
        self.process = Process(
            ["/usr/bin/prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-remote-write-receiver", "--enable-feature=native-histograms"],
            os.path.join(tmp, "prometheus.log"))
        wait_for(lambda: http_get(self.url + "/-/ready")[0] == 200, "Prometheus ready")

    def query_range(self, promql, start, end, step=1):
        params = urllib.parse.urlencode(
            {"query": promql, "start": start, "end": end, "step": step})
        status, body = http_get(f"{self.url}/api/v1/query_range?{params}", timeout=30)
        answer = json.loads(body) if body else {}
        if status != 200:
            raise AssertionError(f"{promql}: HTTP {status}: {answer.get('error', body)}")
        return answer["data"]["result"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.stop()


class NullReceiver:
    """A remote-write endpoint on loopback that answers 204 and counts requests."""

    def __init__(self):
        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, userinfo=""):
        return f"http://{userinfo}127.0.0.1:{self.port}/api/v1/write"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


ENDPOINTS = ["home", "api"]


def k6_batch(now_ns, rng, unknown=0):
    """The samples k6 emits in 100 ms for 2 endpoints: requests (one in 10 failing), their
    durations, checks, VUs, data, iterations; plus `unknown` samples of an undeclared
    metric (rejected as unknown_metric)."""
    samples = []
    for i in range(10):
        t = now_ns - (10 - i) * 10_000_000
        name = ENDPOINTS[i % 2]
        failed = i == 9
        tags = {"name": name, "method": "GET", "status": "500" if failed else "200"}
        samples += [
            Sample("http_reqs", 1, tags, t),
            Sample("http_req_duration", rng.uniform(5, 50) * (3 if name == "api" else 1), tags, t),
            Sample("http_req_failed", 1 if failed else 0, tags, t),
            Sample("checks", 0 if failed else 1, {"check": "status is 200"}, t),
            Sample("data_sent", 120, {}, t),
            Sample("data_received", 2400, {}, t),
            Sample("iterations", 1, {}, t),
        ]
    samples.append(Sample("vus", 10, {}, now_ns))
    samples += [Sample("no_such_metric", 1, {}, now_ns) for _ in range(unknown)]
    return samples


def stream_load(client, export_id, seconds, unknown_per_batch=0, seed=1):
    """Streams k6_batch every 100 ms for `seconds` on one stream; returns the response."""
    rng = random.Random(seed)

    def samples():
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            yield from k6_batch(time.time_ns(), rng, unknown_per_batch)
            time.sleep(0.1)

    return client.stream(export_id, samples(), batch_size=71 + unknown_per_batch)


def temp_dir():
    return tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))


def outputs_dir():
    d = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or temp_dir()
    os.makedirs(d, exist_ok=True)
    return d


def chromium(*args, timeout=90):
    """Runs Debian's headless Chromium with a fresh profile; returns its stdout."""
    profile = temp_dir()
    try:
        argv = ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", *args]
        done = subprocess.run(argv, capture_output=True, timeout=timeout,
                              env=dict(os.environ, HOME=profile))
        if done.returncode != 0:
            raise AssertionError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout.decode(errors="replace")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
