#include "lib/model/trend_stat.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

// More decimals than this would exceed what a double distinguishes near 100.
constexpr size_t kMaxPercentileDecimals = 6;

constexpr absl::string_view kExpected =
    "expected count, sum, min, max, avg, med or p(N) with 0 < N <= 100, e.g. p(95) or p(99.9)";

absl::Status BadStat(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid trend statistic \"", text, "\": ", why, "; ", kExpected));
}

bool AllDigits(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

absl::StatusOr<TrendStat> ParseTrendStat(absl::string_view text) {
  using Kind = TrendStat::Kind;
  struct Named {
    absl::string_view name;
    Kind kind;
    double percentile;
  };
  static constexpr Named kNamed[] = {
      {"count", Kind::kCount, 0}, {"sum", Kind::kSum, 0}, {"min", Kind::kMin, 0},
      {"max", Kind::kMax, 0},     {"avg", Kind::kAvg, 0}, {"med", Kind::kMed, 50},
  };
  for (const Named& named : kNamed) {
    if (text == named.name) {
      return TrendStat(named.kind, named.percentile, std::string(named.name),
                       std::string(named.name));
    }
  }
  if (text.empty()) return BadStat(text, "empty name");
  if (!absl::StartsWith(text, "p(") || !absl::EndsWith(text, ")") || text.size() < 3) {
    return BadStat(text, "unknown statistic");
  }
  const absl::string_view number = text.substr(2, text.size() - 3);
  if (number.empty()) return BadStat(text, "the percentile is missing");

  absl::string_view int_part = number;
  absl::string_view frac_part;
  const size_t dot = number.find('.');
  if (dot != absl::string_view::npos) {
    int_part = number.substr(0, dot);
    frac_part = number.substr(dot + 1);
  }
  if (!AllDigits(int_part) || !AllDigits(frac_part) || (int_part.empty() && frac_part.empty())) {
    return BadStat(text,
                   absl::StrCat("the percentile \"", number, "\" is not a plain decimal number"));
  }
  // Normalise: no leading zeros in the integer part, no trailing zeros in the fraction.
  while (int_part.size() > 1 && int_part.front() == '0') int_part.remove_prefix(1);
  if (int_part.empty()) int_part = "0";
  while (!frac_part.empty() && frac_part.back() == '0') frac_part.remove_suffix(1);

  const bool above_100 =
      int_part.size() > 3 || (int_part.size() == 3 && (int_part > "100" || !frac_part.empty()));
  if (above_100) return BadStat(text, absl::StrCat("the percentile ", number, " is above 100"));
  if (int_part == "0" && frac_part.empty()) {
    return BadStat(text, "the percentile must be above 0");
  }
  if (frac_part.size() > kMaxPercentileDecimals) {
    return BadStat(
        text, absl::StrCat("the percentile has more than ", kMaxPercentileDecimals, " decimals"));
  }

  const std::string normalised =
      frac_part.empty() ? std::string(int_part) : absl::StrCat(int_part, ".", frac_part);
  double percentile = 0;
  if (!absl::SimpleAtod(normalised, &percentile)) {
    return BadStat(text, absl::StrCat("the percentile \"", number, "\" is not a number"));
  }
  std::string suffix;
  if (frac_part.empty()) {
    suffix = absl::StrCat("p", int_part);
  } else if (int_part.size() == 2) {
    suffix = absl::StrCat("p", int_part, frac_part);
  } else {
    suffix = absl::StrCat("p", int_part, "_", frac_part);
  }
  return TrendStat(Kind::kPercentile, percentile, std::move(suffix),
                   absl::StrCat("p(", normalised, ")"));
}

const std::vector<TrendStat>& DefaultTrendStats() {
  static const std::vector<TrendStat>* const stats = [] {
    auto* stats = new std::vector<TrendStat>();
    for (absl::string_view name :
         {"min", "max", "avg", "med", "p(90)", "p(95)", "p(99)", "count"}) {
      stats->push_back(*ParseTrendStat(name));
    }
    return stats;
  }();
  return *stats;
}

}  // namespace rwexport
