// A parser of InfluxDB line protocol (1.x), the body of `POST /write`:
//
//   measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//
// Escaping, as the InfluxDB documentation gives it: in a measurement, a backslash escapes a
// comma or a space; in tag keys, tag values and field keys it escapes a comma, an equals sign
// or a space; in a string field value (double-quoted) it escapes a double quote or a
// backslash. A backslash before any other character is kept as written. Field values: floats
// (`1`, `-1.5`, `2e-3`), integers (`1i`), unsigned integers (`1u`), strings (`"x"`) and
// booleans (t, T, true, True, TRUE, f, F, false, False, FALSE). NaN and infinities are not
// numbers in line protocol. The timestamp is an integer in the request's precision; a line
// without one gets the caller's `now`.
//
// Lines are separated by '\n' (a '\r' before it is dropped); empty lines and lines starting
// with '#' (comments) are skipped, as InfluxDB skips them.
//
// Errors use InfluxDB's own wording where it has one ("missing fields", "missing tag value",
// "invalid number", "unbalanced quotes", "bad timestamp", ...), so a client reads what it
// would read from InfluxDB.
//
// The parser allocates nothing per line once warmed up: names and strings without escapes are
// views into the input; unescaped copies go to a buffer of the parser's, valid until the next
// line is parsed. A line whose tag section is the previous line's (k6 writes a request's
// samples so) reuses the previous tags: those views point into the parser, valid until a line
// with other tags is parsed. Thread-compatible: one parser per thread.
#ifndef RWEXPORT_LIB_INGEST_LINE_PROTOCOL_H_
#define RWEXPORT_LIB_INGEST_LINE_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace rwexport {

// Nanoseconds per unit of a `precision` query parameter: n and ns 1, u (also us, µ) 1e3, ms
// 1e6, s 1e9, m 60e9, h 3600e9; an empty one means ns. 0 for anything else.
int64_t LinePrecisionNanos(absl::string_view precision);

struct LineField {
  enum class Type : uint8_t { kFloat, kInteger, kUnsigned, kString, kBoolean };
  absl::string_view key;
  Type type = Type::kFloat;
  // Float, integer and unsigned values, as a double (integers beyond 2^53 are rounded).
  double number = 0;
  bool boolean = false;
  // The value as written: a string's content, unescaped; a number's or boolean's text without
  // its `i` or `u` suffix.
  absl::string_view text;
};

// One parsed line. Views point into the line or into the parser's buffer.
struct ParsedLine {
  absl::string_view measurement;
  std::vector<std::pair<absl::string_view, absl::string_view>> tags;  // in line order
  // The line's tags are byte for byte those of the line parsed before it.
  bool tags_same_as_previous = false;
  std::vector<LineField> fields;  // in line order
  bool has_timestamp = false;
  int64_t timestamp_ns = 0;  // the timestamp times the precision, or `now`
};

class LineProtocolParser {
 public:
  // `precision_ns`: from LinePrecisionNanos (> 0).
  explicit LineProtocolParser(int64_t precision_ns = 1) : precision_ns_(precision_ns) {}

  // Parses `line` (no '\n' in it; a trailing '\r' is allowed). Returns nullptr on success, or
  // a static string saying what is wrong, in InfluxDB's words. `now_ns` is the timestamp of a
  // line without one. Leaves `out` unspecified on error.
  const char* Parse(absl::string_view line, int64_t now_ns, ParsedLine* out);

  // Whether a line is one to skip: empty, blank, or a comment.
  static bool IsBlankOrComment(absl::string_view line);

 private:
  // Reads a measurement, tag key, tag value or field key starting at `*pos`, up to the first
  // unescaped character of the class set `stops` (or the end); a backslash escapes those.
  absl::string_view ReadName(absl::string_view line, size_t* pos, uint8_t stops);
  const char* ReadFieldValue(absl::string_view line, size_t* pos, LineField* field);

  int64_t precision_ns_;
  std::string unescaped_;
  // The last tag section parsed (",k=v,k=v", without escapes) and its tags, as views into it.
  std::string section_;
  std::vector<std::pair<absl::string_view, absl::string_view>> section_tags_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_INGEST_LINE_PROTOCOL_H_
