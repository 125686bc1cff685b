// Write-ahead log segments built from the format's description (lib/durable/wal.h), for the
// recovery tests and the recovery fuzzer: segments of earlier format versions, and checksums
// computed independently of the log's own code.
#ifndef RWEXPORT_TESTS_DURABLE_WAL_SEGMENT_BYTES_H_
#define RWEXPORT_TESTS_DURABLE_WAL_SEGMENT_BYTES_H_

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rwexport {
namespace testing_wal {

inline void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// zlib's CRC-32: the checksum of format version 1.
inline uint32_t ZlibCrc(const std::string& s) {
  return static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size())));
}

// CRC-32C bit by bit, from its definition (reflected 0x1edc6f41, init and final xor ~0): the
// checksum of format version 2.
inline uint32_t Crc32cReference(const std::string& s) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : s) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
  }
  return ~crc;
}

// Segment `n` (the one before it: `prev`) of format `version` holding `records`, its checksums
// by `crc`. `ends`, if given, gets the end offset of each record.
inline std::string SegmentBytes(uint32_t version, uint64_t n, uint64_t prev,
                                const std::vector<std::string>& records,
                                uint32_t (*crc)(const std::string&),
                                std::vector<size_t>* ends = nullptr) {
  std::string f("RWEXWAL", 8);  // with its NUL
  PutU32(&f, version);
  PutU64(&f, n);
  PutU64(&f, prev);
  PutU32(&f, crc(f));
  for (const std::string& r : records) {
    PutU32(&f, static_cast<uint32_t>(r.size()));
    PutU32(&f, crc(r));
    f += r;
    if (ends != nullptr) ends->push_back(f.size());
  }
  return f;
}

}  // namespace testing_wal
}  // namespace rwexport

#endif  // RWEXPORT_TESTS_DURABLE_WAL_SEGMENT_BYTES_H_
