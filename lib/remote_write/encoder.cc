#include "lib/remote_write/encoder.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/common/wire.h"
#include "snappy.h"

namespace rwexport {
namespace {

// Field keys of the remote-write messages, each one byte.
constexpr char kWriteRequestTimeseriesTag =
    OneByteWireKey(1, kLengthDelimited);  // WriteRequest.timeseries
constexpr char kTimeSeriesSamplesTag = OneByteWireKey(2, kLengthDelimited);  // TimeSeries.samples
constexpr char kSampleValueTag = OneByteWireKey(1, kFixed64);                // Sample.value
constexpr char kSampleTimestampTag = OneByteWireKey(2, kVarint);             // Sample.timestamp
constexpr char kTimeSeriesHistogramsTag =
    OneByteWireKey(4, kLengthDelimited);  // TimeSeries.histograms
// Histogram fields.
constexpr char kHistogramCountIntTag = OneByteWireKey(1, kVarint);        // uint64, oneof count
constexpr char kHistogramSumTag = OneByteWireKey(3, kFixed64);            // double
constexpr char kHistogramSchemaTag = OneByteWireKey(4, kVarint);          // sint32
constexpr char kHistogramZeroThresholdTag = OneByteWireKey(5, kFixed64);  // double
constexpr char kHistogramZeroCountIntTag = OneByteWireKey(6, kVarint);  // uint64, oneof zero_count
constexpr char kHistogramNegativeSpansTag = OneByteWireKey(8, kLengthDelimited);    // BucketSpan
constexpr char kHistogramNegativeDeltasTag = OneByteWireKey(9, kLengthDelimited);   // packed sint64
constexpr char kHistogramPositiveSpansTag = OneByteWireKey(11, kLengthDelimited);   // BucketSpan
constexpr char kHistogramPositiveDeltasTag = OneByteWireKey(12, kLengthDelimited);  // packed sint64
constexpr char kHistogramResetHintTag = OneByteWireKey(14, kVarint);                // enum
constexpr char kHistogramTimestampTag = OneByteWireKey(15, kVarint);                // int64
constexpr char kBucketSpanOffsetTag = OneByteWireKey(1, kVarint);                   // sint32
constexpr char kBucketSpanLengthTag = OneByteWireKey(2, kVarint);                   // uint32

char* PutFixed64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    *out++ = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

// int64 timestamps are encoded as their two's complement uint64 (protobuf int64).
uint64_t TimestampBits(int64_t ts) { return static_cast<uint64_t>(ts); }

uint64_t DoubleBits(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits;
}

size_t SampleSize(const Point& p) { return 1 + 8 + 1 + VarintSize(TimestampBits(p.timestamp_ms)); }

// Histograms are encoded as the generated proto3 code would: fields holding their default
// value are left out, except the oneof members count_int and zero_count_int, which are always
// written (so that a decoder sees integer counts).
size_t SpanSize(const HistogramSpan& span) {
  size_t size = 0;
  if (span.offset != 0) size += 1 + VarintSize(ZigZagEncode32(span.offset));
  if (span.length != 0) size += 1 + VarintSize(span.length);
  return size;
}

size_t SpansSize(const std::vector<HistogramSpan>& spans) {
  size_t size = 0;
  for (const HistogramSpan& span : spans) {
    const size_t s = SpanSize(span);
    size += 1 + VarintSize(s) + s;
  }
  return size;
}

size_t PackedDeltasSize(const std::vector<int64_t>& deltas) {
  size_t size = 0;
  for (int64_t d : deltas) size += VarintSize(ZigZagEncode64(d));
  return size;
}

size_t DeltasFieldSize(const std::vector<int64_t>& deltas) {
  if (deltas.empty()) return 0;
  const size_t packed = PackedDeltasSize(deltas);
  return 1 + VarintSize(packed) + packed;
}

size_t HistogramSize(const HistogramPoint& h) {
  size_t size = 1 + VarintSize(h.count) + 1 + VarintSize(h.zero_count);
  if (DoubleBits(h.sum) != 0) size += 1 + 8;
  if (h.schema != 0) size += 1 + VarintSize(ZigZagEncode32(h.schema));
  if (DoubleBits(h.zero_threshold) != 0) size += 1 + 8;
  size += SpansSize(h.negative_spans) + DeltasFieldSize(h.negative_deltas);
  size += SpansSize(h.positive_spans) + DeltasFieldSize(h.positive_deltas);
  if (h.reset_hint != HistogramPoint::ResetHint::kUnknown) {
    size += 1 + VarintSize(static_cast<uint64_t>(h.reset_hint));
  }
  if (h.timestamp_ms != 0) size += 1 + VarintSize(TimestampBits(h.timestamp_ms));
  return size;
}

size_t TimeSeriesSize(const SeriesPoints& sp) {
  size_t size = sp.series->encoded_labels_size(sp.name);
  for (const Point& p : sp.points) {
    const size_t sample = SampleSize(p);
    size += 1 + VarintSize(sample) + sample;
  }
  for (const HistogramPoint& h : sp.histograms) {
    const size_t histogram = HistogramSize(h);
    size += 1 + VarintSize(histogram) + histogram;
  }
  return size;
}

char* PutSpans(char* p, char tag, const std::vector<HistogramSpan>& spans) {
  for (const HistogramSpan& span : spans) {
    *p++ = tag;
    p = PutVarint(p, SpanSize(span));
    if (span.offset != 0) {
      *p++ = kBucketSpanOffsetTag;
      p = PutVarint(p, ZigZagEncode32(span.offset));
    }
    if (span.length != 0) {
      *p++ = kBucketSpanLengthTag;
      p = PutVarint(p, span.length);
    }
  }
  return p;
}

char* PutDeltas(char* p, char tag, const std::vector<int64_t>& deltas) {
  if (deltas.empty()) return p;
  *p++ = tag;
  p = PutVarint(p, PackedDeltasSize(deltas));
  for (int64_t d : deltas) p = PutVarint(p, ZigZagEncode64(d));
  return p;
}

char* PutHistogram(char* p, const HistogramPoint& h) {
  *p++ = kTimeSeriesHistogramsTag;
  p = PutVarint(p, HistogramSize(h));
  *p++ = kHistogramCountIntTag;
  p = PutVarint(p, h.count);
  if (DoubleBits(h.sum) != 0) {
    *p++ = kHistogramSumTag;
    p = PutFixed64(p, DoubleBits(h.sum));
  }
  if (h.schema != 0) {
    *p++ = kHistogramSchemaTag;
    p = PutVarint(p, ZigZagEncode32(h.schema));
  }
  if (DoubleBits(h.zero_threshold) != 0) {
    *p++ = kHistogramZeroThresholdTag;
    p = PutFixed64(p, DoubleBits(h.zero_threshold));
  }
  *p++ = kHistogramZeroCountIntTag;
  p = PutVarint(p, h.zero_count);
  p = PutSpans(p, kHistogramNegativeSpansTag, h.negative_spans);
  p = PutDeltas(p, kHistogramNegativeDeltasTag, h.negative_deltas);
  p = PutSpans(p, kHistogramPositiveSpansTag, h.positive_spans);
  p = PutDeltas(p, kHistogramPositiveDeltasTag, h.positive_deltas);
  if (h.reset_hint != HistogramPoint::ResetHint::kUnknown) {
    *p++ = kHistogramResetHintTag;
    p = PutVarint(p, static_cast<uint64_t>(h.reset_hint));
  }
  if (h.timestamp_ms != 0) {
    *p++ = kHistogramTimestampTag;
    p = PutVarint(p, TimestampBits(h.timestamp_ms));
  }
  return p;
}

}  // namespace

size_t EncodedSeriesSize(const SeriesPoints& series) {
  if (series.empty()) return 0;
  const size_t ts = TimeSeriesSize(series);
  return 1 + VarintSize(ts) + ts;
}

size_t EncodedSampleSize(const Point& point) {
  const size_t sample = SampleSize(point);
  return 1 + VarintSize(sample) + sample;
}

size_t EncodedHistogramSize(const HistogramPoint& histogram) {
  const size_t size = HistogramSize(histogram);
  return 1 + VarintSize(size) + size;
}

std::string EncodeWriteRequest(absl::Span<const SeriesPoints> series) {
  size_t total = 0;
  for (const SeriesPoints& sp : series) {
    if (sp.empty()) continue;
    const size_t ts = TimeSeriesSize(sp);
    total += 1 + VarintSize(ts) + ts;
  }
  std::string out;
  out.resize(total);
  char* p = out.empty() ? nullptr : &out[0];
  for (const SeriesPoints& sp : series) {
    if (sp.empty()) continue;
    *p++ = kWriteRequestTimeseriesTag;
    p = PutVarint(p, TimeSeriesSize(sp));
    p = sp.series->CopyEncodedLabels(p, sp.name);
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
    for (const HistogramPoint& histogram : sp.histograms) p = PutHistogram(p, histogram);
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
