// `rwexport bench`'s report: the phases as a table, the memory readings, the ratios.
// Functions here are reentrant.
#ifndef RWEXPORT_LIB_BENCH_REPORT_H_
#define RWEXPORT_LIB_BENCH_REPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "lib/bench/bench.h"

namespace rwexport {

// (kb - before_kb) in bytes per series; 0 if kb <= before_kb or there is no series.
double BytesPerSeries(uint64_t kb, uint64_t before_kb, size_t series);

// One line on a phase just measured, for progress output.
std::string FormatBenchProgress(const BenchPhase& phase);

// One line on the fixed cost of an export in one mode (BenchOptions.export_cycles).
std::string FormatBenchCycles(const BenchCycles& cycles);

// The report as text: one line per phase, the memory during each phase, then the ratios.
std::string FormatBenchReport(const BenchReport& report, const BenchOptions& options);

// Every memory reading of every phase as CSV:
// server,mode,seconds,rss_kb,heap_in_use_kb,points_pending.
std::string FormatRssReadings(const BenchReport& report);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_BENCH_REPORT_H_
