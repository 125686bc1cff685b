#include "lib/ingest/batch_encoder.h"

#include <cstring>

namespace rwexport {
namespace {

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Field keys: (number << 3) | wire type.
constexpr char kExportId = (1 << 3) | 2;
constexpr char kSamples = (3 << 3) | 2;
constexpr char kMetric = (1 << 3) | 2;
constexpr char kTime = (3 << 3) | 0;
constexpr char kValue = (4 << 3) | 1;

}  // namespace

void EncodeSelfDescribingBatch(const DecodedBatch& batch, std::string* out) {
  if (!batch.export_id.empty()) {
    out->push_back(kExportId);
    PutVarint(batch.export_id.size(), out);
    out->append(batch.export_id);
  }
  for (const RawSample& s : batch.samples) {
    const uint64_t time = static_cast<uint64_t>(s.time_unix_nano);
    const size_t size = 1 + VarintSize(s.metric.size()) + s.metric.size() + s.tags.size() +
                        (time != 0 ? 1 + VarintSize(time) : 0) + 1 + 8;
    out->push_back(kSamples);
    PutVarint(size, out);
    out->push_back(kMetric);
    PutVarint(s.metric.size(), out);
    out->append(s.metric.data(), s.metric.size());
    out->append(s.tags.data(), s.tags.size());
    if (time != 0) {
      out->push_back(kTime);
      PutVarint(time, out);
    }
    out->push_back(kValue);
    char bytes[8];
    std::memcpy(bytes, &s.value, 8);  // little-endian hosts only, as the decoder
    out->append(bytes, 8);
  }
}

}  // namespace rwexport
