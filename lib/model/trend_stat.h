// TrendStat: one statistic exported for a k6 Trend metric ("min", "p(95)", ...), parsed from
// k6's spelling, with the suffix of its exported series name (k6_<name>_<suffix>) and its
// computation over a window's accumulator. Immutable value type; thread-safe.
//
// Accepted spellings: "count", "sum", "min", "max", "avg", "med" and "p(N)", where N is a
// plain decimal number (digits with an optional '.'; no sign, exponent or spaces) with
// 0 < N <= 100, e.g. "p(90)", "p(99.9)", "p(0.5)". "med" is the 50th percentile.
//
// Suffix rule for p(N). N is first normalised: leading zeros of the integer part and trailing
// zeros of the fraction are dropped ("p(090.50)" is p(90.5), "p(95.0)" is p(95)). Then:
//   - N an integer:                    "p" + N                  p(90) -> p90, p(100) -> p100
//   - 10 <= N < 100 with a fraction:   "p" + digits without '.' p(99.9) -> p999,
//                                                               p(99.99) -> p9999
//   - N < 10 with a fraction:          "p" + int + "_" + frac   p(2.5) -> p2_5, p(0.1) -> p0_1
// The rule cannot map two different percentiles to one suffix: only the third form has a '_';
// integers give at most three digits and the only three-digit one, "100", ends in 0, while
// the second form gives at least three digits and never ends in 0 (its fraction has no
// trailing zero); within the second form the integer part is always the first two digits.
// (Merely removing the dot would collide: p(2.5) and p(25), or p(9.99) and p(99.9).) Equal
// percentiles spelled differently ("p(95)", "p(95.0)") get the same suffix.
#ifndef RWEXPORT_LIB_MODEL_TREND_STAT_H_
#define RWEXPORT_LIB_MODEL_TREND_STAT_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rwexport {

class TrendStat {
 public:
  enum class Kind { kCount, kSum, kMin, kMax, kAvg, kMed, kPercentile };

  Kind kind() const { return kind_; }
  // The percentile in (0, 100] for kPercentile, 50 for kMed, 0 otherwise.
  double percentile() const { return percentile_; }
  // The exported series name suffix ("min", "med", "p90", "p999", ...); see the rule above.
  const std::string& suffix() const { return suffix_; }
  // The normalised k6 spelling ("min", "med", "p(99.9)").
  const std::string& name() const { return name_; }

  // The statistic over the accumulator's samples, as k6 computes it (0 for an empty window;
  // percentiles within the accumulator's bound once it holds a sketch). `Accumulator` is
  // lib/aggregate's TrendAccumulator (count, sum, min, max, avg, Percentile); a template so
  // the model does not depend on the aggregation.
  template <typename Accumulator>
  double Compute(const Accumulator& trend) const {
    switch (kind_) {
      case Kind::kCount:
        return static_cast<double>(trend.count());
      case Kind::kSum:
        return trend.sum();
      case Kind::kMin:
        return trend.min();
      case Kind::kMax:
        return trend.max();
      case Kind::kAvg:
        return trend.avg();
      case Kind::kMed:
      case Kind::kPercentile:
        return trend.Percentile(percentile_);
    }
    return 0;
  }

  friend bool operator==(const TrendStat& a, const TrendStat& b) {
    return a.kind_ == b.kind_ && a.percentile_ == b.percentile_;
  }
  friend bool operator!=(const TrendStat& a, const TrendStat& b) { return !(a == b); }

 private:
  friend absl::StatusOr<TrendStat> ParseTrendStat(absl::string_view text);

  TrendStat(Kind kind, double percentile, std::string suffix, std::string name)
      : kind_(kind), percentile_(percentile), suffix_(std::move(suffix)), name_(std::move(name)) {}

  Kind kind_;
  double percentile_;
  std::string suffix_;
  std::string name_;
};

// Parses one k6 spelling (see the header comment). InvalidArgument naming the text otherwise.
absl::StatusOr<TrendStat> ParseTrendStat(absl::string_view text);

// The statistics exported when a target configures none, in export order:
// min, max, avg, med, p(90), p(95), p(99), count.
const std::vector<TrendStat>& DefaultTrendStats();

}  // namespace rwexport

#endif  // RWEXPORT_LIB_MODEL_TREND_STAT_H_
