"""The Kubernetes manifests of deploy/kubernetes/, checked without a cluster: yamllint, the
fields Kubernetes requires, and that the pieces fit together (selectors and labels, probe
ports and container ports, the data volume and --data_dir, the replica id from the pod name,
the termination grace against the delivery timeout, scrape annotations, the HAProxy ConfigMap
equal to deploy/haproxy/rwexport.cfg and accepted by `haproxy -c`)."""

import glob
import os
import re
import subprocess
import unittest

import yaml

import harness

K8S = harness.runfile("deploy/kubernetes")
HAPROXY_CFG = harness.runfile("deploy/haproxy/rwexport.cfg")
# What each kind must have, beyond apiVersion, kind and metadata.name.
REQUIRED = {
    "Namespace": [],
    "Service": ["spec.selector", "spec.ports"],
    "StatefulSet": ["spec.serviceName", "spec.selector.matchLabels", "spec.template.spec",
                    "spec.volumeClaimTemplates"],
    "Deployment": ["spec.selector.matchLabels", "spec.template.spec"],
    "PodDisruptionBudget": ["spec.selector.matchLabels"],
    "ConfigMap": ["data"],
}


def get(doc, path):
    for key in path.split("."):
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def seconds(duration):
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, f"cannot read duration {duration!r}"
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


class KubernetesManifestsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = []
        for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
            with open(path) as f:
                cls.docs += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
        cls.by_kind = {}
        for _, d in cls.docs:
            cls.by_kind.setdefault(d["kind"], []).append(d)

    def one(self, kind, name):
        found = [d for d in self.by_kind.get(kind, []) if d["metadata"]["name"] == name]
        self.assertEqual(len(found), 1, f"{kind}/{name}")
        return found[0]

    def test_yamllint(self):
        done = subprocess.run(["yamllint", "-s", "-c", os.path.join(K8S, ".yamllint"), K8S],
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_required_fields_and_namespace(self):
        self.assertEqual(sorted(self.by_kind), sorted(REQUIRED))
        for file, d in self.docs:
            where = f"{file}: {d.get('kind')}/{get(d, 'metadata.name')}"
            for field in ["apiVersion", "kind", "metadata.name"] + REQUIRED[d["kind"]]:
                self.assertIsNotNone(get(d, field), f"{where}: {field} missing")
            if d["kind"] != "Namespace":
                self.assertEqual(get(d, "metadata.namespace"), "rwexport", where)

    def assert_pod_fits(self, workload):
        """Selector matches the pod's labels; every named probe port is a container port, and
        every numbered one (gRPC probes take numbers) too."""
        pod = workload["spec"]["template"]
        labels = pod["metadata"]["labels"]
        self.assertLessEqual(workload["spec"]["selector"]["matchLabels"].items(), labels.items())
        for c in pod["spec"]["containers"]:
            names = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in c:
                    continue
                port = next(v["port"] for k, v in c[probe].items() if isinstance(v, dict))
                if isinstance(port, str):
                    self.assertIn(port, names, f"{c['name']} {probe}")
                else:
                    self.assertIn(port, names.values(), f"{c['name']} {probe}")
        return labels, pod

    def assert_service_fits(self, service, labels, container):
        self.assertLessEqual(service["spec"]["selector"].items(), labels.items())
        names = {p["name"] for p in container["ports"]}
        for p in service["spec"]["ports"]:
            self.assertIn(p["targetPort"], names, service["metadata"]["name"])

    def test_replicas(self):
        sts = self.one("StatefulSet", "rwexport")
        labels, pod = self.assert_pod_fits(sts)
        (c,) = pod["spec"]["containers"]
        headless = self.one("Service", sts["spec"]["serviceName"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertTrue(headless["spec"]["publishNotReadyAddresses"])
        self.assert_service_fits(headless, labels, c)
        # gRPC probes against grpc.health.v1 on the gRPC port.
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["grpc"]["port"], 50051, probe)
        self.assertIn("--listen=0.0.0.0:50051", c["args"])
        # The data directory: a volume per replica, mounted where --data_dir points.
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        self.assertEqual(mounts[claim["metadata"]["name"]], "/var/lib/rwexport")
        self.assertIn("--data_dir=/var/lib/rwexport", c["args"])
        # The replica id is the pod's name (HAProxy's server names are the pod names).
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(get(env["RWEXPORT_REPLICA_ID"], "valueFrom.fieldRef.fieldPath"),
                         "metadata.name")
        # SIGTERM waits up to the delivery timeout plus 2 s: the grace must be longer, and
        # liveness must not kill a replica that drains (NOT_SERVING) for that long.
        delivery = seconds(next(a.split("=")[1] for a in c["args"]
                                if a.startswith("--delivery_timeout=")))
        grace = pod["spec"]["terminationGracePeriodSeconds"]
        self.assertGreater(grace, delivery + 2)
        live = c["livenessProbe"]
        self.assertGreater(live["periodSeconds"] * live["failureThreshold"], delivery + 2)
        # Prometheus scrapes the self-metrics port.
        notes = pod["metadata"]["annotations"]
        self.assertEqual(notes["prometheus.io/scrape"], "true")
        self.assertIn(int(notes["prometheus.io/port"]), [p["containerPort"] for p in c["ports"]])
        self.assertIn(f"--metrics_listen=0.0.0.0:{notes['prometheus.io/port']}", c["args"])
        # One replica at a time may be taken down voluntarily.
        pdb = self.one("PodDisruptionBudget", "rwexport")
        self.assertLessEqual(pdb["spec"]["selector"]["matchLabels"].items(), labels.items())
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)

    def test_haproxy_runs_the_tested_configuration(self):
        deployment = self.one("Deployment", "rwexport-haproxy")
        labels, pod = self.assert_pod_fits(deployment)
        (c,) = pod["spec"]["containers"]
        self.assert_service_fits(self.one("Service", "rwexport-router"), labels, c)
        config_map = self.one("ConfigMap", "rwexport-haproxy")
        with open(HAPROXY_CFG) as f:
            tested = f.read()
        self.assertEqual(config_map["data"]["rwexport.cfg"], tested,
                         "run deploy/kubernetes/gen-haproxy-configmap.sh")
        volume = next(v for v in pod["spec"]["volumes"] if "configMap" in v)
        self.assertEqual(volume["configMap"]["name"], "rwexport-haproxy")
        mount = next(m for m in c["volumeMounts"] if m["name"] == volume["name"])
        self.assertIn(os.path.join(mount["mountPath"], "rwexport.cfg"), c["args"])
        # HAProxy's server names are the StatefulSet's pod names, one per replica, and its
        # default addresses their headless-Service DNS names.
        sts = self.one("StatefulSet", "rwexport")
        pods = [f"rwexport-{i}" for i in range(sts["spec"]["replicas"])]
        for backend in ("rwexport_grpc", "rwexport_influx"):
            section = re.split(f"(?m)^backend {backend}$", tested)[1].split("\n\n")[0]
            servers = re.findall(r'server "\$\{FLEET_REPLICA_\d+-([^}]+)\}" "\$\{[A-Z0-9_]+-'
                                 r'([^}]+)\}"', section)
            self.assertEqual([s[0] for s in servers], pods, backend)
            for name, address in servers:
                self.assertTrue(address.startswith(
                    f"{name}.{sts['spec']['serviceName']}.rwexport.svc.cluster.local:"), address)
        # Its listeners are the container's ports.
        ports = {p["containerPort"] for p in c["ports"]}
        for bind in re.findall(r'bind "\$\{FLEET_[A-Z]+_BIND-:(\d+)\}"', tested):
            self.assertIn(int(bind), ports)
        # The ConfigMap's text is a valid configuration (default environment).
        env = dict(os.environ, FLEET_SOCKET=f"ipv4@127.0.0.1:{harness.free_port()}")
        done = subprocess.run(["haproxy", "-c", "-f", HAPROXY_CFG], env=env,
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)


if __name__ == "__main__":
    unittest.main()
