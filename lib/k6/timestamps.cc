// The timestamps of k6 result files (lib/k6/results_reader.h declares them): RFC 3339 and
// the Unix times of k6's CSV output, to exact nanoseconds.
#include <charconv>
#include <cstdint>
#include <limits>
#include <system_error>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lib/k6/results_reader.h"

namespace rwexport {
namespace {

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

}  // namespace rwexport
