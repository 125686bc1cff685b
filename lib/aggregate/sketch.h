// QuantileSketch: a mergeable quantile sketch with a relative-accuracy guarantee (DDSketch,
// Masson et al., VLDB 2019), used for the percentiles of k6 Trend metrics. Memory is bounded
// and independent of the number of samples; merging two sketches gives exactly the sketch of
// the union of their samples.
//
// Mapping. With alpha the relative accuracy and gamma = (1 + alpha) / (1 - alpha), a value x
// with |x| >= kZeroThreshold goes to bucket i = ceil(log_gamma(|x|)), which holds the
// magnitudes in (gamma^(i-1), gamma^i]. The bucket's representative 2 * gamma^i / (gamma + 1)
// is within alpha relative error of every magnitude in it (the worst cases are the two ends,
// both exactly alpha). Positive and negative values have separate bucket stores; values with
// |x| < kZeroThreshold are counted as zeros and estimated as 0.
//
// Bucket cap. Each store keeps at most kMaxBucketsPerStore contiguous buckets below its
// highest non-empty one. Beyond that the lowest-magnitude buckets are folded into the lowest
// kept one: the guarantee then holds only for values whose magnitude is within
// gamma^(kMaxBucketsPerStore - 1) of the store's largest magnitude (for alpha = 1% that is a
// ratio of about 4e17, e.g. 1 ns to 13 years in ms, so in practice it never triggers). The
// folding depends only on the set of samples, so Merge stays exact even then.
//
// Not thread-safe: one owner at a time (const methods may be called concurrently).
#ifndef RWEXPORT_LIB_AGGREGATE_SKETCH_H_
#define RWEXPORT_LIB_AGGREGATE_SKETCH_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rwexport {

class QuantileSketch {
 public:
  static constexpr double kDefaultRelativeAccuracy = 0.01;
  // Accepted range of relative accuracies for Create().
  static constexpr double kMinRelativeAccuracy = 1e-6;
  static constexpr double kMaxRelativeAccuracy = 0.5;
  // Values with a magnitude below this count as zero.
  static constexpr double kZeroThreshold = 1e-9;
  static constexpr int kMaxBucketsPerStore = 2048;

  // An upper bound of MemoryBytes() for any sketch, whatever was added or merged into it.
  static size_t MaxMemoryBytes();

  // A sketch with kDefaultRelativeAccuracy (1%).
  QuantileSketch();
  // A sketch with the given relative accuracy, which must lie in
  // [kMinRelativeAccuracy, kMaxRelativeAccuracy]; InvalidArgument otherwise.
  static absl::StatusOr<QuantileSketch> Create(double relative_accuracy);

  QuantileSketch(const QuantileSketch&) = default;
  QuantileSketch& operator=(const QuantileSketch&) = default;
  QuantileSketch(QuantileSketch&&) = default;
  QuantileSketch& operator=(QuantileSketch&&) = default;

  // Adds one value. Non-finite values (NaN, +-inf) are ignored: filtering them is the caller's
  // job. Amortised O(1), no allocation except when the bucket range grows.
  inline void Add(double value);

  // Adds every sample of `other`. Afterwards this sketch is bucket-for-bucket the sketch of the
  // union of both sample sets. InvalidArgument (and no change) if the relative accuracies differ.
  absl::Status Merge(const QuantileSketch& other);

  // Everything a sketch holds, for checkpoints (lib/aggregate/aggregator_state.cc): FromState
  // of SaveState() answers every query as the saved sketch did.
  struct State {
    double relative_accuracy = kDefaultRelativeAccuracy;
    uint64_t count = 0;
    uint64_t zero_count = 0;
    double sum = 0;
    double min = 0;
    double max = 0;
    std::vector<std::pair<int, uint64_t>> positive;  // non-empty buckets (index, count)
    std::vector<std::pair<int, uint64_t>> negative;
  };
  State SaveState() const;
  // InvalidArgument for a relative accuracy outside the accepted range, or buckets that do
  // not add up to the count.
  static absl::StatusOr<QuantileSketch> FromState(const State& state);

  // Exact number, sum, minimum and maximum of the added (finite) values; min/max are 0 while
  // the sketch is empty.
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  double min() const { return count_ == 0 ? 0 : min_; }
  double max() const { return count_ == 0 ? 0 : max_; }
  uint64_t zero_count() const { return zero_count_; }

  // Estimate of the rank-th smallest value (0-based; ranks >= count() mean the largest), within
  // relative_accuracy() of the true value (absolute error < kZeroThreshold for a value counted
  // as zero). Rank 0 and rank count()-1 return min() and max() exactly; estimates are clamped
  // to [min(), max()]. 0 for an empty sketch. O(number of buckets).
  double ValueAtRank(uint64_t rank) const;

