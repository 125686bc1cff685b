#include "lib/durable/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace rwexport {
namespace {

constexpr uint32_t kPolynomial = 0x82f63b78;  // 0x1edc6f41 reflected

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t UpdatePortable(uint32_t crc, const unsigned char* p, size_t size) {
  static const std::array<uint32_t, 256> table = MakeTable();
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// Appending zeros to a message is linear over GF(2) on the CRC register: ZerosTables(len) are
// four byte tables of the operator that appends `len` zero bytes (len a power of two), so
// Shift(t, crc) is the register after `len` more zero bytes. It combines the three CRC
// streams below: crc(A B) = Shift(crc(A), len(B)) ^ crc(B) when B's stream starts from 0.
using ZerosTables = std::array<std::array<uint32_t, 256>, 4>;

uint32_t MatrixTimes(const uint32_t* matrix, uint32_t vector) {
  uint32_t sum = 0;
  for (; vector != 0; vector >>= 1, ++matrix) {
    if (vector & 1) sum ^= *matrix;
  }
  return sum;
}

void MatrixSquare(uint32_t* square, const uint32_t* matrix) {
  for (int n = 0; n < 32; ++n) square[n] = MatrixTimes(matrix, matrix[n]);
}

ZerosTables MakeZerosTables(size_t len) {
  uint32_t odd[32];
  uint32_t even[32];
  odd[0] = kPolynomial;  // the operator for one zero bit
  for (int n = 1; n < 32; ++n) odd[n] = 1u << (n - 1);
  MatrixSquare(even, odd);  // two zero bits
  MatrixSquare(odd, even);  // four
  const uint32_t* op = nullptr;
  for (;;) {
    MatrixSquare(even, odd);  // the first time: one zero byte
    len >>= 1;
    if (len == 0) {
      op = even;
      break;
    }
    MatrixSquare(odd, even);
    len >>= 1;
    if (len == 0) {
      op = odd;
      break;
    }
  }
  ZerosTables tables{};
  for (uint32_t n = 0; n < 256; ++n) {
    for (int k = 0; k < 4; ++k) tables[k][n] = MatrixTimes(op, n << (8 * k));
  }
  return tables;
}

uint32_t Shift(const ZerosTables& t, uint32_t crc) {
  return t[0][crc & 0xff] ^ t[1][(crc >> 8) & 0xff] ^ t[2][(crc >> 16) & 0xff] ^ t[3][crc >> 24];
}

constexpr size_t kLong = 8192;  // bytes per stream per step for large inputs
constexpr size_t kShort = 256;  // and for what remains

uint64_t Load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Three streams of `block` bytes each, run side by side (the crc32 instruction has a latency
// of 3 cycles and a throughput of 1), then combined.
__attribute__((target("sse4.2"))) uint64_t ThreeStreams(uint64_t c0, const unsigned char** p,
                                                        size_t* size, size_t block,
                                                        const ZerosTables& zeros) {
  while (*size >= 3 * block) {
    uint64_t c1 = 0;
    uint64_t c2 = 0;
    const unsigned char* q = *p;
    const unsigned char* const end = q + block;
    do {
      c0 = _mm_crc32_u64(c0, Load64(q));
      c1 = _mm_crc32_u64(c1, Load64(q + block));
      c2 = _mm_crc32_u64(c2, Load64(q + 2 * block));
      q += 8;
    } while (q < end);
    c0 = Shift(zeros, static_cast<uint32_t>(c0)) ^ c1;
    c0 = Shift(zeros, static_cast<uint32_t>(c0)) ^ c2;
    *p += 3 * block;
    *size -= 3 * block;
  }
  return c0;
}

__attribute__((target("sse4.2"))) uint32_t UpdateHardware(uint32_t crc, const unsigned char* p,
                                                          size_t size) {
  static const ZerosTables long_zeros = MakeZerosTables(kLong);
  static const ZerosTables short_zeros = MakeZerosTables(kShort);
  uint64_t c = crc;
  while (size > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --size;
  }
  c = ThreeStreams(c, &p, &size, kLong, long_zeros);
  c = ThreeStreams(c, &p, &size, kShort, short_zeros);
  while (size >= 8) {
    c = _mm_crc32_u64(c, Load64(p));
    p += 8;
    size -= 8;
  }
  while (size > 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --size;
  }
  return static_cast<uint32_t>(c);
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t Crc32cPortable(const char* data, size_t size) {
  return ~UpdatePortable(0xffffffffu, reinterpret_cast<const unsigned char*>(data), size);
}

uint32_t Crc32c(const char* data, size_t size) { return Crc32cExtend(0, data, size); }

uint32_t Crc32cExtend(uint32_t crc, const char* data, size_t size) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  if (HasSse42()) return ~UpdateHardware(~crc, p, size);
#endif
  return ~UpdatePortable(~crc, p, size);
}

bool Crc32cIsHardware() {
#if defined(__x86_64__)
  return HasSse42();
#else
  return false;
#endif
}

}  // namespace rwexport
