// The protobuf wire format's building blocks (https://protobuf.dev/programming-guides/encoding/):
// wire types, field keys, varints and zigzag, for the hand-written encoder (remote write) and
// decoder (the API's SampleBatch). Header-only, pure functions; thread-safe.
#ifndef RWEXPORT_LIB_COMMON_WIRE_H_
#define RWEXPORT_LIB_COMMON_WIRE_H_

#include <cstddef>
#include <cstdint>

namespace rwexport {

enum WireType : int {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

// A field's key: (field number << 3) | wire type.
constexpr uint32_t WireKey(uint32_t field, WireType wire_type) {
  return (field << 3) | static_cast<uint32_t>(wire_type);
}
// The key as its one encoded byte; only for fields 1 to 15.
constexpr char OneByteWireKey(uint32_t field, WireType wire_type) {
  return static_cast<char>(WireKey(field, wire_type));
}
constexpr uint32_t KeyField(uint64_t key) { return static_cast<uint32_t>(key >> 3); }
constexpr int KeyWireType(uint64_t key) { return static_cast<int>(key & 7); }

// sint32 / sint64 (zigzag): small magnitudes, positive or negative, give short varints.
constexpr uint64_t ZigZagEncode32(int32_t v) {
  return (static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31);
}
constexpr uint64_t ZigZagEncode64(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
constexpr int64_t ZigZagDecode64(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// The encoded size of varint `v` (1 to 10 bytes).
constexpr size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes varint `v` at `out` and returns the position after it. The caller reserved the room.
inline char* PutVarint(char* out, uint64_t v) {
  while (v >= 0x80) {
    *out++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<char>(v);
  return out;
}

// Reads a varint of at most `max_bytes` bytes (10: any 64-bit value; protobuf reads keys and
// lengths with 5) from [*p, end) and advances *p past it.
enum class VarintRead { kOk, kTruncated, kTooLong };
inline VarintRead ReadVarint(const uint8_t** p, const uint8_t* end, uint64_t* value,
                             int max_bytes = 10) {
  const uint8_t* q = *p;
  if (q != end && *q < 0x80) {  // one byte: keys, lengths, small numbers
    *value = *q;
    *p = q + 1;
    return VarintRead::kOk;
  }
  uint64_t result = 0;
  for (int i = 0; i < max_bytes; ++i) {
    if (q == end) return VarintRead::kTruncated;
    const uint8_t byte = *q++;
    result |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if (byte < 0x80) {
      *value = result;
      *p = q;
      return VarintRead::kOk;
    }
  }
  return VarintRead::kTooLong;
}

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_WIRE_H_
