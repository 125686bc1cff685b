#include "lib/k6/results_reader.h"

#include <fcntl.h>
#include <simdjson.h>
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

namespace rwexport {
namespace {

constexpr size_t kInitialBufferBytes = 1 << 20;
// A longer line is no k6 output; stop rather than buffer a whole binary file.
constexpr size_t kMaxRecordBytes = 64 << 20;

// ---------------------------------------------------------------------------------------------
// Byte sources.

using ByteSource = K6ByteSource;

class FdSource : public ByteSource {
 public:
  FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    for (;;) {
      ssize_t got = ::read(fd_, dst, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("reading ", name_));
    }
  }

 private:
  int fd_;
  std::string name_;
};

class StreamSource : public ByteSource {
 public:
  explicit StreamSource(std::istream& in) : in_(in) {}
  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    if (in_.eof()) return 0;
    in_.read(dst, static_cast<std::streamsize>(n));
    if (in_.bad()) return absl::DataLossError("reading the k6 results stream failed");
    return static_cast<size_t>(in_.gcount());
  }

 private:
  std::istream& in_;
};

class BufferSource : public ByteSource {
 public:
  explicit BufferSource(absl::string_view data) : data_(data) {}
  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    size_t take = std::min(n, data_.size());
    std::memcpy(dst, data_.data(), take);
    data_.remove_prefix(take);
    return take;
  }

 private:
  absl::string_view data_;
};

// ---------------------------------------------------------------------------------------------
// Splits the input into records: lines, or for CSV lines joined while a quoted field is open.
// Every record handed out is followed in memory by at least SIMDJSON_PADDING readable bytes,
// so simdjson can parse it in place.
class RecordReader {
 public:
  explicit RecordReader(ByteSource* source) : source_(source) { Allocate(kInitialBufferBytes); }

  // Reads the first chunk, so that Buffered() can be inspected before the first Next().
  absl::Status Prime() { return Fill(); }
  absl::string_view Buffered() const {
    return absl::string_view(buf_.get() + begin_, end_ - begin_);
  }

  // The next record (without its line end) and its first line number; false at the end.
  absl::StatusOr<bool> Next(bool csv, absl::string_view* record, int64_t* first_line) {
    size_t scan = begin_;
    bool in_quotes = false;
    int64_t lines = 0;
    for (;;) {
      const char* base = buf_.get();
      const char* nl = static_cast<const char*>(std::memchr(base + scan, '\n', end_ - scan));
      if (nl != nullptr) {
        size_t nl_pos = static_cast<size_t>(nl - base);
        if (csv) in_quotes ^= (std::count(base + scan, nl, '"') & 1) != 0;
        ++lines;
        if (!in_quotes) {
          Emit(begin_, nl_pos, lines, record, first_line);
          begin_ = nl_pos + 1;
          return true;
        }
        scan = nl_pos + 1;
        continue;
      }
      if (eof_) {
        if (begin_ == end_) return false;
        // The last line has no line end (or, in CSV, a quote was left open).
        Emit(begin_, end_, lines + (scan < end_ ? 1 : 0), record, first_line);
        begin_ = end_;
        return true;
      }
      if (end_ - begin_ >= kMaxRecordBytes) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_ + 1, " is longer than ",
                                                       kMaxRecordBytes >> 20,
                                                       " MiB; this is not a k6 results file"));
      }
      size_t offset = scan - begin_;
      absl::Status status = Fill();
      if (!status.ok()) return status;
      scan = begin_ + offset;
    }
  }

  int64_t lines() const { return line_; }

 private:
  void Allocate(size_t capacity) {
    std::unique_ptr<char[]> fresh(new char[capacity + simdjson::SIMDJSON_PADDING]());
    if (buf_ != nullptr) std::memcpy(fresh.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    buf_ = std::move(fresh);
    capacity_ = capacity;
  }

  // Moves the pending bytes to the front (growing the buffer if they fill it) and reads more.
  absl::Status Fill() {
    if (begin_ > 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == capacity_) Allocate(capacity_ * 2);
    absl::StatusOr<size_t> got = source_->Read(buf_.get() + end_, capacity_ - end_);
    if (!got.ok()) return got.status();
    if (*got == 0) eof_ = true;
    end_ += *got;
    return absl::OkStatus();
  }

  void Emit(size_t from, size_t to, int64_t lines, absl::string_view* record, int64_t* first_line) {
    if (to > from && buf_[to - 1] == '\r') --to;
    *record = absl::string_view(buf_.get() + from, to - from);
    *first_line = line_ + 1;
    line_ += lines;
  }

  ByteSource* source_;
  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  int64_t line_ = 0;
};

