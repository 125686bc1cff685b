#include "lib/remote_write/encoder.h"

#include <cstdint>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "snappy.h"

namespace rwexport {
namespace {

// Wire tags: (field number << 3) | wire type.
constexpr char kWriteRequestTimeseriesTag = (1 << 3) | 2;  // WriteRequest.timeseries
constexpr char kTimeSeriesSamplesTag = (2 << 3) | 2;       // TimeSeries.samples
constexpr char kSampleValueTag = (1 << 3) | 1;             // Sample.value, fixed64
constexpr char kSampleTimestampTag = (2 << 3) | 0;         // Sample.timestamp, varint

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes `v` at `out` and returns the position after it. The caller reserved the room.
char* PutVarint(char* out, uint64_t v) {
  while (v >= 0x80) {
    *out++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<char>(v);
  return out;
}

char* PutFixed64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    *out++ = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

// int64 timestamps are encoded as their two's complement uint64 (protobuf int64).
uint64_t TimestampBits(int64_t ts) { return static_cast<uint64_t>(ts); }

size_t SampleSize(const Point& p) { return 1 + 8 + 1 + VarintSize(TimestampBits(p.timestamp_ms)); }

size_t TimeSeriesSize(const SeriesPoints& sp) {
  size_t size = sp.series->encoded_labels().size();
  for (const Point& p : sp.points) {
    const size_t sample = SampleSize(p);
    size += 1 + VarintSize(sample) + sample;
  }
  return size;
}

}  // namespace

std::string EncodeWriteRequest(absl::Span<const SeriesPoints> series) {
  size_t total = 0;
  for (const SeriesPoints& sp : series) {
    if (sp.points.empty()) continue;
    const size_t ts = TimeSeriesSize(sp);
    total += 1 + VarintSize(ts) + ts;
  }
  std::string out;
  out.resize(total);
  char* p = out.empty() ? nullptr : &out[0];
  for (const SeriesPoints& sp : series) {
    if (sp.points.empty()) continue;
    *p++ = kWriteRequestTimeseriesTag;
    p = PutVarint(p, TimeSeriesSize(sp));
    const std::string& labels = sp.series->encoded_labels();
    std::memcpy(p, labels.data(), labels.size());
    p += labels.size();
    for (const Point& point : sp.points) {
      *p++ = kTimeSeriesSamplesTag;
      p = PutVarint(p, SampleSize(point));
      *p++ = kSampleValueTag;
      uint64_t bits;
      std::memcpy(&bits, &point.value, sizeof(bits));
      p = PutFixed64(p, bits);
      *p++ = kSampleTimestampTag;
      p = PutVarint(p, TimestampBits(point.timestamp_ms));
    }
  }
  return out;
}

absl::StatusOr<std::string> SnappyCompress(absl::string_view raw) {
  if (raw.size() >= std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot snappy-compress ", raw.size(),
                     " bytes: the block format is limited to 4 GiB; send smaller requests"));
  }
  std::string out;
  snappy::Compress(raw.data(), raw.size(), &out);
  return out;
}

absl::StatusOr<std::string> SnappyUncompress(absl::string_view compressed, size_t max_size) {
  size_t size = 0;
  if (!snappy::GetUncompressedLength(compressed.data(), compressed.size(), &size)) {
    return absl::InvalidArgumentError("body is not snappy block-compressed data");
  }
  if (size > max_size) {
    return absl::InvalidArgumentError(absl::StrCat("snappy body would decompress to ", size,
                                                   " bytes, more than the limit of ", max_size));
  }
  std::string out;
  if (!snappy::Uncompress(compressed.data(), compressed.size(), &out)) {
    return absl::InvalidArgumentError("corrupt snappy block-compressed data");
  }
  return out;
}

}  // namespace rwexport
