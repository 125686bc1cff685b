#include "lib/durable/crc32c.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "tests/durable/wal_segment_bytes.h"

namespace rwexport {
namespace {

using testing_wal::Crc32cReference;

TEST(Crc32cTest, KnownValues) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xe3069283u);  // the standard check value
  EXPECT_EQ(Crc32c("", 0), 0u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8a9136aau);  // RFC 3720, B.4
  const std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62a8ab43u);
  EXPECT_EQ(Crc32cPortable("123456789", 9), 0xe3069283u);
}

// Every length 0..300 at every alignment 0..7: the fast path equals the table and the
// definition (the hardware path has a head, 8-byte body and tail).
TEST(Crc32cTest, FastPathEqualsTheDefinition) {
  std::string buffer(320, '\0');
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<char>(i * 131 + 7);
  for (size_t align = 0; align < 8; ++align) {
    for (size_t length = 0; length + align <= 300; ++length) {
      const std::string s = buffer.substr(align, length);
      const uint32_t want = Crc32cReference(s);
      ASSERT_EQ(Crc32c(buffer.data() + align, length), want) << align << " " << length;
      ASSERT_EQ(Crc32cPortable(buffer.data() + align, length), want) << align << " " << length;
    }
  }
}

// Long inputs take the three-stream paths (3 x 8 KiB and 3 x 256 bytes per step), combined by
// the zero-append operator: around each block boundary, at every alignment.
TEST(Crc32cTest, LongInputsEqualTheTable) {
  std::string buffer(100024, '\0');
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<char>((i * 2654435761u) >> 13);
  for (size_t align = 0; align < 8; ++align) {
    for (size_t base : {768u, 3 * 8192u, 3 * 8192u + 768u, 2 * 3 * 8192u, 100000u}) {
      for (size_t length = base - 9; length <= base + 9; ++length) {
        ASSERT_EQ(Crc32c(buffer.data() + align, length),
                  Crc32cPortable(buffer.data() + align, length))
            << align << " " << length;
      }
    }
  }
  const std::string big = buffer.substr(3, 70001);
  EXPECT_EQ(Crc32c(big.data(), big.size()), Crc32cReference(big));
}

// A checksum extended piece by piece equals the checksum of the joined bytes, wherever the
// pieces are cut (the WAL checksums a record's head and its batch separately).
TEST(Crc32cTest, ExtendEqualsTheWhole) {
  std::string buffer(30000, '\0');
  for (size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<char>((i * 40503u) >> 5);
  const uint32_t whole = Crc32c(buffer.data(), buffer.size());
  EXPECT_EQ(whole, Crc32cReference(buffer));
  for (size_t cut : {0u, 1u, 7u, 13u, 300u, 8191u, 24576u, 29999u, 30000u}) {
    const uint32_t head = Crc32c(buffer.data(), cut);
    EXPECT_EQ(Crc32cExtend(head, buffer.data() + cut, buffer.size() - cut), whole) << cut;
  }
  EXPECT_EQ(Crc32cExtend(Crc32c("1234", 4), "56789", 5), 0xe3069283u);
  EXPECT_EQ(Crc32cExtend(0, "123456789", 9), 0xe3069283u);
}

TEST(Crc32cTest, UsesTheInstructionOnThisMachine) {
#if defined(__x86_64__)
  EXPECT_EQ(Crc32cIsHardware(), __builtin_cpu_supports("sse4.2") != 0);
#else
  EXPECT_FALSE(Crc32cIsHardware());
#endif
}

}  // namespace
}  // namespace rwexport
