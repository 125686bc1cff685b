#include "lib/ingest/batch_encoder.h"

#include <cstring>

#include "lib/common/wire.h"

namespace rwexport {
namespace {

void AppendVarint(uint64_t v, std::string* out) {
  char bytes[10];
  out->append(bytes, PutVarint(bytes, v) - bytes);
}

constexpr char kExportId = OneByteWireKey(1, kLengthDelimited);  // SampleBatch.export_id
constexpr char kSamples = OneByteWireKey(3, kLengthDelimited);   // SampleBatch.samples
constexpr char kMetric = OneByteWireKey(1, kLengthDelimited);    // Sample.metric
constexpr char kTime = OneByteWireKey(3, kVarint);               // Sample.time_unix_nano
constexpr char kValue = OneByteWireKey(4, kFixed64);             // Sample.value

}  // namespace

void EncodeSelfDescribingBatch(const DecodedBatch& batch, std::string* out) {
  if (!batch.export_id.empty()) {
    out->push_back(kExportId);
    AppendVarint(batch.export_id.size(), out);
    out->append(batch.export_id);
  }
  for (const RawSample& s : batch.samples) {
    const uint64_t time = static_cast<uint64_t>(s.time_unix_nano);
    const size_t size = 1 + VarintSize(s.metric.size()) + s.metric.size() + s.tags.size() +
                        (time != 0 ? 1 + VarintSize(time) : 0) + 1 + 8;
    out->push_back(kSamples);
    AppendVarint(size, out);
    out->push_back(kMetric);
    AppendVarint(s.metric.size(), out);
    out->append(s.metric.data(), s.metric.size());
    out->append(s.tags.data(), s.tags.size());
    if (time != 0) {
      out->push_back(kTime);
      AppendVarint(time, out);
    }
    out->push_back(kValue);
    char bytes[8];
    std::memcpy(bytes, &s.value, 8);  // little-endian hosts only, as the decoder
    out->append(bytes, 8);
  }
}

}  // namespace rwexport
