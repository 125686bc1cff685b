#include "lib/bench/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rwexport {
namespace {

std::string Thousands(double v) {
  std::string digits = absl::StrFormat("%.0f", v);
  std::string out;
  const size_t n = digits.size();
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && (n - i) % 3 == 0 && digits[i - 1] != '-') out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

// The memory readings of every phase: rss and heap, one line each.
void AppendMemoryTable(const BenchReport& report, const BenchOptions& options,
                       std::string* out_ptr) {
  std::string& out = *out_ptr;
  absl::StrAppendFormat(
      &out,
      "\nserver memory during the load, MB, read every %s: rss = /proc/PID/status VmRSS, heap = "
      "malloc'd and not freed, as the allocator counts it. \"p%%\": the last reading at or before "
      "p%% of the "
      "phase (of its event time); growth: 100%% vs 25%%, i.e. after the warm-up quarter in which "
      "every series appears; range: lowest and highest reading from 25%% to 100%%; q4/q2: mean of "
      "the readings in the last quarter vs in the second; pending: most points undelivered (of "
      "the first export); before: before the first StartExport; B/series: (100%% - before) / "
      "distinct series\n",
      absl::FormatDuration(options.rss_interval));
  absl::StrAppendFormat(
      &out,
      "%-9s  %-7s  %-4s  %8s  %7s  %7s  %7s  %7s  %7s  %7s  %7s  %7s  %15s  %7s  %10s  "
      "%8s  %11s  %11s\n",
      "server", "mode", "", "readings", "before", "10%", "25%", "50%", "75%", "100%", "max",
      "growth", "range", "q4/q2", "after stop", "B/series", "pending", "event time");
  auto mb = [](uint64_t kb) { return static_cast<double>(kb) / 1024; };
  for (const BenchPhase& p : report.phases) {
    const std::string event_time =
        p.load.first_sample_time == absl::InfinitePast()
            ? "-"
            : absl::FormatDuration(absl::Trunc(p.load.last_sample_time - p.load.first_sample_time,
                                               absl::Milliseconds(1)));
    uint64_t most_pending = 0;
    for (const RssSample& r : p.rss) most_pending = std::max(most_pending, r.points_pending);
    for (bool heap : {false, true}) {
      const RssProfile& r = heap ? p.heap_profile : p.rss_profile;
      const uint64_t before_kb = heap ? p.server_heap_before_kb : p.server_rss_before_kb;
      absl::StrAppendFormat(
          &out,
          "%-9s  %-7s  %-4s  %8d  %7.1f  %7.1f  %7.1f  %7.1f  %7.1f  %7.1f  %7.1f  %+6.1f%%  "
          "%15s  %+6.1f%%  %10.1f  %8.0f  %11s  %11s\n",
          BenchServerName(p.server), BenchModeName(p.mode), heap ? "heap" : "rss", r.samples,
          mb(before_kb), mb(r.at_10_kb), mb(r.at_25_kb), mb(r.at_50_kb), mb(r.at_75_kb),
          mb(r.at_100_kb), mb(r.max_kb), r.growth_percent,
          absl::StrFormat("%.1f-%.1f", mb(r.after_warmup_min_kb), mb(r.after_warmup_max_kb)),
          r.quarter_mean_growth_percent,
          mb(heap ? p.server_heap_after_stop_kb : p.server_rss_after_stop_kb),
          BytesPerSeries(r.at_100_kb, before_kb, report.distinct_series),
          heap ? "" : Thousands(static_cast<double>(most_pending)), heap ? "" : event_time);
    }
  }
  // What the RSS after stop is made of (issue 16 item 2): anonymous memory (heap, stacks) and
  // file pages (the code the load ran, paged in once), and the threads the load left.
  for (const BenchPhase& p : report.phases) {
    const ProcessUsage& b = p.server_before;
    const ProcessUsage& a = p.server_after_stop;
    absl::StrAppendFormat(
        &out,
        "%s %s: RSS before %.1f MB (anon %.1f, file %.1f, %d threads; allocator resident %.1f, "
        "metadata %.1f), after stop %.1f MB (anon %.1f, file %.1f, %d threads; allocator "
        "resident %.1f, metadata %.1f)\n",
        BenchServerName(p.server), BenchModeName(p.mode), mb(b.rss_kb), mb(b.rss_anon_kb),
        mb(b.rss_file_kb), b.threads, mb(b.allocator_resident_kb), mb(b.allocator_metadata_kb),
        mb(a.rss_kb), mb(a.rss_anon_kb), mb(a.rss_file_kb), a.threads, mb(a.allocator_resident_kb),
        mb(a.allocator_metadata_kb));
  }
  // RSS after stop against the RSS before the export (after the warm-up export) and against
  // the server as it started (issue 16 item 2).
  auto ratio = [](uint64_t after, uint64_t before) {
    return before > 0 ? (static_cast<double>(after) / static_cast<double>(before) - 1) * 100 : 0;
  };
  for (const BenchPhase& p : report.phases) {
    if (p.server != BenchServer::kRwexport) continue;
    absl::StrAppendFormat(&out,
                          "%s %s: RSS as started %.1f MB, before the export (after a warm-up "
                          "export) %.1f MB, after stop %.1f MB: %+.1f%% of before (%+.1f%% of as "
                          "started)\n",
                          BenchServerName(p.server), BenchModeName(p.mode),
                          mb(p.server_cold.rss_kb), mb(p.server_rss_before_kb),
                          mb(p.server_rss_after_stop_kb),
                          ratio(p.server_rss_after_stop_kb, p.server_rss_before_kb),
                          ratio(p.server_rss_after_stop_kb, p.server_cold.rss_kb));
  }
  // bench --hold: what the open streams keep, apart from the export.
  for (const BenchPhase& p : report.phases) {
    if (!p.held) continue;
    const double declared = static_cast<double>(report.distinct_series) *
                            static_cast<double>(std::max(options.load.streams, 1));
    const double open_kb = static_cast<double>(p.server_streams_open.heap_in_use_kb);
    const double closed_kb = static_cast<double>(p.server_streams_closed.heap_in_use_kb);
    absl::StrAppendFormat(
        &out,
        "%s %s: streams held open and idle for %s: heap %.1f MB with %d streams open, %.1f MB "
        "once they ended (export open): %.0f B per series per stream (server's figure %.0f B); "
        "the export without its streams: %.0f B per series (heap %.1f MB before it); RSS %.1f "
        "/ %.1f MB\n",
        BenchServerName(p.server), BenchModeName(p.mode), absl::FormatDuration(options.hold),
        open_kb / 1024, options.load.streams, closed_kb / 1024,
        declared > 0 ? (open_kb - closed_kb) * 1024 / declared : 0,
        declared > 0 ? static_cast<double>(p.stream_retained_held_bytes) / declared : 0,
        BytesPerSeries(p.server_streams_closed.heap_in_use_kb, p.server_heap_before_kb,
                       report.distinct_series),
        mb(p.server_heap_before_kb), mb(p.server_streams_open.rss_kb),
        mb(p.server_streams_closed.rss_kb));
  }
  // The streams' own share, as the server counts it: comparable across stream counts, unlike
  // heap differences, which include the throughput-dependent open windows.
  for (const BenchPhase& p : report.phases) {
    if (p.server != BenchServer::kRwexport || p.mode != BenchMode::kCompact) continue;
    const double declared = static_cast<double>(report.distinct_series) *
                            static_cast<double>(std::max(options.load.streams, 1));
    absl::StrAppendFormat(
        &out,
        "compact streams' declarations (server's figure, first export): last reading with streams "
        "open %.1f MB = %.0f B per declared series per stream; highest reading %.1f MB\n",
        static_cast<double>(p.stream_retained_last_bytes) / (1 << 20),
        declared > 0 ? static_cast<double>(p.stream_retained_last_bytes) / declared : 0,
        static_cast<double>(p.stream_retained_max_bytes) / (1 << 20));
  }
}

}  // namespace

