// Internal to the k6 results reader: the parsers of one record, a JSON line of
// `k6 --out json` or a CSV record of `k6 --out csv`, into K6Metric / K6Sample items handed to
// the reader's callbacks. Malformed records are counted and reported through on_error.
// Not thread-safe: one parser per read.
#ifndef RWEXPORT_LIB_K6_RECORD_PARSERS_H_
#define RWEXPORT_LIB_K6_RECORD_PARSERS_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "lib/k6/results_reader.h"

namespace rwexport {
namespace k6_reader {

// One JSON object per line: {"type":"Metric",...} or {"type":"Point",...}.
class JsonLineParser {
 public:
  JsonLineParser(const K6ResultsReader::Callbacks& callbacks, K6ReadStats& stats);
  ~JsonLineParser();
  void Parse(absl::string_view line, int64_t line_no);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// A header record naming the columns, then one sample per record.
class CsvParser {
 public:
  CsvParser(const K6ResultsReader::Callbacks& callbacks, K6ReadStats& stats);
  ~CsvParser();
  // The first record. An error here is a Status: without a header nothing can be read.
  absl::Status ParseHeader(absl::string_view record);
  void Parse(absl::string_view record, int64_t line_no);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes a sample's tags, reusing the strings already in `sample.tags` (when the consumer did
// not move them away).
class TagWriter {
 public:
  explicit TagWriter(K6Sample& sample) : tags_(sample.tags) {}
  ~TagWriter() { tags_.resize(used_); }
  void Add(absl::string_view key, absl::string_view value) {
    if (used_ < tags_.size()) {
      tags_[used_].first.assign(key.data(), key.size());
      tags_[used_].second.assign(value.data(), value.size());
    } else {
      tags_.emplace_back(std::string(key), std::string(value));
    }
    ++used_;
  }

 private:
  std::vector<std::pair<std::string, std::string>>& tags_;
  size_t used_ = 0;
};

}  // namespace k6_reader
}  // namespace rwexport

#endif  // RWEXPORT_LIB_K6_RECORD_PARSERS_H_