// simdjson speaks std::string_view; Debian's Abseil has its own string_view.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsBlank(absl::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  }
  return true;
}

// Reuses the strings already in `sample.tags` (when the consumer did not move them away).
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

// ---------------------------------------------------------------------------------------------
// JSON.

class JsonLineParser {
 public:
  explicit JsonLineParser(const K6ResultsReader::Callbacks& callbacks, K6ReadStats& stats)
      : callbacks_(callbacks), stats_(stats) {}

  void Parse(absl::string_view line, int64_t line_no) {
    std::string error = ParseLine(line);
    if (!error.empty()) {
      ++stats_.errors;
      if (callbacks_.on_error) callbacks_.on_error(ReadError{line_no, std::move(error)});
    }
  }

 private:
  static std::string JsonError(absl::string_view what, simdjson::error_code code) {
    return absl::StrCat(what, ": ", simdjson::error_message(code));
  }

  // Returns an empty string on success, else what is wrong with the line.
  std::string ParseLine(absl::string_view line) {
    simdjson::dom::element doc;
    simdjson::error_code err =
        parser_.parse(line.data(), line.size(), /*realloc_if_needed=*/false).get(doc);
    if (err) return JsonError("invalid JSON", err);
    simdjson::dom::object root;
    if (doc.get_object().get(root)) return "not a JSON object";

    std::string_view type;
    std::string_view metric;
    bool has_metric = false;
    simdjson::dom::element data;
    bool has_data = false;
    for (simdjson::dom::key_value_pair field : root) {
      if (field.key == "type") {
        if (field.value.get_string().get(type)) return "\"type\" is not a string";
      } else if (field.key == "metric") {
        if (field.value.get_string().get(metric)) return "\"metric\" is not a string";
        has_metric = true;
      } else if (field.key == "data") {
        data = field.value;
        has_data = true;
      }
    }
    if (type.empty()) return "missing \"type\"";
    if (!has_data) return "missing \"data\"";
    if (type == "Point") {
      if (!has_metric) return "Point without \"metric\"";
      return ParsePoint(metric, data);
    }
    if (type == "Metric") return ParseMetric(metric, data);
    return absl::StrCat("unknown record type \"", Sv(type), "\" (want Metric or Point)");
  }

  std::string ParsePoint(std::string_view metric, simdjson::dom::element data) {
    if (metric.empty()) return "Point with an empty metric name";
    simdjson::dom::object object;
    if (data.get_object().get(object)) return "Point \"data\" is not an object";
    std::string_view time;
    bool has_time = false;
    bool has_value = false;
    double value = 0;
    simdjson::dom::element tags;
    bool has_tags = false;
    for (simdjson::dom::key_value_pair field : object) {
      if (field.key == "time") {
        if (field.value.get_string().get(time)) return "Point \"time\" is not a string";
        has_time = true;
      } else if (field.key == "value") {
        simdjson::error_code err = field.value.get_double().get(value);
        if (err) return "Point \"value\" is not a number";
        has_value = true;
      } else if (field.key == "tags") {
        tags = field.value;
        has_tags = !tags.is_null();
      }
    }
    if (!has_time) return "Point without \"time\"";
    if (!has_value) return "Point without \"value\"";
    absl::StatusOr<int64_t> nanos = ParseRfc3339UnixNanos(Sv(time));
    if (!nanos.ok()) return std::string(nanos.status().message());

    sample_.metric.assign(metric.data(), metric.size());
    sample_.time_unix_nano = *nanos;
    sample_.value = value;
    {
      TagWriter writer(sample_);
      if (has_tags) {
        simdjson::dom::object tag_object;
        if (tags.get_object().get(tag_object)) {
          return "Point \"tags\" is neither an object nor null";
        }
        for (simdjson::dom::key_value_pair tag : tag_object) {
          std::string_view tag_value;
          if (tag.value.get_string().get(tag_value)) {
            return absl::StrCat("tag \"", Sv(tag.key), "\" is not a string");
          }
          writer.Add(Sv(tag.key), Sv(tag_value));
        }
      }
    }
    ++stats_.samples;
    if (callbacks_.on_sample) callbacks_.on_sample(std::move(sample_));
    return std::string();
  }