double BytesPerSeries(uint64_t kb, uint64_t before_kb, size_t series) {
  if (series == 0 || kb <= before_kb) return 0;
  return static_cast<double>(kb - before_kb) * 1024 / static_cast<double>(series);
}

std::string FormatBenchProgress(const BenchPhase& phase) {
  return absl::StrFormat("  %-9s %-7s %12s samples/s  %.3f server CPU s per million samples",
                         BenchServerName(phase.server), BenchModeName(phase.mode),
                         Thousands(phase.samples_per_second), phase.server_cpu_seconds_per_million);
}

std::string FormatBenchCycles(const BenchCycles& cycles) {
  return absl::StrFormat(
      "  rwexport  %-7s %d exports: %.2f ms server CPU per export (start, %s samples, stop), "
      "%.1f ms wall",
      BenchModeName(cycles.mode), cycles.cycles, cycles.server_cpu_ms_per_export,
      Thousands(cycles.cycles > 0 ? static_cast<double>(cycles.samples) / cycles.cycles : 0),
      cycles.wall_ms_per_export);
}

std::string FormatBenchReport(const BenchReport& report, const BenchOptions& options) {
  if (!report.cycles.empty()) {
    std::string out = absl::StrFormat(
        "fixed cost of an export: %d cycles of StartExport, one acknowledged stream of %d "
        "sample(s) (of %d distinct series), StopExport, one after another on one connection, "
        "after one cycle of warm-up; server CPU over the cycles / cycles\nallocator: %s\n\n",
        options.export_cycles, options.load.batch_size * options.cycle_batches,
        report.distinct_series, report.allocator);
    for (const BenchCycles& c : report.cycles) absl::StrAppend(&out, FormatBenchCycles(c), "\n");
    return out;
  }
  std::string out = absl::StrFormat(
      "workload: %d distinct series, %d streams, %d export%s, %s per phase, batches of %d "
      "samples, windows of %ds\nallocator: %s\n\n",
      report.distinct_series, options.load.streams, options.exports,
      options.exports == 1 ? "" : "s", absl::FormatDuration(options.load.duration),
      options.load.batch_size, options.resample_rate_s, report.allocator);
  if (options.exports > options.load.streams) {
    absl::StrAppendFormat(
        &out, "exports: fed in rounds of %d (one stream each), each round %s\n\n",
        options.load.streams,
        absl::FormatDuration(options.load.duration / ((options.exports + options.load.streams - 1) /
                                                      options.load.streams)));
  }
  if (options.load.event_span != absl::ZeroDuration()) {
    absl::StrAppendFormat(
        &out,
        "event time: each phase replays %s of sample timestamps in %s (%.1fx wall speed), "
        "ending when the phase ends\n\n",
        absl::FormatDuration(options.load.event_span), absl::FormatDuration(options.load.duration),
        absl::FDivDuration(options.load.event_span, options.load.duration));
  }
  absl::StrAppendFormat(&out, "%-9s  %-7s  %13s  %9s  %14s  %12s  %11s  %7s  %11s  %11s  %10s\n",
                        "server", "mode", "samples", "seconds", "samples/s", "CPU s/M smpl",
                        "peak RSS MB", "series", "points sent", "points recv", "client CPU");
  for (const BenchPhase& p : report.phases) {
    const bool real = p.server == BenchServer::kRwexport;
    absl::StrAppendFormat(
        &out, "%-9s  %-7s  %13s  %9.2f  %14s  %12.3f  %11.1f  %7s  %11s  %11s  %9.2fs\n",
        BenchServerName(p.server), BenchModeName(p.mode), Thousands(p.load.accepted),
        absl::ToDoubleSeconds(p.load.elapsed), Thousands(p.samples_per_second),
        p.server_cpu_seconds_per_million, static_cast<double>(p.server_peak_rss_kb) / 1024,
        real ? Thousands(p.series) : "-", real ? Thousands(p.points_sent) : "-",
        real ? Thousands(p.points_received) : "-", p.client_cpu_seconds);
    if (p.load.rejected > 0 || p.points_dropped > 0) {
      absl::StrAppendFormat(&out, "  (!) %llu samples rejected, %llu points dropped\n",
                            static_cast<unsigned long long>(p.load.rejected),
                            static_cast<unsigned long long>(p.points_dropped));
    }
  }
  AppendMemoryTable(report, options, &out);
  std::string ratios;
  for (BenchMode mode : options.modes) {
    const BenchPhase* real = report.Find(BenchServer::kRwexport, mode);
    const BenchPhase* null = report.Find(BenchServer::kNullSink, mode);
    if (real == nullptr || null == nullptr || null->samples_per_second == 0 ||
        null->server_cpu_seconds_per_million == 0) {
      continue;
    }
    absl::StrAppendFormat(
        &ratios, "  %-7s rwexport / null sink: samples/s %.2fx, server CPU per sample %.2fx\n",
        BenchModeName(mode), real->samples_per_second / null->samples_per_second,
        real->server_cpu_seconds_per_million / null->server_cpu_seconds_per_million);
  }
  for (BenchServer server : {BenchServer::kRwexport, BenchServer::kNullSink}) {
    const BenchPhase* self = report.Find(server, BenchMode::kSelfDescribing);
    const BenchPhase* compact = report.Find(server, BenchMode::kCompact);
    if (self == nullptr || compact == nullptr || self->samples_per_second == 0 ||
        compact->server_cpu_seconds_per_million == 0) {
      continue;
    }
    absl::StrAppendFormat(
        &ratios, "  %-9s compact / self: samples/s %.2fx, server CPU per sample %.2fx less\n",
        BenchServerName(server), compact->samples_per_second / self->samples_per_second,
        self->server_cpu_seconds_per_million / compact->server_cpu_seconds_per_million);
  }
  if (!ratios.empty()) absl::StrAppend(&out, "\nratios (same run):\n", ratios);
  return out;
}

std::string FormatRssReadings(const BenchReport& report) {
  std::string out =
      "server,mode,seconds,rss_kb,heap_in_use_kb,points_pending,stream_retained_bytes\n";
  for (const BenchPhase& p : report.phases) {
    for (const RssSample& r : p.rss) {
      absl::StrAppendFormat(&out, "%s,%s,%.3f,%d,%d,%d,%d\n", BenchServerName(p.server),
                            BenchModeName(p.mode), absl::ToDoubleSeconds(r.at), r.rss_kb,
                            r.heap_in_use_kb, r.points_pending, r.stream_retained_bytes);
    }
  }
  return out;
}

}  // namespace rwexport
