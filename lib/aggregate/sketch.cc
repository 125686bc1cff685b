#include "lib/aggregate/sketch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

// Extra buckets allocated beyond the needed range when a store grows in one direction, so a
// slowly widening distribution does not re-lay the counts on every new bucket.
constexpr int64_t kGrowthPad = 32;

}  // namespace

size_t QuantileSketch::MaxMemoryBytes() {
  return sizeof(QuantileSketch) + 2 * kMaxBucketsPerStore * sizeof(uint64_t);
}

QuantileSketch::QuantileSketch() : QuantileSketch(kDefaultRelativeAccuracy) {}

QuantileSketch::QuantileSketch(double relative_accuracy) : alpha_(relative_accuracy) {
  const double gamma = (1 + alpha_) / (1 - alpha_);
  log_gamma_ = std::log(gamma);
  inv_log_gamma_ = 1 / log_gamma_;
  representative_factor_ = 2 / (gamma + 1);
}

absl::StatusOr<QuantileSketch> QuantileSketch::Create(double relative_accuracy) {
  if (!(relative_accuracy >= kMinRelativeAccuracy && relative_accuracy <= kMaxRelativeAccuracy)) {
    return absl::InvalidArgumentError(absl::StrCat("sketch relative accuracy ", relative_accuracy,
                                                   " is outside [", kMinRelativeAccuracy, ", ",
                                                   kMaxRelativeAccuracy, "]"));
  }
  return QuantileSketch(relative_accuracy);
}

absl::Status QuantileSketch::Merge(const QuantileSketch& other) {
  if (other.alpha_ != alpha_) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot merge sketches of different relative accuracy (", alpha_, " and ",
                     other.alpha_, ")"));
  }
  if (&other == this) {
    const QuantileSketch copy = other;
    return Merge(copy);
  }
  if (other.count_ == 0) return absl::OkStatus();
  count_ += other.count_;
  zero_count_ += other.zero_count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  positive_.Merge(other.positive_);
  negative_.Merge(other.negative_);
  return absl::OkStatus();
}

double QuantileSketch::ValueAtRank(uint64_t rank) const {
  if (count_ == 0) return 0;
  if (rank == 0) return min_;
  if (rank >= count_ - 1) return max_;
  double estimate;
  const uint64_t negatives = negative_.total();
  if (rank < negatives) {
    // The most negative values are the largest magnitudes: walk the negative store downwards.
    estimate = -BucketValue(negative_.IndexAtRankFromTop(rank));
  } else if (rank - negatives < zero_count_) {
    estimate = 0;
  } else {
    estimate = BucketValue(positive_.IndexAtRank(rank - negatives - zero_count_));
  }
  // The true value lies in [min_, max_], so clamping can only move the estimate towards it.
  return std::min(std::max(estimate, min_), max_);
}

void QuantileSketch::Clear() {
  count_ = 0;
  zero_count_ = 0;
  sum_ = 0;
  min_ = std::numeric_limits<double>::infinity();
  max_ = -std::numeric_limits<double>::infinity();
  positive_.Clear();
  negative_.Clear();
}

size_t QuantileSketch::MemoryBytes() const {
  return sizeof(QuantileSketch) + positive_.capacity_bytes() + negative_.capacity_bytes();
}

// --- Store ---

void QuantileSketch::Store::Clear() {
  std::vector<uint64_t>().swap(counts_);
  offset_ = 0;
  total_ = 0;
}

int64_t QuantileSketch::Store::BottomNonEmpty() const {
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) return offset_ + static_cast<int64_t>(i);
  }
  return offset_;  // Not reached while total_ > 0.
}

int64_t QuantileSketch::Store::TopNonEmpty() const {
  for (size_t i = counts_.size(); i > 0; --i) {
    if (counts_[i - 1] != 0) return offset_ + static_cast<int64_t>(i) - 1;
  }
  return offset_;  // Not reached while total_ > 0.
}