  std::string ParseMetric(std::string_view metric, simdjson::dom::element data) {
    simdjson::dom::object object;
    if (data.get_object().get(object)) return "Metric \"data\" is not an object";
    std::string_view name = metric;
    std::string_view type;
    std::string_view contains;
    bool has_type = false;
    bool has_contains = false;
    for (simdjson::dom::key_value_pair field : object) {
      if (field.key == "name") {
        if (field.value.get_string().get(name)) return "Metric \"name\" is not a string";
      } else if (field.key == "type") {
        if (field.value.get_string().get(type)) return "Metric \"type\" is not a string";
        has_type = true;
      } else if (field.key == "contains") {
        if (field.value.get_string().get(contains)) return "Metric \"contains\" is not a string";
        has_contains = true;
      }
    }
    if (name.empty()) return "Metric without a name";
    if (!has_type) return absl::StrCat("Metric \"", Sv(name), "\" without \"type\"");
    std::optional<MetricType> metric_type = ParseMetricType(Sv(type));
    if (!metric_type) {
      return absl::StrCat("Metric \"", Sv(name), "\" has unknown type \"", Sv(type),
                          "\" (want counter, gauge, rate or trend)");
    }
    ValueKind kind = ValueKind::kDefault;
    if (has_contains) {
      std::optional<ValueKind> parsed = ParseValueKind(Sv(contains));
      if (!parsed) {
        return absl::StrCat("Metric \"", Sv(name), "\" has unknown \"contains\" \"", Sv(contains),
                            "\" (want default, time or data)");
      }
      kind = *parsed;
    }
    ++stats_.metrics;
    if (callbacks_.on_metric) {
      callbacks_.on_metric(K6Metric{std::string(name), *metric_type, kind});
    }
    return std::string();
  }

  const K6ResultsReader::Callbacks& callbacks_;
  K6ReadStats& stats_;
  simdjson::dom::parser parser_;
  K6Sample sample_;
};

// ---------------------------------------------------------------------------------------------
// CSV.

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

class CsvParser {
 public:
  CsvParser(const K6ResultsReader::Callbacks& callbacks, K6ReadStats& stats)
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
  RecordReader reader(&source);
  absl::Status status = reader.Prime();
  if (!status.ok()) return status;
  absl::string_view head = reader.Buffered();
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    return absl::InvalidArgumentError(
        "the input is gzip-compressed (k6 --out json=FILE.gz); decompress it first (gunzip)");
  }
  if (format == K6Format::kAuto) format = Sniff(head);

  K6ReadStats stats;
  absl::string_view record;
  int64_t line_no = 0;
  if (format == K6Format::kJson) {
    JsonLineParser parser(callbacks, stats);
    for (;;) {
      absl::StatusOr<bool> more = reader.Next(/*csv=*/false, &record, &line_no);
      if (!more.ok()) return more.status();
      if (!*more) break;
      if (IsBlank(record)) continue;
      parser.Parse(record, line_no);
    }
  } else {
    CsvParser parser(callbacks, stats);
    bool have_header = false;
    for (;;) {
      absl::StatusOr<bool> more = reader.Next(/*csv=*/true, &record, &line_no);
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
  stats.lines = reader.lines();
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

// Reads exactly `n` decimal digits at `s[pos]`.
bool ReadDigits(absl::string_view s, size_t pos, int n, int* out) {
  if (pos + n > s.size()) return false;
  int value = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))) return 29;
  return kDays[month - 1];
}

absl::Status BadTime(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid time \"", text, "\": ", why));
}

absl::StatusOr<int64_t> ToNanos(__int128 seconds, int64_t fraction_nanos, absl::string_view text) {
  __int128 nanos = seconds * 1000000000 + fraction_nanos;
  if (nanos > std::numeric_limits<int64_t>::max() || nanos < std::numeric_limits<int64_t>::min()) {
    return BadTime(text, "out of range (years 1678..2262)");
  }
  return static_cast<int64_t>(nanos);
}

}  // namespace

