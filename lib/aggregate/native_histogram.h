// NativeHistogram: a Prometheus native histogram (exponential buckets, integer counts) built
// from the values of a k6 Trend, for targets with `nativeHistograms: true`.
//
// Buckets. With schema s and base g = 2^(2^-s), positive bucket i holds the values in
// (g^(i-1), g^i], i.e. i = ceil(log2(v) * 2^s); negative bucket i holds the values in
// [-g^i, -g^(i-1)); the zero bucket holds [-kZeroThreshold, kZeroThreshold]. This is
// Prometheus's definition. Boundaries that are not powers of two are the doubles nearest to
// g^i (correctly rounded, from a built-in table for schemas up to 7, so the bucketing is the
// same on every machine). Prometheus's own clients use a table that is up to 4 units in the
// last place below some of these boundaries: a value within ~1e-15 relative of a boundary may
// land one bucket away from where they would put it, which no query can notice.
//
// Error bound. Schema kDefaultSchema = 7: g = 2^(1/128) = 1.0054299011..., so every value of
// a bucket is within a factor g of every other point of the bucket. Prometheus's
// histogram_quantile(q, h) picks the bucket where the cumulative count first reaches q*count,
// which holds the sample of rank r = max(1, ceil(q*count)) (the nearest-rank q-quantile
// v_r), and returns a point inside that bucket, so
//   |histogram_quantile - v_r| <= g^i - g^(i-1) < (g - 1) * v_r = 0.54299...% of v_r
// (for positive values; mirrored for negative ones; a result in the zero bucket is off by at
// most kZeroThreshold). A bucket's midpoint would be within (g - 1) / (g + 1) = 0.2708% of
// its values, but Prometheus interpolates rather than taking midpoints, hence schema 7:
// schema 6 (g = 2^(1/64)) would only guarantee 1.089%, above the 1% the exporter promises.
// histogram_count and histogram_sum are exact (the sum up to floating-point rounding).
//
// Memory. Each sign keeps a dense array of counts over its non-empty index range, at most
// kMaxBucketsPerSign long (32 KiB; at schema 7 that spans a ratio of 2^32 between the smallest
// and the largest magnitude). A value that would stretch the range further lowers the schema
// by one, merging bucket pairs (i -> ceil(i/2)), as Prometheus's clients do; the bound above
// then holds with g = 2^(2^-schema()). Counts are never dropped.
//
// Not thread-safe: one owner at a time (const methods may be called concurrently).
#ifndef RWEXPORT_LIB_AGGREGATE_NATIVE_HISTOGRAM_H_
#define RWEXPORT_LIB_AGGREGATE_NATIVE_HISTOGRAM_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "lib/model/series.h"

namespace rwexport {

class NativeHistogram {
 public:
  static constexpr int kDefaultSchema = 7;
  // Schemas this class can represent (Prometheus accepts -4..8).
  static constexpr int kMinSchema = -4;
  static constexpr int kMaxSchema = 7;
  // 2^-128, Prometheus's default zero threshold.
  static constexpr double kZeroThreshold = 0x1p-128;
  static constexpr int kMaxBucketsPerSign = 4096;

  // An empty histogram with the given schema, clamped into [kMinSchema, kMaxSchema].
  explicit NativeHistogram(int schema = kDefaultSchema);

  NativeHistogram(const NativeHistogram&) = default;
  NativeHistogram& operator=(const NativeHistogram&) = default;
  NativeHistogram(NativeHistogram&&) noexcept = default;
  NativeHistogram& operator=(NativeHistogram&&) noexcept = default;

  // The bucket index of `magnitude` (finite, > 0) in `schema` (kMinSchema..kMaxSchema):
  // the i with UpperBound(i - 1, schema) < magnitude <= UpperBound(i, schema).
  static int BucketIndex(double magnitude, int schema);
  // The upper bound of positive bucket `index`: 2^(index * 2^-schema), correctly rounded.
  // Bounds beyond the double range come out as 0 or +inf.
  static double UpperBound(int index, int schema);
  // g - 1 = 2^(2^-schema) - 1: the bound on histogram_quantile's relative error (see above).
  static double RelativeErrorBound(int schema);

