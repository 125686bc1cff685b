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

For an agent that must not lose samples when the server restarts, ingest() (or AckedStream)
uses IngestSamples: numbered batches acknowledged once durable, resumed from the last ack on a
new call when a call breaks with UNAVAILABLE, so totals stay exact across a restart:

    result = client.ingest(export_id, samples, resume_timeout=60)   # IngestResult

Behind a fleet's router (README "Running a fleet"), every call about an existing export
(stream, ingest, status, stop) carries the `rwexport-replica` metadata naming the replica that
owns it, read from the export id; start() carries none, so the router balances new runs.
"""

import collections
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import grpc
from google.protobuf import json_format

from rwexport.v1 import export_pb2, export_pb2_grpc

__all__ = ["Client", "Sample", "Metric", "RwexportError", "export_pb2", "export_owner",
           "REPLICA_HEADER", "AckedStream", "IngestResult", "ResumeTimeout"]

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


class ResumeTimeout(RwexportError):
    """AckedStream gave up: no resumed call was answered within its resume timeout.
    `code` is DEADLINE_EXCEEDED; the message names the stream and the last error."""

    def __init__(self, message: str):  # pylint: disable=super-init-not-called
        self.code = grpc.StatusCode.DEADLINE_EXCEEDED
        self.details = message
        Exception.__init__(self, f"IngestSamples: DEADLINE_EXCEEDED: {message}")


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


@dataclass
class IngestResult:
    """What an acknowledged stream's server reported: accepted and rejected samples over the
    whole stream (the server's IngestAck.stream_accepted/stream_rejected, which also count
    batches whose ack a broken call lost; summed over the calls from a server that does not
    send them), rejections by reason of the calls that ended normally, and how many times the
    stream resumed."""
    accepted: int = 0
    rejected: int = 0
    rejections: Dict[str, int] = field(default_factory=dict)
    resumes: int = 0


def _samples_into(batch, samples: Iterable[Sample]) -> int:
    count = 0
    for s in samples:
        sample = batch.samples.add(metric=s.metric, value=s.value,
                                   time_unix_nano=s.time_unix_nano or time.time_ns())
        for key, value in s.tags.items():
            sample.tags.add(key=key, value=value)
        count += 1
    return count


def _metrics_into(batch, metrics: Sequence[Metric]) -> None:
    for m in metrics:
        batch.metrics.add(name=m.name, type=export_pb2.MetricType.Value(m.type.upper()),
                          kind=export_pb2.ValueKind.Value(m.kind.upper()))


def _retryable(error: grpc.RpcError) -> bool:
    """As lib/client/acked_stream.cc: UNAVAILABLE (the server stopping or gone); CANCELLED (an
    AckedStream never cancels its own calls, so the server did: gRPC cancels the calls still
    open when a stopping server ends); and a call a proxy (HAProxy) cut when the server behind
    it died: no trailers (UNKNOWN "No status received") or a received RST_STREAM."""
    details = error.details() or ""
    return (error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            or (error.code() == grpc.StatusCode.UNKNOWN and "No status received" in details)
            or "Received RST_STREAM" in details)


class _Call:
    """One IngestSamples call of an AckedStream; fields guarded by the stream's condition."""

    def __init__(self, number: int, resumed: bool, cause: str):
        self.number = number
        self.resumed = resumed
        self.cause = cause
        self.dead = False
        self.answered = False
        self.accepted = 0
        self.rejected = 0