absl::StatusOr<int64_t> ParseRfc3339UnixNanos(absl::string_view text) {
  int year, month, day, hour, minute, second;
  if (!ReadDigits(text, 0, 4, &year) || text.size() < 19 || text[4] != '-' ||
      !ReadDigits(text, 5, 2, &month) || text[7] != '-' || !ReadDigits(text, 8, 2, &day) ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !ReadDigits(text, 11, 2, &hour) ||
      text[13] != ':' || !ReadDigits(text, 14, 2, &minute) || text[16] != ':' ||
      !ReadDigits(text, 17, 2, &second)) {
    return BadTime(text, "want RFC 3339, e.g. 2024-10-30T16:20:21.635558127Z");
  }
  if (month < 1 || month > 12) return BadTime(text, "month out of range");
  if (day < 1 || day > DaysInMonth(year, month)) return BadTime(text, "day out of range");
  if (hour > 23) return BadTime(text, "hour out of range");
  if (minute > 59) return BadTime(text, "minute out of range");
  if (second > 59) return BadTime(text, "second out of range");

  size_t pos = 19;
  int64_t fraction = 0;
  if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
    ++pos;
    int digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits < 9) {
        fraction = fraction * 10 + (text[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return BadTime(text, "no digits after the decimal point");
    for (int i = digits; i < 9; ++i) fraction *= 10;
  }
  if (pos == text.size()) return BadTime(text, "missing zone (Z or +hh:mm)");
  int offset_seconds = 0;
  char zone = text[pos];
  if (zone == 'Z' || zone == 'z') {
    ++pos;
  } else if (zone == '+' || zone == '-') {
    int offset_hours, offset_minutes;
    if (!ReadDigits(text, pos + 1, 2, &offset_hours) || pos + 3 >= text.size() ||
        text[pos + 3] != ':' || !ReadDigits(text, pos + 4, 2, &offset_minutes)) {
      return BadTime(text, "bad zone offset, want +hh:mm");
    }
    if (offset_hours > 23 || offset_minutes > 59) return BadTime(text, "zone offset out of range");
    offset_seconds = offset_hours * 3600 + offset_minutes * 60;
    if (zone == '-') offset_seconds = -offset_seconds;
    pos += 6;
  } else {
    return BadTime(text, "bad zone, want Z or +hh:mm");
  }
  if (pos != text.size()) return BadTime(text, "trailing characters");

  __int128 seconds = static_cast<__int128>(DaysFromCivil(year, month, day)) * 86400 + hour * 3600 +
                     minute * 60 + second - offset_seconds;
  return ToNanos(seconds, fraction, text);
}

absl::StatusOr<int64_t> ParseK6CsvTimestamp(absl::string_view text) {
  if (text.empty()) return BadTime(text, "empty timestamp");
  if (text.find_first_of("-:Tt") != absl::string_view::npos) return ParseRfc3339UnixNanos(text);
  size_t dot = text.find('.');
  absl::string_view whole = text.substr(0, dot);
  uint64_t number = 0;
  auto [ptr, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), number);
  if (whole.empty() || ec == std::errc::result_out_of_range) {
    return BadTime(text, whole.empty() ? "not a Unix time" : "out of range");
  }
  if (ec != std::errc() || ptr != whole.data() + whole.size()) {
    return BadTime(text, "want a Unix time or RFC 3339");
  }
  if (dot != absl::string_view::npos) {  // seconds with a fraction
    absl::string_view digits = text.substr(dot + 1);
    if (digits.empty()) return BadTime(text, "no digits after the decimal point");
    int64_t fraction = 0;
    for (size_t i = 0; i < digits.size(); ++i) {
      if (!absl::ascii_isdigit(digits[i])) return BadTime(text, "want a Unix time or RFC 3339");
      if (i < 9) fraction = fraction * 10 + (digits[i] - '0');
    }
    for (size_t i = digits.size(); i < 9; ++i) fraction *= 10;
    return ToNanos(number, fraction, text);
  }
  if (number < 100000000000ULL) return ToNanos(number, 0, text);  // s
  if (number < 100000000000000ULL) {                              // ms
    return ToNanos(number / 1000, static_cast<int64_t>(number % 1000) * 1000000, text);
  }
  if (number < 100000000000000000ULL) {  // µs
    return ToNanos(number / 1000000, static_cast<int64_t>(number % 1000000) * 1000, text);
  }
  return ToNanos(number / 1000000000, static_cast<int64_t>(number % 1000000000), text);  // ns
}

K6Format K6FormatForPath(absl::string_view path) {
  if (absl::EndsWithIgnoreCase(path, ".json") || absl::EndsWithIgnoreCase(path, ".jsonl") ||
      absl::EndsWithIgnoreCase(path, ".ndjson")) {
    return K6Format::kJson;
  }
  if (absl::EndsWithIgnoreCase(path, ".csv")) return K6Format::kCsv;
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
