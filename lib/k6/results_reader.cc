#include "lib/k6/results_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/k6/line_source.h"
#include "lib/k6/record_parsers.h"

namespace rwexport {
namespace {

using k6_reader::BufferSource;
using k6_reader::ByteSource;
using k6_reader::CsvParser;
using k6_reader::FdSource;
using k6_reader::JsonLineParser;
using k6_reader::RecordReader;
using k6_reader::StreamSource;

bool IsBlank(absl::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

K6Format Sniff(absl::string_view head) {
  for (char c : head) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{' ? K6Format::kJson : K6Format::kCsv;
  }
  return K6Format::kJson;  // empty or blank: nothing to read either way
}

absl::StatusOr<K6ReadStats> ReadAll(ByteSource& source, K6Format format,
                                    const K6ResultsReader::Callbacks& callbacks) {
  auto reader = std::make_unique<RecordReader>(&source);
  absl::Status status = reader->Prime();
  if (!status.ok()) return status;
  std::unique_ptr<ByteSource> gunzip;
  if (k6_reader::IsGzip(reader->Buffered())) {
    // k6 --out json=FILE.gz: inflated as it is read, never to disk.
    gunzip = k6_reader::GunzipSource(&source, std::string(reader->Buffered()));
    reader = std::make_unique<RecordReader>(gunzip.get());
    status = reader->Prime();
    if (!status.ok()) return status;
  }
  absl::string_view head = reader->Buffered();
  if (format == K6Format::kAuto) format = Sniff(head);

  K6ReadStats stats;
  absl::string_view record;
  int64_t line_no = 0;
  if (format == K6Format::kJson) {
    JsonLineParser parser(callbacks, stats);
    for (;;) {
      absl::StatusOr<bool> more = reader->Next(/*csv=*/false, &record, &line_no);
      if (!more.ok()) return more.status();
      if (!*more) break;
      if (IsBlank(record)) continue;
      parser.Parse(record, line_no);
    }
  } else {
    CsvParser parser(callbacks, stats);
    bool have_header = false;
    for (;;) {
      absl::StatusOr<bool> more = reader->Next(/*csv=*/true, &record, &line_no);
      if (!more.ok()) return more.status();
      if (!*more) break;
      if (IsBlank(record)) continue;
      if (!have_header) {
        status = parser.ParseHeader(record);
        if (!status.ok()) return status;
        have_header = true;
        continue;
      }
      parser.Parse(record, line_no);
    }
  }
  stats.lines = reader->lines();
  return stats;
}

absl::StatusOr<K6ReadStats> ReadPath(const std::string& path, K6Format format,
                                     const K6ResultsReader::Callbacks& callbacks) {
  int fd = 0;
  if (path != "-") {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) return absl::NotFoundError("k6 results file not found: " + path);
      return absl::ErrnoToStatus(err, "opening k6 results file " + path);
    }
  }
  FdSource source(fd, path == "-" ? "standard input" : path);
  absl::StatusOr<K6ReadStats> stats = ReadAll(source, format, callbacks);
  if (fd != 0) ::close(fd);
  if (!stats.ok() && path != "-" && !absl::StrContains(stats.status().message(), path)) {
    return absl::Status(stats.status().code(), absl::StrCat(path, ": ", stats.status().message()));
  }
  return stats;
}

}  // namespace

K6Format K6FormatForPath(absl::string_view path) {
  absl::string_view name = path;
  if (absl::EndsWithIgnoreCase(name, ".gz")) name.remove_suffix(3);  // the content says gzip
  if (absl::EndsWithIgnoreCase(name, ".json") || absl::EndsWithIgnoreCase(name, ".jsonl") ||
      absl::EndsWithIgnoreCase(name, ".ndjson")) {
    return K6Format::kJson;
  }
  if (absl::EndsWithIgnoreCase(name, ".csv")) return K6Format::kCsv;
  return K6Format::kAuto;
}

absl::StatusOr<K6ReadStats> K6ResultsReader::ReadFile(const std::string& path,
                                                      const Callbacks& callbacks) {
  return ReadPath(path, K6FormatForPath(path), callbacks);
}

absl::StatusOr<K6ReadStats> K6ResultsReader::ReadJsonFile(const std::string& path,
                                                          const Callbacks& callbacks) {
  return ReadPath(path, K6Format::kJson, callbacks);
}

absl::StatusOr<K6ReadStats> K6ResultsReader::ReadCsvFile(const std::string& path,
                                                         const Callbacks& callbacks) {
  return ReadPath(path, K6Format::kCsv, callbacks);
}

absl::StatusOr<K6ReadStats> K6ResultsReader::ReadStream(std::istream& in, K6Format format,
                                                        const Callbacks& callbacks) {
  StreamSource source(in);
  return ReadAll(source, format, callbacks);
}

absl::StatusOr<K6ReadStats> K6ResultsReader::ReadBuffer(absl::string_view data, K6Format format,
                                                        const Callbacks& callbacks) {
  BufferSource source(data);
  return ReadAll(source, format, callbacks);
}

absl::StatusOr<K6ReadStats> K6ResultsReader::ReadSource(K6ByteSource& source, K6Format format,
                                                        const Callbacks& callbacks) {
  return ReadAll(source, format, callbacks);
}

}  // namespace rwexport