void QuantileSketch::Store::Extend(int64_t low, int64_t high) {
  const bool empty = total_ == 0;
  const int64_t lo = offset_;
  const int64_t hi = offset_ + static_cast<int64_t>(counts_.size());
  const int64_t top = empty ? high : std::max(high, TopNonEmpty());
  const int64_t bottom = empty ? low : std::min(low, BottomNonEmpty());
  const int64_t floor = top - kMaxBucketsPerStore + 1;
  const int64_t needed_lo = std::max(bottom, floor);

  int64_t new_lo;
  int64_t new_hi;
  if (empty) {
    new_lo = needed_lo - kGrowthPad;
    new_hi = top + 1 + kGrowthPad;
  } else {
    // Keep the current layout where it suffices; pad only the side that grows.
    new_lo = needed_lo < lo ? needed_lo - kGrowthPad : lo;
    new_hi = top >= hi ? top + 1 + kGrowthPad : hi;
  }
  new_lo = std::max(new_lo, floor);
  // new_lo >= floor, so new_lo + kMaxBucketsPerStore > top: nothing non-empty is cut off.
  new_hi = std::min(new_hi, new_lo + kMaxBucketsPerStore);
  if (!empty && new_lo == lo && new_hi == hi) return;

  std::vector<uint64_t> counts(static_cast<size_t>(new_hi - new_lo), 0);
  if (!empty) {
    for (size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] == 0) continue;
      const int64_t index = std::max(lo + static_cast<int64_t>(i), new_lo);
      counts[static_cast<size_t>(index - new_lo)] += counts_[i];
    }
  }
  counts_.swap(counts);
  offset_ = new_lo;
}

void QuantileSketch::Store::AddSlow(int index, uint64_t n) {
  Extend(index, index);
  // After Extend, an index below the range is below the floor: it counts in the floor bucket.
  const int64_t effective = std::max<int64_t>(index, offset_);
  counts_[static_cast<size_t>(effective - offset_)] += n;
  total_ += n;
}

void QuantileSketch::Store::Merge(const Store& other) {
  if (other.total_ == 0) return;
  Extend(other.BottomNonEmpty(), other.TopNonEmpty());
  for (size_t i = 0; i < other.counts_.size(); ++i) {
    if (other.counts_[i] == 0) continue;
    const int64_t index = std::max(other.offset_ + static_cast<int64_t>(i), offset_);
    counts_[static_cast<size_t>(index - offset_)] += other.counts_[i];
  }
  total_ += other.total_;
}

int QuantileSketch::Store::IndexAtRank(uint64_t rank) const {
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen > rank) return static_cast<int>(offset_ + static_cast<int64_t>(i));
  }
  return static_cast<int>(TopNonEmpty());
}

int QuantileSketch::Store::IndexAtRankFromTop(uint64_t rank) const {
  uint64_t seen = 0;
  for (size_t i = counts_.size(); i > 0; --i) {
    seen += counts_[i - 1];
    if (seen > rank) return static_cast<int>(offset_ + static_cast<int64_t>(i) - 1);
  }
  return static_cast<int>(BottomNonEmpty());
}

QuantileSketch::State QuantileSketch::SaveState() const {
  State state;
  state.relative_accuracy = alpha_;
  state.count = count_;
  state.zero_count = zero_count_;
  state.sum = sum_;
  state.min = min_;
  state.max = max_;
  state.positive = positive_.Buckets();
  state.negative = negative_.Buckets();
  return state;
}

absl::StatusOr<QuantileSketch> QuantileSketch::FromState(const State& state) {
  absl::StatusOr<QuantileSketch> sketch = Create(state.relative_accuracy);
  if (!sketch.ok()) return sketch.status();
  uint64_t total = state.zero_count;
  for (const auto& [index, n] : state.positive) {
    sketch->positive_.AddBucket(index, n);
    total += n;
  }
  for (const auto& [index, n] : state.negative) {
    sketch->negative_.AddBucket(index, n);
    total += n;
  }
  if (total != state.count) {
    return absl::InvalidArgumentError(
        absl::StrCat("sketch state: buckets hold ", total, " samples, the count is ", state.count));
  }
  sketch->count_ = state.count;
  sketch->zero_count_ = state.zero_count;
  sketch->sum_ = state.sum;
  sketch->min_ = state.min;
  sketch->max_ = state.max;
  return sketch;
}

std::vector<std::pair<int, uint64_t>> QuantileSketch::Store::Buckets() const {
  std::vector<std::pair<int, uint64_t>> buckets;
  for (size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) {
      buckets.emplace_back(static_cast<int>(offset_ + static_cast<int64_t>(i)), counts_[i]);
    }
  }
  return buckets;
}

}  // namespace rwexport
