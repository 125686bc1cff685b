"""A fleet on loopback for the fleet tests: N rwexport_server replicas (--replica_id r0, r1,
...) on fixed ports, so that a stopped replica comes back at the same address, and the real
HAProxy with the checked-in deploy/haproxy/rwexport.cfg in front (its FLEET_* environment
pointing at the replicas). Every process is stopped by the code that started it."""

import json
import os
import signal
import socket
import subprocess
import threading

import harness

HAPROXY_CFG = "deploy/haproxy/rwexport.cfg"
FINANCE = os.path.join(os.environ.get("RWEXPORT_TESTDATA", ""), "finance-run.json")


def prometheus_and_config(tmp):
    """What both fleet tests start with: checks that finance-run.json is there, starts a real
    Prometheus in `tmp` (the caller stops it) and writes the runs' export configuration (1 s
    windows into it, test run id as a label) to tmp/apm.json. Returns (prometheus, path)."""
    if not os.path.exists(FINANCE):
        raise AssertionError(f"k6 test data not found ({FINANCE!r}): set RWEXPORT_TESTDATA "
                             "to the directory holding finance-run.json")
    prometheus = harness.Prometheus(tmp)
    config = os.path.join(tmp, "apm.json")
    with open(config, "w") as f:
        json.dump([{"provider": "prometheus",
                    "remoteWriteURL": prometheus.url + "/api/v1/write",
                    "resampleRate": 1, "includeTestRunId": True}], f)
    return prometheus, config


class Replica:
    """One rwexport_server with --replica_id; stop() and start() again on the same ports."""

    def __init__(self, tmp, name, *flags):
        self.tmp = tmp
        self.name = name
        self.flags = flags
        self.grpc_port = harness.free_port()
        self.influx_port = harness.free_port()
        self.metrics_port = harness.free_port()
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.process = harness.Process(
            [harness.runfile("server/rwexport_server"), f"--listen={self.address}",
             f"--replica_id={self.name}", f"--influx_listen=127.0.0.1:{self.influx_port}",
             f"--metrics_listen=127.0.0.1:{self.metrics_port}", "--lateness=500ms",
             *self.flags],
            os.path.join(self.tmp, f"{self.name}.{self.starts}.log"))
        harness.wait_for(lambda: harness.http_get(self.metrics_url + "/-/ready")[0] == 200,
                         f"replica {self.name} ready")

    def terminate(self):
        """Sends SIGTERM and returns at once: the replica drains (NOT_SERVING) meanwhile."""
        self.process.proc.send_signal(signal.SIGTERM)

    def draining(self):
        """Still running after terminate()."""
        return self.process.proc.poll() is None

    def kill(self):
        """SIGKILL, as a crash or an OOM kill; waits for the exit."""
        self.process.proc.kill()
        self.process.stop()
        self.process = None

    def stop(self):
        """SIGTERM (exports flushed and delivered), then waits for the exit; returns its code."""
        code = self.process.stop()
        self.process = None
        return code

    def running(self):
        return self.process is not None


class HAProxy:
    """Debian's haproxy in the foreground with the checked-in configuration."""

    def __init__(self, tmp, replicas, extra_env=None, name="haproxy"):
        self.tmp = tmp
        self.grpc_port = harness.free_port()
        self.influx_port = harness.free_port()
        self.stats_port = harness.free_port()
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.influx_url = f"http://127.0.0.1:{self.influx_port}"
        # The runtime API on loopback TCP (a socket path in Bazel's sandbox is too long).
        self.api_port = harness.free_port()
        self.env = dict(os.environ, FLEET_GRPC_BIND=self.address,
                        FLEET_INFLUX_BIND=f"127.0.0.1:{self.influx_port}",
                        FLEET_STATS_BIND=f"127.0.0.1:{self.stats_port}",
                        FLEET_SOCKET=f"ipv4@127.0.0.1:{self.api_port}")
        for i, r in enumerate(replicas):
            self.env[f"FLEET_REPLICA_{i}"] = r.name
            self.env[f"FLEET_REPLICA_{i}_ADDR"] = r.address
            self.env[f"FLEET_REPLICA_{i}_INFLUX"] = f"127.0.0.1:{r.influx_port}"
        self.env.update(extra_env or {})
        self.config = harness.runfile(HAPROXY_CFG)
        checked = subprocess.run(["haproxy", "-c", "-f", self.config], env=self.env,
                                 capture_output=True, text=True)
        if checked.returncode != 0:
            raise AssertionError(f"haproxy -c: {checked.stdout}{checked.stderr}")
        self.process = harness.Process(["haproxy", "-db", "-f", self.config],
                                       os.path.join(tmp, f"{name}.log"), env=self.env)
        harness.wait_for(self._api_answers, "HAProxy's runtime API")

    def _api_answers(self):
        try:
            return "pxname" in self.command("show stat")
        except OSError:
            return False

    def command(self, line):
        """One command on the runtime API; its answer."""
        with socket.create_connection(("127.0.0.1", self.api_port), timeout=5) as s:
            s.sendall(line.encode() + b"\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self, backend="rwexport_grpc"):
        """{server name: status} of a backend, from `show stat` (UP, DOWN, MAINT, ...)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
                states[row["svname"]] = row["status"].split(" ")[0]
        return states

    def wait_states(self, expected, timeout=30.0):
        """Waits until every backend's servers are as `expected` ({name: "UP"|"DOWN"})."""
        def matches():
            return all(self.server_states(b).get(name) == state
                       for b in ("rwexport_grpc", "rwexport_influx")
                       for name, state in expected.items())
        harness.wait_for(matches, f"HAProxy to see {expected}", timeout=timeout)

    def stop(self):
        self.process.stop()


class SilentTarget:
    """A remote-write target on loopback that accepts requests and never answers them, so that
    a replica stopping with points for it drains for its whole delivery timeout."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/api/v1/write"
        self.connections = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.listener.close()
        for c in self.connections:
            c.close()
        self.thread.join(timeout=5)


class Fleet:
    """N replicas r0.. and HAProxy in front; a context manager that stops them all."""

    def __init__(self, tmp, replicas=3, flags=(), data_dirs=False, tag=""):
        """`data_dirs`: each replica gets --data_dir=<tmp>/data-<name>; `tag`: logs and data
        in the subdirectory <tmp>/<tag> (several fleets in one test)."""
        if tag:
            tmp = os.path.join(tmp, tag)
            os.makedirs(tmp, exist_ok=True)
        self.tmp = tmp
        self.replicas = {}
        self.haproxy = None
        try:
            for i in range(replicas):
                data = (f"--data_dir={os.path.join(tmp, f'data-r{i}')}",) if data_dirs else ()
                r = Replica(tmp, f"r{i}", *flags, *data)
                r.start()
                self.replicas[r.name] = r
            self.haproxy = HAProxy(tmp, list(self.replicas.values()))
            self.haproxy.wait_states({name: "UP" for name in self.replicas})
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.haproxy is not None:
            self.haproxy.stop()
        for r in self.replicas.values():
            if r.running():
                r.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def cli(*args, timeout=120):
    """Runs the rwexport CLI from the runfiles; returns (exit code, stdout, stderr)."""
    done = subprocess.run([harness.runfile("client/rwexport"), *args], capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr

