// CRC-32C (Castagnoli, the polynomial of iSCSI and ext4; reflected, initial and final value
// 0xffffffff): the checksum of the write-ahead log's format version 2 (lib/durable/wal.h). Uses
// the SSE4.2 crc32 instruction when the CPU has it (checked once, at run time), a table
// otherwise; both give the same values. Thread-safe.
#ifndef RWEXPORT_LIB_DURABLE_CRC32C_H_
#define RWEXPORT_LIB_DURABLE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace rwexport {

// CRC-32C of `size` bytes; Crc32c("123456789", 9) == 0xe3069283.
uint32_t Crc32c(const char* data, size_t size);

// The CRC-32C of A followed by `data`, given `crc` = Crc32c(A) (0 for an empty A): a checksum
// of bytes in several pieces without joining them.
uint32_t Crc32cExtend(uint32_t crc, const char* data, size_t size);

// The table version, whatever the CPU (for tests: it must agree with Crc32c).
uint32_t Crc32cPortable(const char* data, size_t size);

// Whether Crc32c uses the SSE4.2 instruction on this CPU.
bool Crc32cIsHardware();

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_CRC32C_H_
