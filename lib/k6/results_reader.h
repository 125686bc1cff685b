// Readers for the result files k6 writes with `k6 run --out json=FILE` (one JSON object per
// line: `Metric` declarations and `Point` samples) and `k6 run --out csv=FILE` (a header row,
// then one sample per row). They feed `rwexport replay` and tests.
//
// A file is read from start to end in bounded memory (a few lines at a time) and every item is
// handed to a callback in file order, on the calling thread. Gzip-compressed input (`k6 run
// --out json=results.json.gz`, or a file gzipped later; told by its first bytes, whatever its
// name) is inflated with zlib as it is read, never written out. A malformed line is reported
// to `on_error` with its 1-based line number and skipped; the read goes on. A read ends with
// an error Status only on an I/O failure, corrupt or truncated gzip data (DataLossError), or
// input that is no k6 result file at all: a CSV file without k6's header row, a line longer
// than 64 MiB.
//
// Thread-safety: every function is reentrant; concurrent reads of different files are fine.
#ifndef RWEXPORT_LIB_K6_RESULTS_READER_H_
#define RWEXPORT_LIB_K6_RESULTS_READER_H_

#include <cstdint>
#include <functional>
#include <istream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/model/metric.h"

namespace rwexport {

// A metric declaration: a `Metric` line of a JSON file. CSV files have none.
struct K6Metric {
  std::string name;
  MetricType type;
  ValueKind kind;
};

// One sample. `tags` are in file order and keep empty values (`"group": ""`); in CSV an empty
// cell cannot be told from an absent tag, so it is left out. k6's `metadata` (JSON field or
// CSV column) is not a tag and is dropped.
struct K6Sample {
  std::string metric;
  std::vector<std::pair<std::string, std::string>> tags;
  int64_t time_unix_nano = 0;
  double value = 0;
};

// A malformed line (or, in CSV, record): what is wrong with it.
struct ReadError {
  int64_t line;  // 1-based; a CSV record spanning lines reports its first line.
  std::string message;
};

struct K6ReadStats {
  int64_t lines = 0;    // lines read, blank ones and the CSV header included
  int64_t metrics = 0;  // K6Metric items delivered
  int64_t samples = 0;  // K6Sample items delivered
  int64_t errors = 0;   // ReadError items delivered (lines skipped)
};

enum class K6Format {
  kAuto,  // by the first non-blank byte: '{' is JSON, anything else CSV
  kJson,
  kCsv,
};

// The format a path's extension tells (.json, .jsonl, .ndjson / .csv, also with .gz), else kAuto.
K6Format K6FormatForPath(absl::string_view path);

// Where a read takes its bytes from. Implement it for inputs the readers below do not cover,
// e.g. a live pipe or a growing file (lib/client/live_input).
class K6ByteSource {
 public:
  virtual ~K6ByteSource() = default;
  // Reads up to `n` bytes into `dst`; 0 means end of input. May block until bytes arrive.
  virtual absl::StatusOr<size_t> Read(char* dst, size_t n) = 0;
};

class K6ResultsReader {
 public:
  // Any callback may be empty: that kind of item is then parsed (and counted) but dropped.
  // `on_sample` may move from the sample it is given.
  struct Callbacks {
    std::function<void(const K6Metric&)> on_metric;
    std::function<void(K6Sample&&)> on_sample;
    std::function<void(const ReadError&)> on_error;
  };

  // Reads a file whose format is told by its extension (.json, .jsonl, .ndjson / .csv, each
  // optionally followed by .gz) or else by its content (kAuto). "-" reads standard input. A
  // missing file is NotFoundError naming the path.
  static absl::StatusOr<K6ReadStats> ReadFile(const std::string& path, const Callbacks& callbacks);
  static absl::StatusOr<K6ReadStats> ReadJsonFile(const std::string& path,
                                                  const Callbacks& callbacks);
  static absl::StatusOr<K6ReadStats> ReadCsvFile(const std::string& path,
                                                 const Callbacks& callbacks);

  // The same over a stream (read to its end) or over bytes already in memory.
  static absl::StatusOr<K6ReadStats> ReadStream(std::istream& in, K6Format format,
                                                const Callbacks& callbacks);
  static absl::StatusOr<K6ReadStats> ReadBuffer(absl::string_view data, K6Format format,
                                                const Callbacks& callbacks);
  // The same over any source. Items are handed out as soon as their line is complete, so a
  // source that blocks sees every complete line it returned delivered before its next Read.
  static absl::StatusOr<K6ReadStats> ReadSource(K6ByteSource& source, K6Format format,
                                                const Callbacks& callbacks);
};

// Parses an RFC 3339 time, "2024-10-30T16:20:21.635558127Z" or "...21.5+02:00", into exact
// nanoseconds since the Unix epoch. The fraction is optional; past 9 digits it is truncated
// (as Go does). 'T'/'t'/' ' separate date and time; the zone is 'Z', 'z' or ±hh:mm. Times
// outside the int64 nanosecond range (years 1678..2262) are rejected.
absl::StatusOr<int64_t> ParseRfc3339UnixNanos(absl::string_view text);

// Parses a k6 CSV timestamp into nanoseconds since the Unix epoch: RFC 3339, or a Unix time
// in seconds (optionally with a fraction), milliseconds, microseconds or nanoseconds, told
// apart by magnitude (below 1e11 seconds, below 1e14 ms, below 1e17 µs, else ns).
absl::StatusOr<int64_t> ParseK6CsvTimestamp(absl::string_view text);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_K6_RESULTS_READER_H_
