// TrendAccumulator: the per-window state of one k6 Trend series. Count, sum, min and max are
// always exact. Up to kExactLimit values are kept (sorted when first read), so a small window
// gives exactly k6's percentiles; past that the values move into a QuantileSketch (relative
// accuracy 1%) and memory stays bounded however many samples arrive.
//
// Percentiles follow k6's TrendSink.P: with the n values sorted ascending as v[0..n-1],
//   i = p/100 * (n-1),  P(p) = v[floor(i)] + (v[ceil(i)] - v[floor(i)]) * (i - floor(i)),
// 0 for an empty window and v[0] for a single value.
//
// Error bound in sketch mode. The sketch gives e_r with |e_r - v_r| <= a*|v_r| (a = 1%; for
// values counted as zero |e_r - v_r| < z = QuantileSketch::kZeroThreshold). With j = floor(i),
// k = ceil(i), f = i - j, the result is E = (1-f)*e_j + f*e_k against the exact
// V = (1-f)*v_j + f*v_k, so
//   |E - V| <= (1-f)*|e_j - v_j| + f*|e_k - v_k| <= a*((1-f)*|v_j| + f*|v_k|) + z.
// When v_j and v_k have the same sign (or one is 0), (1-f)*|v_j| + f*|v_k| = |V|, hence
// |E - V| <= a*|V| + z: the k6 percentile within the sketch's relative accuracy. Only when the
// interpolation crosses zero (v_j < 0 < v_k) is the bound a*max(|v_j|, |v_k|) + z instead, as
// V itself may then be arbitrarily close to 0. (The sketch's bucket cap can void the bound for
// values more than ~4e17 times smaller than the largest; see sketch.h.)
//
// Not thread-safe: one owner at a time, const methods included (the exact values are kept in
// arrival order and sorted by the first method that reads them: see EnsureSorted).
#ifndef RWEXPORT_LIB_AGGREGATE_TREND_H_
#define RWEXPORT_LIB_AGGREGATE_TREND_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "lib/aggregate/sketch.h"

namespace rwexport {

class TrendAccumulator {
 public:
  // Number of values kept exactly; the next one switches to the sketch.
  static constexpr size_t kExactLimit = 64;

  TrendAccumulator() = default;
  TrendAccumulator(const TrendAccumulator& other);
  TrendAccumulator& operator=(const TrendAccumulator& other);
  TrendAccumulator(TrendAccumulator&&) noexcept = default;
  TrendAccumulator& operator=(TrendAccumulator&&) noexcept = default;

  // Adds one sample. Non-finite values (NaN, +-inf) are ignored.
  void Add(double value);
  // Adds every sample of `other` (as if each had been added here).
  void Merge(const TrendAccumulator& other);
  // Back to an empty, exact accumulator; releases the sketch, keeps the room for exact values.
  void Clear();

  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // 0 while empty (as k6).
  double min() const { return count_ == 0 ? 0 : min_; }
  double max() const { return count_ == 0 ? 0 : max_; }
  double avg() const { return count_ == 0 ? 0 : sum_ / static_cast<double>(count_); }

  // k6's percentile for p in [0, 100] (clamped into that range): exact while exact(), within
  // the bound in the header comment otherwise.
  double Percentile(double p) const;

  // Everything an accumulator holds, for checkpoints (lib/aggregate/aggregator_state.cc):
  // FromState of SaveState() answers every query, and goes on adding, as the saved one.
  struct State {
    uint64_t count = 0;
    double sum = 0;
    double min = 0;
    double max = 0;
    std::vector<double> values;                   // while exact, sorted ascending
    std::optional<QuantileSketch::State> sketch;  // once switched to the sketch
  };
  State SaveState() const;
  // InvalidArgument for a state no accumulator can have (values out of order or more than
  // kExactLimit, a count that does not match them, a bad sketch).
  static absl::StatusOr<TrendAccumulator> FromState(State state);

  // Asks the CPU to fetch what the next Add reads (the kept values, or the sketch), so that a
  // caller working through many accumulators can overlap their cache misses. No effect on
  // the accumulator.
  void Prefetch() const {
    if (sketch_ != nullptr) {
      __builtin_prefetch(sketch_.get());
    } else if (!values_.empty()) {
      __builtin_prefetch(values_.data() + values_.size());  // where Add appends
    }
  }

  // True while the values are kept exactly (no sketch yet).
  bool exact() const { return sketch_ == nullptr; }
  // Bytes held, including the kept values or the sketch. At most MaxMemoryBytes().
  size_t MemoryBytes() const;
  static size_t MaxMemoryBytes();

 private:
  void SwitchToSketch();
  double ValueAtRank(uint64_t rank) const;
  // Sorts the exact values if an Add left them out of order. A stable insertion sort: the
  // order is the one inserting each value after its equals would have given (so -0.0 and 0.0
  // keep their arrival order, and every result is the same as with values kept sorted).
  // Cheaper than keeping them sorted in Add: with many series each Add's binary search was a
  // cache miss and a few mispredicted branches; here the values are read in order, once.
  void EnsureSorted() const;

  uint64_t count_ = 0;
  double sum_ = 0;
  double min_ = std::numeric_limits<double>::infinity();
  double max_ = -std::numeric_limits<double>::infinity();
  // Used only while sketch_ is null: in arrival order until EnsureSorted, sorted ascending
  // when sorted_.
  mutable std::vector<double> values_;
  mutable bool sorted_ = true;
  std::unique_ptr<QuantileSketch> sketch_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_TREND_H_
