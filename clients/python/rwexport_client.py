"""A small Python client of rwexport_server's gRPC API (rwexport.v1.ExportService).

For an orchestration service: start an export from a k6 `apm` configuration, stream k6
samples into it, read its live status, stop it and get the delivery figures. The generated
modules `rwexport.v1.export_pb2` and `export_pb2_grpc` come from proto/ (Bazel target
//clients/python:stubs, or `protoc --python_out --grpc_python_out` by hand; see README.md).

    client = Client("127.0.0.1:50051")
    export_id = client.start("run-1", apm_targets)          # the k6 `apm` array
    client.stream(export_id, [Sample("http_reqs", 1.0, {"name": "home"})])
    print(client.status(export_id).samples_accepted)
    figures = client.stop(export_id)                        # StopExportResponse

Behind a fleet's router (README "Running a fleet"), every call about an existing export
(stream, status, stop) carries the `rwexport-replica` metadata naming the replica that owns it,
read from the export id; start() carries none, so the router balances new runs.
"""

import re
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import grpc
from google.protobuf import json_format

from rwexport.v1 import export_pb2, export_pb2_grpc

__all__ = ["Client", "Sample", "Metric", "RwexportError", "export_pb2", "export_owner",
           "REPLICA_HEADER"]

# The gRPC metadata that tells a router (HAProxy `use-server`) which replica owns an export.
REPLICA_HEADER = "rwexport-replica"
# "<replica>-<32 lowercase hex digits>": an export id of a replica started with --replica_id.
_OWNED_ID = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,62})-[0-9a-f]{32}$")


def export_owner(export_id: str) -> Optional[str]:
    """The replica that owns `export_id` (the part before the random suffix), or None for an id
    of a single server, which names no owner (see lib/export/ownership.h)."""
    match = _OWNED_ID.match(export_id)
    return match.group(1) if match else None


class RwexportError(Exception):
    """A call failed: `code` is the grpc.StatusCode, the message the server's."""

    def __init__(self, call: str, error: grpc.RpcError):
        self.code = error.code()
        self.details = error.details()
        super().__init__(f"{call}: {self.code.name}: {self.details}")


@dataclass
class Sample:
    """One k6 sample: metric name, value, tags; time in ns since the epoch (default: now)."""
    metric: str
    value: float
    tags: Dict[str, str] = field(default_factory=dict)
    time_unix_nano: Optional[int] = None


@dataclass
class Metric:
    """A custom metric's declaration: type counter|gauge|rate|trend, kind default|time|data."""
    name: str
    type: str
    kind: str = "default"


def targets_from_apm(apm: Sequence[dict]) -> List[export_pb2.Target]:
    """The k6 `ext.loadimpact.apm` array as Target messages. A metric entry may be a name or
    {sourceMetric, targetMetric, keepTags}, as in k6."""
    targets = []
    for entry in apm:
        entry = dict(entry)
        entry["metrics"] = [{"sourceMetric": m} if isinstance(m, str) else m
                            for m in entry.get("metrics", [])]
        targets.append(json_format.ParseDict(entry, export_pb2.Target()))
    return targets


class Client:
    """One channel to a server. Thread-safe as grpc channels are; close() when done."""

    def __init__(self, address: str, token: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, timeout: float = 30.0):
        if root_certificates is not None:
            self._channel = grpc.secure_channel(
                address, grpc.ssl_channel_credentials(root_certificates))
        else:
            self._channel = grpc.insecure_channel(address)
        self._stub = export_pb2_grpc.ExportServiceStub(self._channel)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _routed(self, export_id: str):
        """The call's metadata for an existing export: the token, and the routing header
        naming the export's owner so that a router sends the call to that replica."""
        owner = export_owner(export_id)
        return self._metadata + [(REPLICA_HEADER, owner)] if owner else self._metadata

    def _call(self, name, method, request, timeout=None, export_id=""):
        try:
            return method(request, metadata=self._routed(export_id),
                          timeout=timeout or self._timeout)
        except grpc.RpcError as error:
            raise RwexportError(name, error) from None

    def start(self, test_run_id: str, apm: Sequence[dict]) -> str:
        """StartExport; returns the export id. `apm`: k6's apm array (dicts)."""
        request = export_pb2.StartExportRequest(test_run_id=test_run_id,
                                                targets=targets_from_apm(apm))
        return self.start_request(request).export_id

    def start_request(self, request: export_pb2.StartExportRequest):
        """StartExport with a request built by hand; returns StartExportResponse (with the
        metric entries skipped per target)."""
        return self._call("StartExport", self._stub.StartExport, request)

    def stream(self, export_id: str, samples: Iterable[Sample],
               metrics: Sequence[Metric] = (), batch_size: int = 1000):
        """One StreamSamples call: sends `samples` in batches of `batch_size` (custom metrics
        declared in the first batch) and returns the StreamSamplesResponse (accepted and
        rejected counts)."""
        def batches():
            batch = export_pb2.SampleBatch(export_id=export_id)
            for m in metrics:
                batch.metrics.add(name=m.name, type=export_pb2.MetricType.Value(m.type.upper()),
                                  kind=export_pb2.ValueKind.Value(m.kind.upper()))
            count = 0
            for s in samples:
                sample = batch.samples.add(metric=s.metric, value=s.value,
                                           time_unix_nano=s.time_unix_nano or time.time_ns())
                for key, value in s.tags.items():
                    sample.tags.add(key=key, value=value)
                count += 1
                if count == batch_size:
                    yield batch
                    batch = export_pb2.SampleBatch(export_id=export_id)
                    count = 0
            if count or len(batch.metrics):
                yield batch
        try:
            return self._stub.StreamSamples(batches(), metadata=self._routed(export_id))
        except grpc.RpcError as error:
            raise RwexportError("StreamSamples", error) from None

    def status(self, export_id: str) -> export_pb2.ExportStatus:
        """GetExport: state, streams, samples and per-target delivery figures, live."""
        return self._call("GetExport", self._stub.GetExport,
                          export_pb2.GetExportRequest(export_id=export_id), export_id=export_id)

    def list(self) -> List[export_pb2.ExportStatus]:
        """ListExports: the running exports, oldest first."""
        return list(self._call("ListExports", self._stub.ListExports,
                               export_pb2.ListExportsRequest()).exports)

    def stop(self, export_id: str, delivery_timeout: float = 30.0):
        """StopExport: flushes, waits (at most `delivery_timeout` s) for delivery; returns the
        StopExportResponse with per-target figures."""
        request = export_pb2.StopExportRequest(export_id=export_id,
                                               delivery_timeout_ms=int(delivery_timeout * 1000))
        return self._call("StopExport", self._stub.StopExport, request,
                          timeout=delivery_timeout + self._timeout, export_id=export_id)
