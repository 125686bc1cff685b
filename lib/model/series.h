// Exported series and their points: what aggregation hands to remote write.
//
// A Series is immutable once created and shared (std::shared_ptr<const Series>) between the
// worker that aggregates it and the requests that carry its points, so its labels are built,
// sorted and wire-encoded exactly once.
#ifndef RWEXPORT_LIB_MODEL_SERIES_H_
#define RWEXPORT_LIB_MODEL_SERIES_H_

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

// A series and its new points, in strictly increasing timestamp order.
struct SeriesPoints {
  SeriesPtr series;
  std::vector<Point> points;
};

// Everything one window flush produced for one target: no series appears twice, so the
// batch can be split into requests that may travel in parallel.
struct PointBatch {
  std::vector<SeriesPoints> series;
  size_t point_count() const {
    size_t n = 0;
    for (const SeriesPoints& s : series) n += s.points.size();
    return n;
  }
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_MODEL_SERIES_H_