class AckedStream:
    """Acknowledged, resumable ingest into one export (IngestSamples; the Python side of
    lib/client/acked_stream.h). send() numbers each batch 1, 2, ... and keeps it until the
    server acknowledges it (applied, and durable with --data_dir); at most the server's window
    of batches are unacknowledged (send() waits). When the call breaks with UNAVAILABLE (the
    server restarting or stopping, its replica down behind a router, the connection lost), with
    CANCELLED (a stopping server's gRPC cancels the calls still open), or is cut by a proxy
    whose server died (no status, or a received RST_STREAM), a new call is opened after a
    backoff (`initial_backoff` doubling to `max_backoff`, jittered to 50..100%), the
    declarations and every unacknowledged batch are sent again, and the server drops what it
    already has, so totals stay exact. Once `resume_timeout` s pass
    without a resumed call being answered, send()/finish() raise ResumeTimeout; another error
    code raises RwexportError at once.

    Every call carries the routing header naming the export's owner. `on_resume(line)` is
    called (on the stream's thread) at the first ack of each resumed call. Not for use by
    several threads at once; it runs one thread of its own per stream."""

    def __init__(self, client: "Client", export_id: str, metrics: Sequence[Metric] = (),
                 stream_id: Optional[str] = None, window: int = 32,
                 resume_timeout: float = 60.0, initial_backoff: float = 0.1,
                 max_backoff: float = 2.0, on_resume=None):
        self._client = client
        self.export_id = export_id
        self.stream_id = stream_id or "s-%032x" % random.getrandbits(128)
        self._metrics = list(metrics)
        self._resume_timeout = resume_timeout
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._on_resume = on_resume
        self._cv = threading.Condition()
        self._unacked = collections.deque()  # IngestRequest, oldest first
        self._window = max(1, window)
        self._next_sequence = 1
        self._acked_through = 0
        self._closing = False  # finish() called: half-close once everything is sent
        self._failure: Optional[RwexportError] = None
        self._result = IngestResult()
        # The highest of the server's counts over the whole stream (IngestAck.stream_accepted).
        self._stream_accepted = 0
        self._stream_rejected = 0
        self._thread: Optional[threading.Thread] = None
        # time.time() of the last ack, and of the first ack of each resumed call.
        self.last_ack_time: Optional[float] = None
        self.resume_times: List[float] = []
        # The last events of the stream (calls opened and ended, acks), for error reports.
        self.events = collections.deque(maxlen=64)

    @property
    def batches(self) -> int:
        """Batches numbered so far."""
        return self._next_sequence - 1

    @property
    def acked_through(self) -> int:
        with self._cv:
            return self._acked_through

    def send(self, samples: Iterable[Sample]) -> None:
        """Sends `samples` as the stream's next batch (the metrics are declared with the
        first); waits while the window is full. Raises once the stream cannot go on."""
        request = export_pb2.IngestRequest()
        if self._next_sequence == 1:
            _metrics_into(request.batch, self._metrics)
        _samples_into(request.batch, samples)
        with self._cv:
            while (len(self._unacked) >= self._window and self._failure is None):
                self._cv.wait()
            if self._failure is not None:
                raise self._failure
            request.sequence = self._next_sequence
            self._next_sequence += 1
            self._unacked.append(request)
            self._cv.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"ingest-{self.stream_id}",
                                            daemon=True)
            self._thread.start()

    def finish(self) -> IngestResult:
        """Half-closes once every batch is sent, waits until every batch is acknowledged, and
        returns the server's counts. Raises ResumeTimeout or RwexportError on failure."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._failure is not None:
            raise self._failure
        if self._stream_accepted + self._stream_rejected > 0:
            self._result.accepted = self._stream_accepted
            self._result.rejected = self._stream_rejected
        return self._result

    def _first_request(self, request, call: _Call):
        first = export_pb2.IngestRequest()
        first.CopyFrom(request)
        first.export_id = self.export_id
        first.stream_id = self.stream_id
        if call.resumed and request.sequence != 1:  # declarations of batch 1, again
            batch = export_pb2.SampleBatch()
            _metrics_into(batch, self._metrics)
            batch.MergeFrom(first.batch)
            first.batch.CopyFrom(batch)
        return first

    def _requests(self, call: _Call):
        """The call's requests: every unacknowledged batch, then new ones as they come; ends
        (half-close) once finish() was called and everything is sent, or when the call died."""
        with self._cv:
            next_sequence = self._acked_through + 1
            self.events.append(f"{time.time():.3f} call {call.number}: from batch "
                               f"{next_sequence}, numbered {self._next_sequence - 1}")
        first = True
        while True:
            with self._cv:
                # The first ack of a resumed call can acknowledge batches this call has not
                # sent yet (the server had them; their acks were lost): skip those.
                next_sequence = max(next_sequence, self._acked_through + 1)
                while not call.dead and next_sequence >= self._next_sequence \
                        and not self._closing:
                    self._cv.wait(0.2)
                    next_sequence = max(next_sequence, self._acked_through + 1)
                if call.dead or next_sequence >= self._next_sequence:
                    return
                request = self._unacked[next_sequence - self._unacked[0].sequence]
            yield self._first_request(request, call) if first else request
            first = False
            next_sequence += 1

    def _ack(self, ack, call: _Call) -> None:
        line = None
        with self._cv:
            now = time.time()
            if not call.answered and call.resumed:
                self.resume_times.append(now)
                line = (f"resumed stream {self.stream_id} at batch {ack.acked_through + 1} "
                        f"after {call.cause}")
            call.answered = True
            self.last_ack_time = now
            self.events.append(f"{now:.3f} call {call.number}: ack {ack.acked_through}")
            if ack.window > 0:
                self._window = ack.window
            self._acked_through = max(self._acked_through, ack.acked_through)
            while self._unacked and self._unacked[0].sequence <= self._acked_through:
                self._unacked.popleft()
            call.accepted, call.rejected = ack.accepted, ack.rejected
            self._stream_accepted = max(self._stream_accepted, ack.stream_accepted)
            self._stream_rejected = max(self._stream_rejected, ack.stream_rejected)
            for r in list(ack.rejections) + list(ack.declaration_errors):
                self._result.rejections[r.reason] = \
                    self._result.rejections.get(r.reason, 0) + r.count
            self._cv.notify_all()
        if line and self._on_resume:
            self._on_resume(line)

    def _run(self) -> None:
        backoff = self._initial_backoff
        failing_since = None
        cause = ""
        calls = 0
        while True:
            call = _Call(calls, resumed=calls > 0, cause=cause)
            calls += 1
            last = False
            error = None
            try:
                answers = self._client._stub.IngestSamples(
                    self._requests(call), metadata=self._client._routed(self.export_id))
                for ack in answers:
                    self._ack(ack, call)
                    if call.answered:
                        failing_since, backoff = None, self._initial_backoff
                    last = last or ack.last
            except grpc.RpcError as e:
                error = e
            with self._cv:
                call.dead = True
                self.events.append(f"{time.time():.3f} call {call.number}: ended " + (
                    f"{error.code().name}: {error.details()}" if error else "OK"))
                self._result.accepted += call.accepted
                self._result.rejected += call.rejected
                all_acked = not self._unacked and self._closing
                self._cv.notify_all()
            retryable = error is None or _retryable(error)
            # Done: the last ack, or everything acknowledged and only the final answer lost.
            if last or (all_acked and retryable):
                break
            if not retryable:
                self._fail(RwexportError("IngestSamples", error))
                return
            cause = (f"{error.code().name}: {error.details()}" if error is not None
                     else "UNAVAILABLE: the server ended the call early")
            if failing_since is None:
                failing_since = time.monotonic()
            left = self._resume_timeout - (time.monotonic() - failing_since)
            if left <= 0:
                self._fail(ResumeTimeout(
                    f"gave up resuming stream {self.stream_id} after {self._resume_timeout:g} s "
                    f"without progress; last error: {cause}"))
                return
            time.sleep(min(left, backoff * random.uniform(0.5, 1.0)))
            backoff = min(backoff * 2, self._max_backoff)
            self._result.resumes += 1

    def _fail(self, failure: RwexportError) -> None:
        with self._cv:
            self._failure = failure
            self._cv.notify_all()


class Client:
    """One channel to a server. Thread-safe as grpc channels are; close() when done."""

    def __init__(self, address: str, token: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, timeout: float = 30.0):
        # Reconnect soon after a server restart (gRPC's default backoff grows to 120 s). Not
        # grpc.min_reconnect_backoff_ms: it is also the connect timeout (20 s by default).
        options = [("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 2000)]
        if root_certificates is not None:
            self._channel = grpc.secure_channel(
                address, grpc.ssl_channel_credentials(root_certificates), options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
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
            _metrics_into(batch, metrics)
            count = 0
            for s in samples:
                count += _samples_into(batch, [s])
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

    def acked_stream(self, export_id: str, metrics: Sequence[Metric] = (),
                     **options) -> AckedStream:
        """An AckedStream into `export_id` (IngestSamples); options as AckedStream's."""
        return AckedStream(self, export_id, metrics, **options)

    def ingest(self, export_id: str, samples: Iterable[Sample], metrics: Sequence[Metric] = (),
               batch_size: int = 1000, **options) -> IngestResult:
        """Sends `samples` through one AckedStream in batches of `batch_size`, resuming across
        server restarts (options as AckedStream's: resume_timeout, ...), and returns the
        IngestResult once every batch is acknowledged."""
        stream = self.acked_stream(export_id, metrics, **options)
        batch = []
        for s in samples:
            batch.append(s)
            if len(batch) == batch_size:
                stream.send(batch)
                batch = []
        if batch or stream.batches == 0:
            stream.send(batch)
        return stream.finish()

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
