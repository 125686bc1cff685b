#include "lib/ingest/line_protocol.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace rwexport {
namespace {

// Character classes, one bit each, looked up in a table: the scanners test one byte per step.
constexpr uint8_t kSpace = 1;      // ' '
constexpr uint8_t kComma = 2;      // ','
constexpr uint8_t kEquals = 4;     // '='
constexpr uint8_t kBackslash = 8;  // '\\'

struct CharTable {
  uint8_t bits[256] = {};
  constexpr CharTable() {
    bits[static_cast<uint8_t>(' ')] = kSpace;
    bits[static_cast<uint8_t>(',')] = kComma;
    bits[static_cast<uint8_t>('=')] = kEquals;
    bits[static_cast<uint8_t>('\\')] = kBackslash;
  }
};
constexpr CharTable kTable;

inline uint8_t Class(char c) { return kTable.bits[static_cast<uint8_t>(c)]; }

inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The end of a field value or timestamp token: the first ',' or ' ' (`stops`), or the end.
size_t TokenEnd(absl::string_view line, size_t pos, bool stop_at_comma) {
  const uint8_t stops = stop_at_comma ? (kSpace | kComma) : kSpace;
  const size_t n = line.size();
  while (pos < n && (Class(line[pos]) & stops) == 0) ++pos;
  return pos;
}

// Parses an optionally signed decimal integer that is all of `text`.
bool ParseInt64(absl::string_view text, int64_t* out) {
  if (text.empty() || (text[0] == '+')) return false;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  return ec == std::errc() && ptr == end;
}

bool ParseUint64(absl::string_view text, uint64_t* out) {
  if (text.empty() || !IsDigit(text[0])) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

// A float as line protocol writes one: [+-]digits[.digits][(e|E)[+-]digits], or starting with
// '.'; never nan or inf.
bool ParseFloat(absl::string_view text, double* out) {
  if (text.empty()) return false;
  bool digit = false;
  for (char c : text) {
    if (IsDigit(c)) {
      digit = true;
    } else if (c != '.' && c != '-' && c != '+' && c != 'e' && c != 'E') {
      return false;
    }
  }
  if (!digit) return false;
  size_t skip = text[0] == '+' ? 1 : 0;  // from_chars takes '-' but not '+'
  const char* begin = text.data() + skip;
  const char* end = text.data() + text.size();
  if (begin < end && *begin == '-' && skip == 1) return false;
  auto [ptr, ec] = std::from_chars(begin, end, *out, std::chars_format::general);
  return ec == std::errc() && ptr == end && std::isfinite(*out);
}

bool ParseBoolean(absl::string_view text, bool* out) {
  if (text == "t" || text == "T" || text == "true" || text == "True" || text == "TRUE") {
    *out = true;
    return true;
  }
  if (text == "f" || text == "F" || text == "false" || text == "False" || text == "FALSE") {
    *out = false;
    return true;
  }
  return false;
}

}  // namespace

int64_t LinePrecisionNanos(absl::string_view precision) {
  if (precision.empty() || precision == "n" || precision == "ns") return 1;
  if (precision == "u" || precision == "us" || precision == "\xC2\xB5") return 1000;
  if (precision == "ms") return 1000000;
  if (precision == "s") return 1000000000;
  if (precision == "m") return int64_t{60} * 1000000000;
  if (precision == "h") return int64_t{3600} * 1000000000;
  return 0;
}

bool LineProtocolParser::IsBlankOrComment(absl::string_view line) {
  size_t pos = 0;
  while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t' || line[pos] == '\r')) ++pos;
  return pos == line.size() || line[pos] == '#';
}

absl::string_view LineProtocolParser::ReadName(absl::string_view line, size_t* pos, uint8_t stops) {
  // `stops` are also the characters a backslash escapes here.
  const size_t start = *pos;
  const size_t n = line.size();
  const uint8_t interesting = stops | kBackslash;
  size_t i = start;
  bool escaped = false;
  while (true) {
    while (i < n && (Class(line[i]) & interesting) == 0) ++i;
    if (i >= n || line[i] != '\\') break;
    if (i + 1 < n && (Class(line[i + 1]) & stops) != 0) {
      escaped = true;
      i += 2;
    } else {
      ++i;  // a backslash before anything else is itself
    }
  }
  *pos = i;
  if (!escaped) return line.substr(start, i - start);
  // unescaped_ was reserved to the line's size: appending never moves earlier views.
  const size_t out_start = unescaped_.size();
  for (size_t k = start; k < i; ++k) {
    if (line[k] == '\\' && k + 1 < i && (Class(line[k + 1]) & stops) != 0) ++k;
    unescaped_.push_back(line[k]);
  }
  return absl::string_view(unescaped_.data() + out_start, unescaped_.size() - out_start);
}

const char* LineProtocolParser::ReadFieldValue(absl::string_view line, size_t* pos,
                                               LineField* field) {
  size_t i = *pos;
  if (line[i] == '"') {
    const size_t start = ++i;
    bool escaped = false;
    const size_t n = line.size();
    while (true) {  // to the closing quote: memchr for it, then for a backslash before it
      const void* q = std::memchr(line.data() + i, '"', n - i);
      const size_t quote = q == nullptr ? n : static_cast<const char*>(q) - line.data();
      const void* b = std::memchr(line.data() + i, '\\', quote - i);
      if (b == nullptr) {
        i = quote;
        break;
      }
      i = static_cast<const char*>(b) - line.data();
      if (i + 1 < n && (line[i + 1] == '"' || line[i + 1] == '\\')) {
        escaped = true;
        i += 2;
      } else {
        ++i;
      }
    }
    if (i >= line.size()) return "unbalanced quotes";
    field->type = LineField::Type::kString;
    if (!escaped) {
      field->text = line.substr(start, i - start);
    } else {
      const size_t out_start = unescaped_.size();
      for (size_t k = start; k < i; ++k) {
        if (line[k] == '\\' && (line[k + 1] == '"' || line[k + 1] == '\\')) ++k;
        unescaped_.push_back(line[k]);
      }
      field->text = absl::string_view(unescaped_.data() + out_start, unescaped_.size() - out_start);
    }
    ++i;  // the closing quote
    if (i < line.size() && line[i] != ',' && line[i] != ' ') return "invalid field format";
    *pos = i;
    return nullptr;
  }
  const size_t end = TokenEnd(line, i, /*stop_at_comma=*/true);
  absl::string_view token = line.substr(i, end - i);
  *pos = end;
  const char first = token[0];
  if (first == 't' || first == 'T' || first == 'f' || first == 'F') {
    if (!ParseBoolean(token, &field->boolean)) return "invalid boolean";
    field->type = LineField::Type::kBoolean;
    field->text = token;
    return nullptr;
  }
  const char last = token.back();
  if (last == 'i') {
    int64_t v;
    token.remove_suffix(1);
    if (!ParseInt64(token, &v)) return "invalid number";
    field->type = LineField::Type::kInteger;
    field->number = static_cast<double>(v);
    field->text = token;
    return nullptr;
  }
  if (last == 'u') {
    uint64_t v;
    token.remove_suffix(1);
    if (!ParseUint64(token, &v)) return "invalid number";
    field->type = LineField::Type::kUnsigned;
    field->number = static_cast<double>(v);
    field->text = token;
    return nullptr;
  }
  if (!ParseFloat(token, &field->number)) return "invalid number";
  field->type = LineField::Type::kFloat;
  field->text = token;
  return nullptr;
}

const char* LineProtocolParser::Parse(absl::string_view line, int64_t now_ns, ParsedLine* out) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  unescaped_.clear();
  if (unescaped_.capacity() < line.size()) unescaped_.reserve(line.size());
  out->tags.clear();
  out->fields.clear();
  size_t pos = 0;
  while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;

