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

// Reads one length-delimited field at `*p` (the caller's own encoding: well formed).
absl::string_view ReadBytesField(const char** p) {
  ++*p;  // the tag
  uint64_t size = 0;
  for (int shift = 0;; shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(*(*p)++);
    size |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) break;
  }
  absl::string_view out(*p, size);
  *p += size;
  return out;
}

void DecodeLabels(absl::string_view bytes, std::vector<Label>* out) {
  const char* p = bytes.data();
  const char* end = p + bytes.size();
  while (p < end) {
    absl::string_view label = ReadBytesField(&p);
    const char* q = label.data();
    Label l;
    l.name = std::string(ReadBytesField(&q));
    l.value = std::string(ReadBytesField(&q));
    out->push_back(std::move(l));
  }
}

std::string EncodeLabel(absl::string_view name, absl::string_view value) {
  std::string label;
  AppendBytesField(&label, 1, name);
  AppendBytesField(&label, 2, value);
  std::string field;
  AppendBytesField(&field, 1, label);
  return field;
}

constexpr absl::string_view kNameLabel = "__name__";

}  // namespace

std::shared_ptr<const std::string> EncodeNameLabel(const std::string& name) {
  return std::make_shared<const std::string>(EncodeLabel(kNameLabel, name));
}

std::shared_ptr<const EncodedLabels> EncodeLabels(std::vector<Label> labels) {
  std::sort(labels.begin(), labels.end(),
            [](const Label& a, const Label& b) { return a.name < b.name; });
  auto encoded = std::make_shared<EncodedLabels>();
  for (const Label& l : labels) {
    encoded->bytes += EncodeLabel(l.name, l.value);
    if (l.name < kNameLabel) encoded->name_at = static_cast<uint32_t>(encoded->bytes.size());
  }
  encoded->bytes.shrink_to_fit();
  return encoded;
}

Series::Series(std::shared_ptr<const std::string> encoded_name,
               std::shared_ptr<const EncodedLabels> rest)
    : name_(std::move(encoded_name)), rest_(std::move(rest)) {}

Series::Series(std::vector<Label> labels) {
  std::string name;
  std::vector<Label> rest;
  for (Label& l : labels) {
    if (l.name == kNameLabel) {
      name = std::move(l.value);
    } else {
      rest.push_back(std::move(l));
    }
  }
  name_ = EncodeNameLabel(name);
  rest_ = EncodeLabels(std::move(rest));
}

char* Series::CopyEncodedLabels(char* out) const {
  const std::string& rest = rest_->bytes;
  const size_t at = rest_->name_at;
  std::memcpy(out, rest.data(), at);
  out += at;
  std::memcpy(out, name_->data(), name_->size());
  out += name_->size();
  std::memcpy(out, rest.data() + at, rest.size() - at);
  return out + (rest.size() - at);
}

std::string Series::encoded_labels() const {
  std::string out(encoded_labels_size(), '\0');
  CopyEncodedLabels(out.data());
  return out;
}

std::vector<Label> Series::labels() const {
  std::vector<Label> out;
  const absl::string_view rest = rest_->bytes;
  DecodeLabels(rest.substr(0, rest_->name_at), &out);
  DecodeLabels(*name_, &out);
  DecodeLabels(rest.substr(rest_->name_at), &out);
  return out;
}

std::string Series::name() const {
  std::vector<Label> name;
  DecodeLabels(*name_, &name);
  return name.front().value;
}

std::string Series::ToString() const {
  std::string out = name();
  out.push_back('{');
  bool first = true;
  for (const Label& l : labels()) {
    if (l.name == kNameLabel) continue;
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
