"""Checks rwexport_server with a gRPC client that is not ours (Python grpcio from Debian).

Speaks grpc.health.v1 and grpc.reflection.v1alpha and v1 with hand-encoded protobuf, since Debian
ships grpcio without the health and reflection stubs. Usage: grpc_tooling_check.py HOST:PORT
Prints one line per check and exits non-zero on the first failure.
"""
import sys

import grpc


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def parse(buf):
    """Yields (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            length, i = read_varint(buf, i)
            value, i = buf[i:i + length], i + length
        else:
            raise ValueError("unexpected wire type %d" % wire)
        yield number, wire, value


def read_varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def identity(b):
    return b


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    grpc.channel_ready_future(channel).result(timeout=10)

    # grpc.health.v1.Health/Check: HealthCheckRequest{service} -> HealthCheckResponse{status}.
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=identity, response_deserializer=identity)
    for service in ("", "rwexport.v1.ExportService"):
        reply = check(field_bytes(1, service.encode()) if service else b"", timeout=10)
        status = dict((n, v) for n, _, v in parse(reply)).get(1, 0)
        if status != 1:  # SERVING
            print("health %r: status %d, want 1 (SERVING)" % (service, status))
            return 1
        print("health %r: SERVING" % service)

    # Reflection, both versions: v1alpha (gRPC's own) and v1 (what current grpcurl asks).
    for version in ("v1alpha", "v1"):
        if not check_reflection(channel, version):
            return 1
    return 0


def check_reflection(channel, version):
    """list_services and file_containing_symbol through grpc.reflection.<version>."""
    reflect = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
        request_serializer=identity, response_deserializer=identity)
    # list_services (field 7) -> list_services_response (field 6) of ServiceResponse{name (1)}.
    names = []
    for reply in reflect(iter([field_bytes(7, b"")]), timeout=10):
        for number, _, value in parse(reply):
            if number == 6:
                for n, _, service in parse(value):
                    if n == 1:
                        names.extend(v.decode() for k, _, v in parse(service) if k == 1)
    print("reflection %s lists: %s" % (version, ", ".join(sorted(names))))
    if "rwexport.v1.ExportService" not in names:
        print("reflection %s does not list rwexport.v1.ExportService" % version)
        return False

    # file_containing_symbol (field 4) must return the descriptor of our API.
    found = False
    for reply in reflect(iter([field_bytes(4, b"rwexport.v1.ExportService")]), timeout=10):
        for number, _, value in parse(reply):
            if number == 4 and b"rwexport/v1/export.proto" in value:
                found = True
    print("reflection %s describes rwexport.v1.ExportService: %s" % (version, found))
    return found


if __name__ == "__main__":
    sys.exit(main())