  // Measurement.
  out->measurement = ReadName(line, &pos, kComma | kSpace);
  if (out->measurement.empty()) return "missing measurement";

  // Tags. k6 writes a request's samples one after the other with the same tags: when the
  // bytes after the measurement are the previous line's tag section followed by a space, the
  // tags are the previous line's, kept (views into section_) without scanning them again.
  out->tags_same_as_previous = false;
  const size_t tags_start = pos;
  if (!section_.empty() && line.size() - pos > section_.size() &&
      line[pos + section_.size()] == ' ' &&
      std::memcmp(line.data() + pos, section_.data(), section_.size()) == 0) {
    out->tags = section_tags_;
    out->tags_same_as_previous = true;
    pos += section_.size();
  }
  bool escaped_tags = false;
  while (!out->tags_same_as_previous && pos < line.size() && line[pos] == ',') {
    ++pos;
    const size_t unescaped_before = unescaped_.size();
    absl::string_view key = ReadName(line, &pos, kComma | kEquals | kSpace);
    if (key.empty()) return "missing tag key";
    if (pos >= line.size() || line[pos] != '=') return "missing tag value";
    ++pos;
    absl::string_view value = ReadName(line, &pos, kComma | kEquals | kSpace);
    if (value.empty()) return "missing tag value";
    if (pos < line.size() && line[pos] == '=') return "invalid tag format";
    escaped_tags = escaped_tags || unescaped_.size() != unescaped_before;
    out->tags.emplace_back(key, value);
  }
  if (!out->tags_same_as_previous) {
    // Keep this tag section (without escapes, ended by a space) for the next line.
    section_.clear();
    section_tags_.clear();
    if (!escaped_tags && pos > tags_start && pos < line.size() && line[pos] == ' ') {
      section_.assign(line.data() + tags_start, pos - tags_start);
      const char* base = line.data() + tags_start;
      for (const auto& [key, value] : out->tags) {
        section_tags_.emplace_back(
            absl::string_view(section_.data() + (key.data() - base), key.size()),
            absl::string_view(section_.data() + (value.data() - base), value.size()));
      }
    }
  }

