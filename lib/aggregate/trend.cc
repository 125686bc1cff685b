#include "lib/aggregate/trend.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace rwexport {

TrendAccumulator::TrendAccumulator(const TrendAccumulator& other)
    : count_(other.count_),
      sum_(other.sum_),
      min_(other.min_),
      max_(other.max_),
      values_(other.values_),
      sorted_(other.sorted_),
      sketch_(other.sketch_ ? std::make_unique<QuantileSketch>(*other.sketch_) : nullptr) {}

TrendAccumulator& TrendAccumulator::operator=(const TrendAccumulator& other) {
  if (this != &other) *this = TrendAccumulator(other);
  return *this;
}

void TrendAccumulator::Add(double value) {
  if (!std::isfinite(value)) return;
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  if (sketch_ != nullptr) {
    sketch_->Add(value);
    return;
  }
  if (values_.size() < kExactLimit) {
    // Appended without reading the values kept so far: with many series they are not in the
    // cache, and a store does not wait for them (comparing with the last one did: half of
    // Add's time at 100k series). EnsureSorted is quick on values that came in order.
    if (!values_.empty()) sorted_ = false;
    values_.push_back(value);
    return;
  }
  SwitchToSketch();
  sketch_->Add(value);
}

TrendAccumulator::State TrendAccumulator::SaveState() const {
  State state;
  state.count = count_;
  state.sum = sum_;
  state.min = min_;
  state.max = max_;
  if (sketch_ != nullptr) {
    state.sketch = sketch_->SaveState();
  } else {
    EnsureSorted();
    state.values = values_;
  }
  return state;
}

absl::StatusOr<TrendAccumulator> TrendAccumulator::FromState(State state) {
  TrendAccumulator acc;
  if (state.sketch) {
    absl::StatusOr<QuantileSketch> sketch = QuantileSketch::FromState(*state.sketch);
    if (!sketch.ok()) return sketch.status();
    if (sketch->count() != state.count) {
      return absl::InvalidArgumentError("trend state: the sketch's count is not the count");
    }
    acc.sketch_ = std::make_unique<QuantileSketch>(*std::move(sketch));
  } else {
    if (state.values.size() != state.count || state.values.size() > kExactLimit ||
        !std::is_sorted(state.values.begin(), state.values.end())) {
      return absl::InvalidArgumentError(
          "trend state: the exact values do not match the count or are out of order");
    }
    acc.values_ = std::move(state.values);
    acc.sorted_ = true;
  }
  acc.count_ = state.count;
  acc.sum_ = state.sum;
  acc.min_ = state.min;
  acc.max_ = state.max;
  return acc;
}

void TrendAccumulator::SwitchToSketch() {
  EnsureSorted();  // the sketch is given the values in the same order as before (its sum)
  sketch_ = std::make_unique<QuantileSketch>();
  for (double v : values_) sketch_->Add(v);
  std::vector<double>().swap(values_);
}

void TrendAccumulator::Merge(const TrendAccumulator& other) {
  if (other.count_ == 0) return;
  if (this == &other) {
    const TrendAccumulator copy = other;
    Merge(copy);
    return;
  }
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  EnsureSorted();
  other.EnsureSorted();
  if (sketch_ == nullptr && other.sketch_ == nullptr &&
      values_.size() + other.values_.size() <= kExactLimit) {
    const size_t middle = values_.size();
    values_.insert(values_.end(), other.values_.begin(), other.values_.end());
    std::inplace_merge(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(middle),
                       values_.end());
    return;
  }
  if (sketch_ == nullptr) SwitchToSketch();
  if (other.sketch_ != nullptr) {
    // Both sketches use the default relative accuracy, so Merge cannot fail.
    sketch_->Merge(*other.sketch_).IgnoreError();
  } else {
    for (double v : other.values_) sketch_->Add(v);
  }
}

void TrendAccumulator::Clear() {
  count_ = 0;
  sum_ = 0;
  min_ = std::numeric_limits<double>::infinity();
  max_ = -std::numeric_limits<double>::infinity();
  values_.clear();  // keeps its capacity: a cleared accumulator is reused for the next window
  sorted_ = true;
  sketch_.reset();
}

void TrendAccumulator::EnsureSorted() const {
  if (sorted_) return;
  double* const v = values_.data();
  const size_t n = values_.size();
  for (size_t i = 1; i < n; ++i) {
    const double x = v[i];
    size_t j = i;
    for (; j > 0 && v[j - 1] > x; --j) v[j] = v[j - 1];
    v[j] = x;
  }
  sorted_ = true;
}

double TrendAccumulator::ValueAtRank(uint64_t rank) const {
  if (sketch_ != nullptr) return sketch_->ValueAtRank(rank);
  EnsureSorted();
  return values_[static_cast<size_t>(rank)];
}

double TrendAccumulator::Percentile(double p) const {
  if (count_ == 0) return 0;
  if (count_ == 1) return min_;
  // p/100 first, then * (n-1): the same floating-point steps as k6, which takes p(90) as 0.9.
  const double pct = std::min(std::max(p, 0.0), 100.0) / 100;
  const double i = pct * (static_cast<double>(count_) - 1.0);
  const double lower_rank = std::floor(i);
  const double upper_rank = std::ceil(i);
  const double j = ValueAtRank(static_cast<uint64_t>(lower_rank));
  const double k = ValueAtRank(static_cast<uint64_t>(upper_rank));
  return j + (k - j) * (i - lower_rank);
}

size_t TrendAccumulator::MemoryBytes() const {
  return sizeof(TrendAccumulator) + values_.capacity() * sizeof(double) +
         (sketch_ != nullptr ? sketch_->MemoryBytes() : 0);
}

size_t TrendAccumulator::MaxMemoryBytes() {
  // values_ is released when the sketch is created; before that it holds at most kExactLimit
  // values, but vector growth may reserve up to twice the size in use.
  return sizeof(TrendAccumulator) +
         std::max(2 * kExactLimit * sizeof(double), QuantileSketch::MaxMemoryBytes());
}

}  // namespace rwexport
