#include "lib/model/series.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A length-delimited field (wire type 2).
void AppendBytesField(std::string* out, int field, absl::string_view bytes) {
  AppendVarint(out, (static_cast<uint64_t>(field) << 3) | 2);
  AppendVarint(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

}  // namespace

Series::Series(std::vector<Label> labels) : labels_(std::move(labels)) {
  std::sort(labels_.begin(), labels_.end(), [](const Label& a, const Label& b) {
    // "__name__" sorts first among valid label names anyway ('_' < letters is false in
    // ASCII, so compare it explicitly).
    if (a.name == "__name__") return b.name != "__name__";
    if (b.name == "__name__") return false;
    return a.name < b.name;
  });
  std::string label;
  for (const Label& l : labels_) {
    label.clear();
    AppendBytesField(&label, 1, l.name);
    AppendBytesField(&label, 2, l.value);
    AppendBytesField(&encoded_labels_, 1, label);
  }
}

std::string Series::ToString() const {
  std::string out = name();
  out.push_back('{');
  bool first = true;
  for (const Label& l : labels_) {
    if (l.name == "__name__") continue;
    if (!first) out.push_back(',');
    first = false;
    absl::StrAppend(&out, l.name, "=\"", l.value, "\"");
  }
  out.push_back('}');
  return out;
}

double StaleNaN() {
  const uint64_t bits = 0x7ff0000000000002ULL;
  double value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

bool IsStaleNaN(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits == 0x7ff0000000000002ULL;
}

HistogramPoint StaleHistogramPoint(int64_t timestamp_ms) {
  HistogramPoint point;
  point.timestamp_ms = timestamp_ms;
  point.sum = StaleNaN();
  return point;
}

bool IsStaleHistogramPoint(const HistogramPoint& point) { return IsStaleNaN(point.sum); }

int64_t SeriesPoints::min_timestamp_ms() const {
  if (points.empty()) return histograms.front().timestamp_ms;
  if (histograms.empty()) return points.front().timestamp_ms;
  return std::min(points.front().timestamp_ms, histograms.front().timestamp_ms);
}

int64_t SeriesPoints::max_timestamp_ms() const {
  if (points.empty()) return histograms.back().timestamp_ms;
  if (histograms.empty()) return points.back().timestamp_ms;
  return std::max(points.back().timestamp_ms, histograms.back().timestamp_ms);
}

SeriesPoints SeriesPoints::Slice(size_t begin, size_t end) const {
  SeriesPoints out;
  out.series = series;
  const size_t floats = points.size();
  if (begin < floats) {
    out.points.assign(points.begin() + begin, points.begin() + std::min(end, floats));
  }
  if (end > floats) {
    out.histograms.assign(histograms.begin() + (std::max(begin, floats) - floats),
                          histograms.begin() + (end - floats));
  }
  return out;
}

}  // namespace rwexport