  // Fields.
  while (pos < line.size() && line[pos] == ' ') ++pos;
  if (pos >= line.size()) return "missing fields";
  while (true) {
    LineField field;
    field.key = ReadName(line, &pos, kComma | kEquals | kSpace);
    if (field.key.empty()) return "missing field key";
    if (pos >= line.size() || line[pos] != '=') return "invalid field format";
    ++pos;
    if (pos >= line.size() || line[pos] == ',' || line[pos] == ' ') return "missing field value";
    if (const char* error = ReadFieldValue(line, &pos, &field)) return error;
    out->fields.push_back(field);
    if (pos < line.size() && line[pos] == ',') {
      ++pos;
      continue;
    }
    break;
  }

  // Timestamp.
  while (pos < line.size() && line[pos] == ' ') ++pos;
  if (pos >= line.size()) {
    out->has_timestamp = false;
    out->timestamp_ns = now_ns;
    return nullptr;
  }
  const size_t end = TokenEnd(line, pos, /*stop_at_comma=*/false);
  int64_t ts;
  if (!ParseInt64(line.substr(pos, end - pos), &ts)) return "bad timestamp";
  for (size_t k = end; k < line.size(); ++k) {
    if (line[k] != ' ') return "bad timestamp";
  }
  if (precision_ns_ != 1) {
    const int64_t limit = std::numeric_limits<int64_t>::max() / precision_ns_;
    if (ts > limit || ts < -limit) return "bad timestamp";
    ts *= precision_ns_;
  }
  out->has_timestamp = true;
  out->timestamp_ns = ts;
  return nullptr;
}

}  // namespace rwexport
