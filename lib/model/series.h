// Exported series and their points: what aggregation hands to remote write.
//
// A Series is immutable once created and shared (std::shared_ptr<const Series>) between the
// worker that aggregates it and the requests that carry its points; its labels are sorted and
// wire-encoded once, and shared with the other series of its aggregation series.
#ifndef RWEXPORT_LIB_MODEL_SERIES_H_
#define RWEXPORT_LIB_MODEL_SERIES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"

namespace rwexport {

struct Label {
  std::string name;
  std::string value;
};

inline bool operator==(const Label& a, const Label& b) {
  return a.name == b.name && a.value == b.value;
}

// The encoded labels of exported series, shared: an aggregation series keeps its labels other
// than __name__ once (`EncodedLabels`), and each of its exported series (a trend has one per
// statistic) adds only the encoded __name__ label, which is itself shared by every series of the
// same output. Labels are sorted by name, bytewise, as remote write requires; the encoded form is
// repeated `prometheus.Label` fields (field 1 of `prometheus.TimeSeries`).
struct EncodedLabels {
  // Every label but __name__, sorted and encoded.
  std::string bytes;
  // Where the __name__ label goes in `bytes` (after the labels whose names sort before it).
  uint32_t name_at = 0;
};

// One exported series. Immutable; shared (SeriesPtr) between the worker that aggregates it and
// the requests that carry its points.
class Series {
 public:
  // `labels` must include __name__; they are sorted here. Empty values must not be passed.
  explicit Series(std::vector<Label> labels);
  // The series named by `encoded_name` (from EncodeNameLabel) with the other labels `rest`.
  Series(std::shared_ptr<const std::string> encoded_name,
         std::shared_ptr<const EncodedLabels> rest);

  // Decoded from the encoded form (for logs and tests; not on the hot path).
  std::vector<Label> labels() const;
  std::string name() const;
  // Size of the encoded labels, and the labels themselves appended to `out`: repeated
  // `prometheus.Label` fields, ready to be copied into a request.
  size_t encoded_labels_size() const { return name_->size() + rest_->bytes.size(); }
  char* CopyEncodedLabels(char* out) const;
  std::string encoded_labels() const;
  const std::shared_ptr<const EncodedLabels>& rest() const { return rest_; }
  // "name{a="1",b="2"}", for logs and tests.
  std::string ToString() const;

 private:
  std::shared_ptr<const std::string> name_;
  std::shared_ptr<const EncodedLabels> rest_;
};

// The encoded `prometheus.Label` field {__name__: name}.
std::shared_ptr<const std::string> EncodeNameLabel(const std::string& name);
// `labels` (without __name__; empty values must not be passed), sorted and encoded.
std::shared_ptr<const EncodedLabels> EncodeLabels(std::vector<Label> labels);

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
  // Inline: a window flush gives most series one point, and allocating it would dominate.
  using Points = absl::InlinedVector<Point, 1>;

  SeriesPtr series;
  Points points;
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
