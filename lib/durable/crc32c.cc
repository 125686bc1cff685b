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
__attribute__((target("sse4.2"))) uint32_t UpdateHardware(uint32_t crc, const unsigned char* p,
                                                          size_t size) {
  uint64_t c = crc;
  // One 8-byte crc32 per step (about 8 bytes per 3 cycles; interleaving three streams would
  // be about 3x faster still, but the log's CRC is a few percent of its CPU now).
  while (size >= 8 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --size;
  }
  while (size >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
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

uint32_t Crc32c(const char* data, size_t size) {
#if defined(__x86_64__)
  if (HasSse42()) {
    return ~UpdateHardware(0xffffffffu, reinterpret_cast<const unsigned char*>(data), size);
  }
#endif
  return Crc32cPortable(data, size);
}

bool Crc32cIsHardware() {
#if defined(__x86_64__)
  return HasSse42();
#else
  return false;
#endif
}

}  // namespace rwexport
