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

void SortByName(std::vector<Label>* labels) {
  std::sort(labels->begin(), labels->end(),
            [](const Label& a, const Label& b) { return a.name < b.name; });
}

// Copies `data` to `out` (memcpy must not see the null pointer of an empty view).
char* Append(char* out, const char* data, size_t size) {
  if (size > 0) std::memcpy(out, data, size);
  return out + size;
}
char* Append(char* out, absl::string_view data) { return Append(out, data.data(), data.size()); }

// A series made by MakeSeries, with what its view points at.
struct OwnedSeries {
  SeriesFamily family;
  OwnLabels own;
  Series series;
};

}  // namespace

std::string EncodeNameLabel(absl::string_view name) { return EncodeLabel(kNameLabel, name); }

std::string EncodeLabelFields(std::vector<Label> labels) {
  SortByName(&labels);
  std::string out;
  for (const Label& l : labels) out += EncodeLabel(l.name, l.value);
  return out;
}

OwnLabels EncodeOwnLabels(std::vector<Label> labels, absl::string_view common_first) {
  SortByName(&labels);
  OwnLabels out;
  for (const Label& l : labels) {
    out.bytes += EncodeLabel(l.name, l.value);
    const uint32_t end = static_cast<uint32_t>(out.bytes.size());
    if (l.name < kNameLabel) out.name_at = end;
    if (!common_first.empty() && l.name < common_first) out.common_at = end;
  }
  if (common_first.empty()) out.common_at = static_cast<uint32_t>(out.bytes.size());
  return out;
}

Series::Series(const SeriesFamily* family, absl::string_view own, uint32_t name_at,
               uint32_t common_at)
    : family_(family),
      own_(own.data()),
      size_(static_cast<uint32_t>(own.size())),
      name_at_(name_at),
      common_at_(common_at) {}

SeriesPtr MakeSeries(std::vector<Label> labels) {
  auto owned = std::make_shared<OwnedSeries>();
  std::vector<Label> own;
  for (Label& l : labels) {
    if (l.name == kNameLabel) {
      owned->family.names.push_back(EncodeNameLabel(l.value));
    } else {
      own.push_back(std::move(l));
    }
  }
  if (owned->family.names.empty()) owned->family.names.push_back(EncodeNameLabel(""));
  owned->own = EncodeOwnLabels(std::move(own));
  owned->series =
      Series(&owned->family, owned->own.bytes, owned->own.name_at, owned->own.common_at);
  return SeriesPtr(owned, &owned->series);
}

char* Series::CopyEncodedLabels(char* out, size_t name) const {
  // own[0, name_at) __name__ own[name_at, common_at) common own[common_at, size): name_at <=
  // common_at, as the common labels sort after __name__.
  out = Append(out, own_, name_at_);
  out = Append(out, family_->names[name]);
  out = Append(out, own_ + name_at_, common_at_ - name_at_);
  out = Append(out, family_->common);
  return Append(out, own_ + common_at_, size_ - common_at_);
}

std::string Series::encoded_labels(size_t name) const {
  std::string out(encoded_labels_size(name), '\0');
  CopyEncodedLabels(out.data(), name);
  return out;
}

std::vector<Label> Series::labels(size_t name) const {
  std::vector<Label> out;
  DecodeLabels(encoded_labels(name), &out);
  return out;
}

std::string Series::name(size_t name) const {
  std::vector<Label> decoded;
  DecodeLabels(family_->names[name], &decoded);
  return decoded.front().value;
}

std::string Series::ToString(size_t name) const {
  std::string out = this->name(name);
  out.push_back('{');
  bool first = true;
  for (const Label& l : labels(name)) {
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
  out.name = name;
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
