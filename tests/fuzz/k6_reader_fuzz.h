// The body shared by k6_json_fuzz.cc and k6_csv_fuzz.cc: reads the input with
// K6ResultsReader::ReadBuffer in one format and checks the documented contracts: every item
// reaches its callback and is counted, error lines lie within the lines read, and an error
// Status is InvalidArgument, or DataLoss for gzip input (starting with the gzip magic bytes)
// that is corrupt or truncated (in-memory input has no I/O failure).
#ifndef RWEXPORT_TESTS_FUZZ_K6_READER_FUZZ_H_
#define RWEXPORT_TESTS_FUZZ_K6_READER_FUZZ_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/k6/results_reader.h"

namespace rwexport::fuzz {

inline void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "k6 reader fuzz: contract broken: %s\n", what);
  std::abort();
}

inline void ReadK6Buffer(absl::string_view data, K6Format format) {
  int64_t metrics = 0, samples = 0, errors = 0, max_error_line = 0;
  K6ResultsReader::Callbacks callbacks;
  callbacks.on_metric = [&](const K6Metric& metric) {
    ++metrics;
    Require(!metric.name.empty(), "a metric declaration without a name");
  };
  callbacks.on_sample = [&](K6Sample&& sample) {
    ++samples;
    K6Sample moved = std::move(sample);  // on_sample may move from the sample
    Require(!moved.metric.empty(), "a sample without a metric name");
  };
  callbacks.on_error = [&](const ReadError& error) {
    ++errors;
    Require(error.line >= 1, "an error line below 1");
    Require(!error.message.empty(), "an error without a message");
    if (error.line > max_error_line) max_error_line = error.line;
  };
  absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadBuffer(data, format, callbacks);
  if (!stats.ok()) {
    const bool gzip = data.size() >= 2 && data[0] == '\x1f' && data[1] == '\x8b';
    Require(stats.status().code() == absl::StatusCode::kInvalidArgument ||
                (gzip && stats.status().code() == absl::StatusCode::kDataLoss),
            "ReadBuffer failed with a code other than InvalidArgument (or DataLoss for gzip)");
    Require(!stats.status().message().empty(), "ReadBuffer failed without a message");
    return;
  }
  Require(stats->metrics == metrics, "metrics miscounted");
  Require(stats->samples == samples, "samples miscounted");
  Require(stats->errors == errors, "errors miscounted");
  Require(max_error_line <= stats->lines, "an error line past the lines read");

  // The same bytes again with empty callbacks: parsed and counted the same.
  absl::StatusOr<K6ReadStats> bare = K6ResultsReader::ReadBuffer(data, format, {});
  Require(bare.ok(), "ReadBuffer without callbacks failed where it succeeded with them");
  Require(bare->metrics == metrics && bare->samples == samples && bare->errors == errors &&
              bare->lines == stats->lines,
          "counts depend on the callbacks");
}

}  // namespace rwexport::fuzz

#endif  // RWEXPORT_TESTS_FUZZ_K6_READER_FUZZ_H_
