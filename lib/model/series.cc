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

}  // namespace rwexport
