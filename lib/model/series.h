// Exported series and their points: what aggregation hands to remote write.
//
// A Series is immutable once created and shared (std::shared_ptr<const Series>) between the
// worker that aggregates it and the requests that carry its points, so its labels are built,
// sorted and wire-encoded exactly once.
#ifndef RWEXPORT_LIB_MODEL_SERIES_H_
#define RWEXPORT_LIB_MODEL_SERIES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace rwexport {

struct Label {
  std::string name;
  std::string value;
};

inline bool operator==(const Label& a, const Label& b) {
  return a.name == b.name && a.value == b.value;
}

// One exported series: its labels, sorted by name with __name__ first (as remote write
// requires), and the same labels already encoded as repeated `prometheus.Label` fields
// (field 1 of `prometheus.TimeSeries`), ready to be copied into a request.
class Series {
 public:
  // `labels` must include __name__; they are sorted here. Empty values must not be passed.
  explicit Series(std::vector<Label> labels);

  const std::vector<Label>& labels() const { return labels_; }
  const std::string& name() const { return labels_.front().value; }
  const std::string& encoded_labels() const { return encoded_labels_; }
  // "name{a="1",b="2"}", for logs and tests.
  std::string ToString() const;

 private:
  std::vector<Label> labels_;
  std::string encoded_labels_;
};

using SeriesPtr = std::shared_ptr<const Series>;

// One point of an exported series. A stale marker is the value StaleNaN().
struct Point {
  int64_t timestamp_ms;
  double value;
};

// Prometheus's stale marker, the NaN with bit pattern 0x7ff0000000000002.
double StaleNaN();
bool IsStaleNaN(double value);

// One span of consecutive native-histogram buckets (prometheus.BucketSpan): the first span's
// offset is the index of its first bucket, a later span's offset is the number of buckets
// skipped since the end of the previous span.
struct HistogramSpan {
  int32_t offset = 0;
  uint32_t length = 0;
};

inline bool operator==(const HistogramSpan& a, const HistogramSpan& b) {
  return a.offset == b.offset && a.length == b.length;
}

// One point of a native-histogram series, laid out as prometheus.Histogram with integer
// counts: bucket i of schema s holds the magnitudes in (2^((i-1)*2^-s), 2^(i*2^-s)], the zero
// bucket the values in [-zero_threshold, zero_threshold]. Bucket counts are delta-encoded
// across all spans of one sign: the first delta is the first bucket's count, each next one
// the difference to the previous bucket's count. A stale marker has sum == StaleNaN() (see
// StaleHistogramPoint).
struct HistogramPoint {
  // prometheus.Histogram.ResetHint.
  enum class ResetHint { kUnknown = 0, kYes = 1, kNo = 2, kGauge = 3 };

  int64_t timestamp_ms = 0;
  uint64_t count = 0;  // every observation, zero bucket included
  double sum = 0;
  int32_t schema = 0;
  double zero_threshold = 0;
  uint64_t zero_count = 0;
  ResetHint reset_hint = ResetHint::kUnknown;
  std::vector<HistogramSpan> negative_spans;
  std::vector<int64_t> negative_deltas;
  std::vector<HistogramSpan> positive_spans;
  std::vector<int64_t> positive_deltas;
};

// Prometheus's stale marker for a native-histogram series, as its TSDB stores one: no
// observations, schema 0, sum StaleNaN().
HistogramPoint StaleHistogramPoint(int64_t timestamp_ms);
bool IsStaleHistogramPoint(const HistogramPoint& point);

// A series and its new points, in strictly increasing timestamp order. A series carries float
// points or histogram points, not both (remote-write receivers append a TimeSeries' floats
// before its histograms, so mixing them could reorder time).
struct SeriesPoints {
  SeriesPtr series;
  std::vector<Point> points;
  std::vector<HistogramPoint> histograms;

  // Points of both kinds.
  size_t size() const { return points.size() + histograms.size(); }
  bool empty() const { return points.empty() && histograms.empty(); }
  // The earliest and the latest timestamp over both kinds. Require !empty().
  int64_t min_timestamp_ms() const;
  int64_t max_timestamp_ms() const;
  // Points [begin, end) of the sequence "float points, then histogram points", with the same
  // series (for cutting a long series into requests). Requires begin <= end <= size().
  SeriesPoints Slice(size_t begin, size_t end) const;
};

// Everything one window flush produced for one target: no series appears twice, so the
// batch can be split into requests that may travel in parallel.
struct PointBatch {
  std::vector<SeriesPoints> series;
  // Float and histogram points.
  size_t point_count() const {
    size_t n = 0;
    for (const SeriesPoints& s : series) n += s.size();
    return n;
  }
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_MODEL_SERIES_H_
