// Exported series and their points: what aggregation hands to remote write.
//
// A Series holds the labels of one aggregation series, wire-encoded once. Its exported series
// (a trend has one per statistic) differ only in __name__, which comes from the family of the
// output they belong to, as do the labels common to a whole output (test_run_id). Points
// travel in PointBatches, whose owner keeps the series they name alive.
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
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace rwexport {

struct Label {
  std::string name;
  std::string value;
};

inline bool operator==(const Label& a, const Label& b) {
  return a.name == b.name && a.value == b.value;
}

// What every series of one output shares: the encoded __name__ label of each of its exported
// series (one, or one per trend statistic), and the labels every series of the output carries
// (the target's test_run_id). Kept once per output instead of once per series.
struct SeriesFamily {
  // Each an encoded `prometheus.Label` field {__name__: name} (EncodeNameLabel).
  std::vector<std::string> names;
  // Encoded `prometheus.Label` fields common to every series of the family, sorted, or empty.
  // Their names sort after "__name__", and no own label's name sorts between theirs.
  std::string common;
  // The name of the first common label ("" without): where `common` goes among own labels.
  std::string common_first;
};

// A series' own labels (all but __name__ and its family's common labels), sorted and
// encoded, with the places where the name and the common labels go.
struct OwnLabels {
  std::string bytes;
  uint32_t name_at = 0;
  uint32_t common_at = 0;
};

// Sorts and encodes `labels` (no __name__, none of the family's common labels, no empty
// values) as the own labels of a series of a family whose first common label is
// `common_first` ("" for none).
OwnLabels EncodeOwnLabels(std::vector<Label> labels, absl::string_view common_first = "");

// The encoded `prometheus.Label` field {__name__: name}.
std::string EncodeNameLabel(absl::string_view name);
// `labels` sorted by name and encoded as `prometheus.Label` fields.
std::string EncodeLabelFields(std::vector<Label> labels);

// The labels of one aggregation series: its own labels, and through its family the name of
// each of its exported series (a trend has one per statistic) and the common labels. Exported
// series `name` (< name_count()) has the labels own + {__name__: family.names[name]} +
// family.common, merged in sort order as remote write requires (bytewise, like Prometheus's
// labels.Labels). A view: the family and the own label bytes belong to whoever made the series
// (an aggregator's series store, or MakeSeries), which keeps them while any point of the
// series is in use (PointBatch::owner). Immutable, so any thread may read it.
class Series {
 public:
  Series() = default;
  // `own`, `name_at` and `common_at` come from EncodeOwnLabels with the family's
  // common_first; `family` and the bytes of `own` must outlive the series.
  Series(const SeriesFamily* family, absl::string_view own, uint32_t name_at, uint32_t common_at);

  size_t name_count() const { return family_->names.size(); }
  // Size of the encoded labels of exported series `name`, and the labels themselves written
  // to `out` (repeated `prometheus.Label` fields, ready to be copied into a request).
  size_t encoded_labels_size(size_t name = 0) const {
    return size_ + family_->names[name].size() + family_->common.size();
  }
  char* CopyEncodedLabels(char* out, size_t name = 0) const;
  std::string encoded_labels(size_t name = 0) const;
  // Decoded (for logs and tests; not on the hot path).
  std::vector<Label> labels(size_t name = 0) const;
  std::string name(size_t name = 0) const;
  // "name{a="1",b="2"}", for logs and tests.
  std::string ToString(size_t name = 0) const;
  // The own labels' bytes: within one family, equal exactly when the labels are.
  absl::string_view own_labels() const { return absl::string_view(own_, size_); }

 private:
  const SeriesFamily* family_ = nullptr;
  const char* own_ = nullptr;
  uint32_t size_ = 0;
  uint32_t name_at_ = 0;
  uint32_t common_at_ = 0;
};

// A series that owns its family and labels, with one name: `labels` must include __name__;
// they are sorted here; empty values must not be passed. For tests and tools; an aggregator
// keeps its series in a store of its own.
using SeriesPtr = std::shared_ptr<const Series>;
SeriesPtr MakeSeries(std::vector<Label> labels);

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

// Exported series `name` of `series` and its new points, in strictly increasing timestamp
// order. A series carries float points or histogram points, not both (remote-write receivers
// append a TimeSeries' floats before its histograms, so mixing them could reorder time).
// `series` is not owned: see PointBatch::owner.
struct SeriesPoints {
  // Inline: a window flush gives most series one point, and allocating it would dominate.
  using Points = absl::InlinedVector<Point, 1>;

  const Series* series = nullptr;
  Points points;
  std::vector<HistogramPoint> histograms;
  uint32_t name = 0;

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

// Everything one window flush produced for one target: no exported series appears twice, so
// the batch can be split into requests that may travel in parallel.
struct PointBatch {
  std::vector<SeriesPoints> series;
  // Keeps every Series that `series` names alive (an aggregator's series store). Whoever
  // keeps a SeriesPoints of the batch, or a copy of one, keeps the owner as well.
  std::shared_ptr<const void> owner;
  // Float and histogram points.
  size_t point_count() const {
    size_t n = 0;
    for (const SeriesPoints& s : series) n += s.size();
    return n;
  }
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_MODEL_SERIES_H_