  // Forgets every sample and releases the bucket memory; keeps the relative accuracy.
  void Clear();

  double relative_accuracy() const { return alpha_; }

  // Bytes held by this object, including its bucket storage. At most MaxMemoryBytes().
  size_t MemoryBytes() const;

  // The non-empty buckets as (index, count), ascending index; bucket i of the positive store
  // holds values in (gamma^(i-1), gamma^i], of the negative store values in
  // [-gamma^i, -gamma^(i-1)). For tests and for exporters that need the distribution.
  std::vector<std::pair<int, uint64_t>> PositiveBuckets() const { return positive_.Buckets(); }
  std::vector<std::pair<int, uint64_t>> NegativeBuckets() const { return negative_.Buckets(); }

  // The bucket index of a magnitude >= kZeroThreshold, and the representative value of a
  // bucket (positive; negate it for the negative store).
  // Uses glibc's std::log (measured ~5 ns with the integer ceil below; a frexp + polynomial
  // log measured no faster) and an integer ceil (std::ceil doubled the cost). |log| * 1/log(gamma)
  // stays below 2^31 for magnitudes in [kZeroThreshold, DBL_MAX] and alpha >= 1e-6.
  int IndexOf(double magnitude) const {
    const double y = std::log(magnitude) * inv_log_gamma_;
    const int truncated = static_cast<int>(y);  // Towards zero: already the ceil when y < 0.
    return truncated + (y > static_cast<double>(truncated) ? 1 : 0);
  }
  double BucketValue(int index) const {
    return std::exp(static_cast<double>(index) * log_gamma_) * representative_factor_;
  }

 private:
  // Contiguous bucket counts with an offset. Invariants: the counts cover [offset_,
  // offset_ + counts_.size()), which holds every non-empty bucket and spans at most
  // kMaxBucketsPerStore indices; a sample whose index fell below the store's floor (highest
  // non-empty index - kMaxBucketsPerStore + 1) is counted in the floor bucket.
  class Store {
   public:
    void Add(int index) {
      const uint64_t pos = static_cast<uint64_t>(static_cast<int64_t>(index) - offset_);
      if (pos < counts_.size()) {
        ++counts_[pos];
        ++total_;
        return;
      }
      AddSlow(index, 1);
    }
    void Merge(const Store& other);
    void Clear();
    uint64_t total() const { return total_; }
    size_t capacity_bytes() const { return counts_.capacity() * sizeof(uint64_t); }
    // Index of the bucket holding the rank-th smallest index (rank < total()).
    int IndexAtRank(uint64_t rank) const;
    // Index of the bucket holding the rank-th largest index (rank < total()).
    int IndexAtRankFromTop(uint64_t rank) const;
    std::vector<std::pair<int, uint64_t>> Buckets() const;
    // Adds `n` samples to bucket `index` (restoring a saved store).
    void AddBucket(int index, uint64_t n) { AddSlow(index, n); }

   private:
    void AddSlow(int index, uint64_t n);
    // Re-lays the counts so that they cover [max(low, floor), high] (high >= low), where the
    // floor follows from the new highest index; buckets below the floor are folded into it.
    void Extend(int64_t low, int64_t high);
    int64_t BottomNonEmpty() const;
    int64_t TopNonEmpty() const;

    std::vector<uint64_t> counts_;
    int64_t offset_ = 0;
    uint64_t total_ = 0;
  };

  explicit QuantileSketch(double relative_accuracy);

  double alpha_;
  double log_gamma_;
  double inv_log_gamma_;
  double representative_factor_;  // 2 / (gamma + 1)
  uint64_t count_ = 0;
  uint64_t zero_count_ = 0;
  double sum_ = 0;
  double min_ = std::numeric_limits<double>::infinity();
  double max_ = -std::numeric_limits<double>::infinity();
  Store positive_;
  Store negative_;
};

inline void QuantileSketch::Add(double value) {
  const double magnitude = std::fabs(value);
  // Also false for NaN.
  if (!(magnitude <= std::numeric_limits<double>::max())) return;
  ++count_;
  sum_ += value;
  min_ = value < min_ ? value : min_;
  max_ = value > max_ ? value : max_;
  if (magnitude < kZeroThreshold) {
    ++zero_count_;
    return;
  }
  const int index = IndexOf(magnitude);
  if (value > 0) {
    positive_.Add(index);
  } else {
    negative_.Add(index);
  }
}

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_SKETCH_H_
