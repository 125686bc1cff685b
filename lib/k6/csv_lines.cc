// The CSV records of `k6 run --out csv` (RFC 4180, as Go's encoding/csv writes them).
#include <charconv>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/k6/record_parsers.h"

namespace rwexport {
namespace k6_reader {
namespace {

// Splits one RFC 4180 record (as Go's encoding/csv writes it) into `fields`, reusing them.
// Returns an empty string on success, else what is wrong.
std::string SplitCsvRecord(absl::string_view record, std::vector<std::string>& fields,
                           size_t& count) {
  count = 0;
  size_t i = 0;
  for (;;) {
    if (count == fields.size()) fields.emplace_back();
    std::string& field = fields[count++];
    field.clear();
    if (i < record.size() && record[i] == '"') {
      ++i;
      for (;;) {
        size_t quote = record.find('"', i);
        if (quote == absl::string_view::npos) return "unterminated quoted field";
        field.append(record.data() + i, quote - i);
        i = quote + 1;
        if (i < record.size() && record[i] == '"') {
          field.push_back('"');
          ++i;
          continue;
        }
        break;
      }
      if (i == record.size()) return std::string();
      if (record[i] != ',') return "unexpected character after a quoted field";
      ++i;
    } else {
      size_t comma = record.find(',', i);
      if (comma == absl::string_view::npos) {
        field.assign(record.data() + i, record.size() - i);
        return std::string();
      }
      field.assign(record.data() + i, comma - i);
      i = comma + 1;
    }
  }
}

}  // namespace

class CsvParser::Impl {
 public:
  Impl(const K6ResultsReader::Callbacks& callbacks, K6ReadStats& stats)
      : callbacks_(callbacks), stats_(stats) {}

  // The first record. An error here is a Status: without a header nothing can be read.
  absl::Status ParseHeader(absl::string_view record) {
    size_t count = 0;
    std::string error = SplitCsvRecord(record, fields_, count);
    if (!error.empty()) return absl::InvalidArgumentError("line 1: bad CSV header: " + error);
    columns_.assign(count, Column{});
    for (size_t i = 0; i < count; ++i) {
      const std::string& name = fields_[i];
      Column& column = columns_[i];
      if (name == "metric_name") {
        column.role = Role::kMetric;
        metric_column_ = i;
      } else if (name == "timestamp") {
        column.role = Role::kTime;
        time_column_ = i;
      } else if (name == "metric_value") {
        column.role = Role::kValue;
        value_column_ = i;
      } else if (name == "extra_tags") {
        column.role = Role::kExtraTags;
      } else if (name == "metadata" || name.empty()) {
        column.role = Role::kIgnored;
      } else {
        column.role = Role::kTag;
        column.name = name;
      }
    }
    for (auto [column, name] : {std::pair<size_t, const char*>{metric_column_, "metric_name"},
                                {time_column_, "timestamp"},
                                {value_column_, "metric_value"}}) {
      if (column == kNone) {
        return absl::InvalidArgumentError(absl::StrCat(
            "line 1 is not a k6 CSV header (metric_name,timestamp,metric_value,...): no column \"",
            name, "\""));
      }
    }
    return absl::OkStatus();
  }

  void Parse(absl::string_view record, int64_t line_no) {
    std::string error = ParseRecord(record);
    if (!error.empty()) {
      ++stats_.errors;
      if (callbacks_.on_error) callbacks_.on_error(ReadError{line_no, std::move(error)});
    }
  }

 private:
  enum class Role { kIgnored, kMetric, kTime, kValue, kTag, kExtraTags };
  struct Column {
    Role role = Role::kIgnored;
    std::string name;
  };
  static constexpr size_t kNone = std::numeric_limits<size_t>::max();

  std::string ParseRecord(absl::string_view record) {
    size_t count = 0;
    std::string error = SplitCsvRecord(record, fields_, count);
    if (!error.empty()) return error;
    if (count != columns_.size()) {
      return absl::StrCat("has ", count, " fields, the header has ", columns_.size());
    }
    const std::string& metric = fields_[metric_column_];
    if (metric.empty()) return "empty metric_name";
    absl::StatusOr<int64_t> nanos = ParseK6CsvTimestamp(fields_[time_column_]);
    if (!nanos.ok()) return std::string(nanos.status().message());
    const std::string& value_text = fields_[value_column_];
    double value = 0;
    const char* end = value_text.data() + value_text.size();
    auto [ptr, ec] = std::from_chars(value_text.data(), end, value);
    if (ec != std::errc() || ptr != end) {
      return absl::StrCat("metric_value \"", value_text, "\" is not a number");
    }

    sample_.metric.assign(metric);
    sample_.time_unix_nano = *nanos;
    sample_.value = value;
    {
      TagWriter writer(sample_);
      for (size_t i = 0; i < count; ++i) {
        const std::string& cell = fields_[i];
        if (cell.empty()) continue;
        if (columns_[i].role == Role::kTag) {
          writer.Add(columns_[i].name, cell);
        } else if (columns_[i].role == Role::kExtraTags) {
          // k=v&k2=v2, written by k6 without escaping: split at '&', then at the first '='.
          absl::string_view rest = cell;
          while (!rest.empty()) {
            size_t amp = rest.find('&');
            absl::string_view item = rest.substr(0, amp);
            rest = amp == absl::string_view::npos ? absl::string_view() : rest.substr(amp + 1);
            if (item.empty()) continue;
            size_t eq = item.find('=');
            if (eq == absl::string_view::npos) {
              writer.Add(item, absl::string_view());
            } else {
              writer.Add(item.substr(0, eq), item.substr(eq + 1));
            }
          }
        }
      }
    }
    ++stats_.samples;
    if (callbacks_.on_sample) callbacks_.on_sample(std::move(sample_));
    return std::string();
  }

  const K6ResultsReader::Callbacks& callbacks_;
  K6ReadStats& stats_;
  std::vector<Column> columns_;
  size_t metric_column_ = kNone;
  size_t time_column_ = kNone;
  size_t value_column_ = kNone;
  std::vector<std::string> fields_;
  K6Sample sample_;
};

CsvParser::CsvParser(const K6ResultsReader::Callbacks& callbacks, K6ReadStats& stats)
    : impl_(std::make_unique<Impl>(callbacks, stats)) {}
CsvParser::~CsvParser() = default;
absl::Status CsvParser::ParseHeader(absl::string_view record) { return impl_->ParseHeader(record); }
void CsvParser::Parse(absl::string_view record, int64_t line_no) { impl_->Parse(record, line_no); }

}  // namespace k6_reader
}  // namespace rwexport
