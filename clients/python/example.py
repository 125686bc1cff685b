#!/usr/bin/python3
"""What an orchestration service does around one load test, with rwexport_client.

    example.py --server=127.0.0.1:50051 --remote_write_url=http://127.0.0.1:9090/api/v1/write

Starts an export for a test run, streams a few k6 samples as an agent would (in a real test
the k6 agents stream; the orchestrator only starts and stops), prints the live status, then
stops the export and prints each target's delivery figures. Exits non-zero on any error.
"""

import argparse
import sys
import time
import uuid

from rwexport_client import Client, RwexportError, Sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--remote_write_url", required=True)
    parser.add_argument("--test_run_id", default=f"example-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--token", help="bearer token, if the server has --auth_token_file")
    args = parser.parse_args()

    apm = [{  # exactly what k6 users put in options.ext.loadimpact.apm
        "provider": "prometheus",
        "remoteWriteURL": args.remote_write_url,
        "metrics": ["http_req_duration", "http_reqs", "vus", "checks"],
        "includeDefaultMetrics": False,
        "includeTestRunId": True,
        "resampleRate": 1,
    }]
    try:
        with Client(args.server, token=args.token) as client:
            export_id = client.start(args.test_run_id, apm)
            print(f"export {export_id} for test run {args.test_run_id}")
            now = time.time_ns()
            samples = []
            for i in range(100):
                t = now - (100 - i) * 10_000_000  # the last second, every 10 ms
                tags = {"name": "home", "method": "GET", "status": "200"}
                samples.append(Sample("http_reqs", 1, tags, t))
                samples.append(Sample("http_req_duration", 20 + i % 7, tags, t))
            samples.append(Sample("vus", 10, {}, now))
            answer = client.stream(export_id, samples)
            print(f"streamed: {answer.accepted} accepted, {answer.rejected} rejected")
            status = client.status(export_id)
            print(f"status: {status.samples_accepted} samples, "
                  f"{status.active_streams} streams open")
            stopped = client.stop(export_id, delivery_timeout=10)
            for figures in stopped.targets:
                print(f"target {figures.remote_write_url}: {figures.series} series, "
                      f"{figures.points_sent} points sent, {figures.points_dropped} dropped "
                      f"{dict(figures.dropped_by_reason)} {figures.last_error}")
    except RwexportError as error:
        print(f"example: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
