"""Writes a k6 JSON result file through Debian's python3-influxdb client, as a user would.

Usage: influx_python_client.py HOST PORT DB TOKEN FILE SHIFT_NS
Reads the file's Point lines, shifts their times by SHIFT_NS, and writes them with
InfluxDBClient(host, port, username, password=TOKEN, database=DB).write_points(...,
time_precision="n"), one call per second of samples, after create_database(DB). The token travels
as the basic-auth password. Prints "points N writes M" on success.
"""
import calendar
import json
import sys
import time

from influxdb import InfluxDBClient


def nanos(text):
    """RFC 3339 time with up to 9 fraction digits and a Z or +00:00 suffix, in ns."""
    for suffix in ("Z", "+00:00"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    else:
        raise ValueError("time not in UTC: " + text)
    base, _, fraction = text.partition(".")
    seconds = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1000000000 + int((fraction + "000000000")[:9])


def main():
    host, port, db, token, path, shift = sys.argv[1:7]
    points = []
    with open(path) as f:
        for line in f:
            doc = json.loads(line)
            if doc.get("type") != "Point":
                continue
            data = doc["data"]
            tags = dict(data.get("tags") or {})
            fields = {"value": data["value"]}
            if "url" in tags:  # as k6 does by default (tagsAsFields)
                fields["url"] = tags.pop("url")
            points.append({"measurement": doc["metric"], "tags": tags, "fields": fields,
                           "time": nanos(data["time"]) + int(shift)})
    client = InfluxDBClient(host=host, port=int(port), username="k6", password=token,
                            database=db, timeout=30)
    client.create_database(db)
    writes = 0
    batch = []
    for p in points:
        if batch and p["time"] - batch[0]["time"] >= 1000000000:
            client.write_points(batch, time_precision="n")
            writes += 1
            batch = []
        batch.append(p)
    if batch:
        client.write_points(batch, time_precision="n")
        writes += 1
    print("points %d writes %d" % (len(points), writes))


if __name__ == "__main__":
    main()