  // Counts one observation. Non-finite values (NaN, +-inf) are ignored.
  void Add(double value);
  // Adds every observation of `other`; the result has the lower of the two schemas (and lower
  // still if the bucket cap requires it).
  void Merge(const NativeHistogram& other);

  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  uint64_t zero_count() const { return zero_count_; }
  int schema() const { return schema_; }
  bool empty() const { return count_ == 0; }

  // Non-empty buckets as (index, count), ascending index. Negative bucket i holds the values
  // in [-UpperBound(i), -UpperBound(i - 1)).
  std::vector<std::pair<int, uint64_t>> PositiveBuckets() const { return positive_.Buckets(); }
  std::vector<std::pair<int, uint64_t>> NegativeBuckets() const { return negative_.Buckets(); }

  // The histogram as a remote-write point: spans over the non-empty buckets (runs of up to two
  // empty buckets stay inside a span, as Prometheus's clients do: cheaper than a new span),
  // counts delta-encoded.
  HistogramPoint ToPoint(int64_t timestamp_ms, HistogramPoint::ResetHint reset_hint =
                                                   HistogramPoint::ResetHint::kUnknown) const;

  // What a histogram holds, for checkpoints (lib/durable/checkpoints.md): FromState(SaveState())
  // is a histogram with the same schema, counts, sum and buckets, which adds and merges as
  // this one does.
  struct State {
    int schema = kDefaultSchema;
    uint64_t count = 0;
    uint64_t zero_count = 0;
    double sum = 0;
    std::vector<std::pair<int, uint64_t>> positive;  // as PositiveBuckets()
    std::vector<std::pair<int, uint64_t>> negative;
  };
  State SaveState() const;
  // False (and `out` untouched) for a state no histogram has: a schema out of range, bucket
  // counts that do not add up to the count, a bucket range wider than kMaxBucketsPerSign.
  static bool FromState(const State& state, NativeHistogram* out);

  // Bytes held, bucket arrays included. At most MaxMemoryBytes().
  size_t MemoryBytes() const;
  static size_t MaxMemoryBytes();

 private:
  // Counts over [base_, base_ + counts_.size()), which covers the non-empty range [lo_, hi_].
  class Store {
   public:
    bool empty() const { return total_ == 0; }
    // True if counting `index` keeps the non-empty range within kMaxBucketsPerSign.
    bool Fits(int64_t index) const {
      return empty() || std::max(hi_, index) - std::min(lo_, index) < kMaxBucketsPerSign;
    }
    // Requires Fits(index).
    void Add(int64_t index, uint64_t n) {
      uint64_t pos = static_cast<uint64_t>(index - base_);
      if (pos >= counts_.size()) {
        Grow(index);
        pos = static_cast<uint64_t>(index - base_);
      }
      counts_[pos] += n;
      if (total_ == 0) {
        lo_ = hi_ = index;
      } else {
        lo_ = std::min(lo_, index);
        hi_ = std::max(hi_, index);
      }
      total_ += n;
    }
    // Re-buckets for a schema lower by `by`: index i becomes ceil(i / 2^by).
    void Reduce(int by);
    std::vector<std::pair<int, uint64_t>> Buckets() const;
    // Appends spans and deltas for the non-empty buckets.
    void Encode(std::vector<HistogramSpan>* spans, std::vector<int64_t>* deltas) const;
    size_t capacity_bytes() const { return counts_.capacity() * sizeof(uint64_t); }

   private:
    // Re-lays the array to cover `index` too (with some room to grow on that side).
    void Grow(int64_t index);

    std::vector<uint64_t> counts_;
    int64_t base_ = 0;
    int64_t lo_ = 0;
    int64_t hi_ = -1;
    uint64_t total_ = 0;
  };

  // Counts `n` observations of bucket `index` (of schema_) of `store`, lowering the schema
  // while the bucket does not fit.
  void AddToStore(bool positive, int64_t index, uint64_t n);
  void ReduceSchema(int by);

  int schema_;
  uint64_t count_ = 0;
  uint64_t zero_count_ = 0;
  double sum_ = 0;
  Store positive_;
  Store negative_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_NATIVE_HISTOGRAM_H_
