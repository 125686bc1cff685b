"""Prints the tables of scripts/bench_scaling.sh from its `rwexport bench --json` files.

Usage: bench_scaling_tables.py JSON_DIR RUNS [DURATION]. A file is NAME.ALLOCATOR.RUN.json,
beside it NAME.ALLOCATOR.RUN.json.csv (--rss_csv). Every figure is min / median / max over the
runs; a ratio is taken within one run, then summarised. The heap of a phase is the median of
its readings from 40 % to 90 % of DURATION (every stream open, none finished yet); without
the CSV, the last reading of the load.
"""
import csv
import json
import os
import re
import statistics
import sys

MODES = ("self", "compact")


DURATION_S = 10.0


def seconds(text):
    """Go-style durations as the script takes them: 10s, 1m30s, 500ms."""
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", text):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total or DURATION_S


def mid_heap(path, mode):
    """Median heap reading (KiB) of `mode`'s rwexport phase from 40 % to 90 % of the duration."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        values = [int(r["heap_in_use_kb"]) for r in csv.DictReader(f)
                  if r["server"] == "rwexport" and r["mode"] == mode and
                  0.4 * DURATION_S <= float(r["seconds"]) <= 0.9 * DURATION_S]
    return statistics.median(values) if values else None


def load(directory, name, allocator, run):
    path = os.path.join(directory, f"{name}.{allocator}.{run}.json")
    if allocator == "default" and not os.path.exists(path):  # files of older runs
        path = os.path.join(directory, f"{name}.glibc.{run}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        report = json.load(f)
    phases = {p["mode"]: p for p in report["phases"] if p["server"] == "rwexport"}
    for mode, phase in phases.items():
        phase["heapMidKb"] = mid_heap(path + ".csv", mode)
    return report, phases


def spread(values, fmt="{:.3f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return "/".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def mb(kb):
    return kb / 1024


def table(title, header, rows):
    print(f"\n{title}")
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


def collect(directory, runs, names, allocator="default"):
    """{(name, mode): [(report, phase) per run]}"""
    out = {}
    for name in names:
        for run in range(1, runs + 1):
            loaded = load(directory, name, allocator, run)
            if loaded is None:
                continue
            report, phases = loaded
            for mode, phase in phases.items():
                out.setdefault((name, mode), []).append((report, phase))
    return out


def heap_end(p):
    """The heap during the load: heapMidKb, else the last reading (older binaries: the reading
    at --duration)."""
    if p.get("heapMidKb") is not None:
        return p["heapMidKb"]
    return p.get("serverHeapEndKb", p["serverHeapAt100Kb"])


def rss_end(p):
    return p.get("serverRssEndKb", p["serverRssAt100Kb"])


def cpu(p):
    return p["serverCpuSecondsPerMillion"]


def series_table(directory, runs):
    names = ["series1000", "series10000", "series100000"]
    data = collect(directory, runs, names)
    if not data:
        return
    rows = []
    for mode in MODES:
        for name in names:
            runs_of = data.get((name, mode), [])
            base = data.get(("series1000", mode), [])
            ratios = [cpu(p) / cpu(b[1]) for (_, p), b in zip(runs_of, base) if cpu(b[1]) > 0]
            rows.append([
                mode, spread([r["distinctSeries"] for r, _ in runs_of], "{:,.0f}"),
                spread([cpu(p) for _, p in runs_of]), spread(ratios, "{:.2f}x"),
                spread([p["samplesPerSecond"] / 1e6 for _, p in runs_of], "{:.2f}"),
                spread([mb(p["serverPeakRssKb"]) for _, p in runs_of], "{:.0f}"),
                spread([mb(heap_end(p)) for _, p in runs_of], "{:.0f}"),
                spread([(heap_end(p) - p["serverHeapBeforeKb"]) * 1024 /
                        r["distinctSeries"] for r, p in runs_of], "{:.0f}"),
            ])
    table("series (4 streams, 1 export; the binary's allocator)",
          ["mode", "series", "CPU s/M smpl", "vs 1k", "M smpl/s", "peak RSS MB", "heap mid MB",
           "heap mid B/series"], rows)


def streams_table(directory, runs):
    names = ["streams1", "streams2", "streams4"]
    data = collect(directory, runs, names)
    if not data:
        return
    rows = []
    for mode in MODES:
        one = data.get(("streams1", mode), [])
        for s, name in ((1, "streams1"), (2, "streams2"), (4, "streams4")):
            runs_of = data.get((name, mode), [])
            per_stream = []
            export_share = []
            # --hold: the heap with the streams open and idle (the export's windows closed)
            # against the heap once they ended, and against 1 stream's, same run.
            held = [r for r in runs_of if r[1].get("held")]
            held_per_stream = [(p["serverHeapStreamsOpenKb"] - p["serverHeapStreamsClosedKb"]) *
                               1024 / s / r["distinctSeries"] for r, p in held]
            held_export = [(p["serverHeapStreamsClosedKb"] - p["serverHeapBeforeKb"]) * 1024 /
                           r["distinctSeries"] for r, p in held]
            held_slope = []
            if s > 1:
                for (r, p), (_, p1) in zip(runs_of, one):
                    if p.get("held") and p1.get("held"):
                        held_slope.append((p["serverHeapStreamsOpenKb"] -
                                           p1["serverHeapStreamsOpenKb"]) * 1024 / (s - 1) /
                                          r["distinctSeries"])
            if s > 1:
                for (r, p), (_, p1) in zip(runs_of, one):
                    n = r["distinctSeries"]
                    slope = (heap_end(p) - heap_end(p1)) * 1024 / (s - 1) / n
                    per_stream.append(slope)
                    export_share.append(
                        (heap_end(p1) - p1["serverHeapBeforeKb"]) * 1024 / n - slope)
            rows.append([
                mode, s, spread([cpu(p) for _, p in runs_of]),
                spread([mb(heap_end(p)) for _, p in runs_of], "{:.0f}"),
                spread([mb(p["serverHeapMaxKb"]) for _, p in runs_of], "{:.0f}"),
                spread([mb(p["serverPeakRssKb"]) for _, p in runs_of], "{:.0f}"),
                spread(per_stream, "{:.0f}"), spread(export_share, "{:.0f}"),
                spread([p["streamRetainedLastBytes"] / s / r["distinctSeries"] for r, p in runs_of
                        if mode == "compact" and "streamRetainedLastBytes" in p], "{:.0f}"),
                spread(held_per_stream, "{:.0f}"), spread(held_slope, "{:.0f}"),
                spread(held_export, "{:.0f}"),
            ])
    table("streams (100k series, 1 export; the binary's allocator). B/series/stream: (heap(s) - heap(1)) / (s-1) "
          "/ series during the load (median reading from 40 to 90 % of it); export share: heap(1) - before - one stream's; "
          "server B/decl/stream: the server's stream_retained_bytes (last reading with streams open) / streams / series. "
          "With bench --hold (streams open and idle after the load, the export's windows closed): held B/series/stream: "
          "(heap with the streams open - heap once they ended) / streams / series; held vs 1: (heap open(s) - heap open(1)) "
          "/ (s-1) / series; held export B/series: (heap once the streams ended - before) / series",
          ["mode", "streams", "CPU s/M smpl", "heap mid MB", "heap max MB", "peak RSS MB",
           "B/series/stream", "export B/series", "server B/decl/stream", "held B/series/stream",
           "held vs 1", "held export B/series"], rows)


def exports_table(directory, runs):
    names = ["exports1", "exports10", "exports100"]
    data = collect(directory, runs, names)
    if not data:
        return
    rows = []
    for mode in MODES:
        one = data.get(("exports1", mode), [])
        for n, name in ((1, "exports1"), (10, "exports10"), (100, "exports100")):
            runs_of = data.get((name, mode), [])
            ratios, fixed = [], []
            for (_, p), (_, p1) in zip(runs_of, one):
                if cpu(p1) > 0:
                    ratios.append(cpu(p) / cpu(p1))
                if n > 1 and p1["samplesAccepted"] > 0:
                    scale = p["samplesAccepted"] / p1["samplesAccepted"]
                    if n != scale:
                        fixed.append((p["serverCpuSeconds"] - p1["serverCpuSeconds"] * scale) /
                                     (n - scale) * 1000)
            rows.append([
                mode, n, spread([p["samplesAccepted"] / n / 1e3 for _, p in runs_of], "{:.0f}"),
                spread([cpu(p) for _, p in runs_of]), spread(ratios, "{:.2f}x"),
                spread(fixed, "{:.1f}"),
            ])
    table("exports (5,412 series, 4 streams; the binary's allocator). fixed ms/export: F from cpu = F * exports "
          "+ c * samples, solved against 1 export in the same run",
          ["mode", "exports", "k smpl/export", "CPU s/M smpl", "vs 1", "fixed ms/export"], rows)


def allocators_table(directory, runs):
    rows = []
    for allocator in ("default", "jemalloc", "tcmalloc"):
        data = collect(directory, runs, ["allocator100k"], allocator)
        for mode in MODES:
            runs_of = data.get(("allocator100k", mode), [])
            if not runs_of:
                continue
            rows.append([
                mode, runs_of[0][0].get("allocator", allocator),
                spread([cpu(p) for _, p in runs_of]),
                spread([mb(p["serverRssBeforeKb"]) for _, p in runs_of], "{:.0f}"),
                spread([mb(rss_end(p)) for _, p in runs_of], "{:.0f}"),
                spread([mb(p["serverPeakRssKb"]) for _, p in runs_of], "{:.0f}"),
                spread([mb(p["serverRssAfterStopKb"]) for _, p in runs_of], "{:.0f}"),
                spread([100 * (p["serverRssAfterStopKb"] / p["serverRssBeforeKb"] - 1)
                        for _, p in runs_of], "{:+.0f}%"),
                spread([mb(p.get("serverRssColdKb", p["serverRssBeforeKb"])) for _, p in runs_of],
                       "{:.0f}"),
                spread([100 * (p["serverRssAfterStopKb"] /
                               p.get("serverRssColdKb", p["serverRssBeforeKb"]) - 1)
                        for _, p in runs_of], "{:+.0f}%"),
                spread([mb(heap_end(p)) for _, p in runs_of], "{:.0f}"),
            ])
    if rows:
        table("allocators (100k series, 4 streams, 1 export; the binary's own, then LD_PRELOAD). RSS before: "
              "after a warm-up export (bench --warmup_export), before the measured one; as started: before the warm-up",
              ["mode", "allocator", "CPU s/M smpl", "RSS before MB", "RSS end MB", "peak RSS MB",
               "RSS after stop MB", "after/before", "RSS as started MB", "after/as started",
               "heap mid MB"], rows)


def main():
    global DURATION_S
    directory, runs = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3:
        DURATION_S = seconds(sys.argv[3])
    print("figures: min/median/max over the runs (one figure: one run)")
    series_table(directory, runs)
    streams_table(directory, runs)
    exports_table(directory, runs)
    allocators_table(directory, runs)


if __name__ == "__main__":
    main()
