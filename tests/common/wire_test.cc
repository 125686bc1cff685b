#include "lib/common/wire.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace rwexport {
namespace {

std::string Encode(uint64_t v) {
  std::string out(VarintSize(v), '\0');
  char* end = PutVarint(out.data(), v);
  EXPECT_EQ(end, out.data() + out.size());
  return out;
}

TEST(WireTest, Keys) {
  EXPECT_EQ(WireKey(1, kLengthDelimited), 0x0au);
  EXPECT_EQ(WireKey(2, kVarint), 0x10u);
  EXPECT_EQ(WireKey(15, kFixed64), 0x79u);
  EXPECT_EQ(OneByteWireKey(1, kFixed64), '\x09');
  EXPECT_EQ(KeyField(0x79), 15u);
  EXPECT_EQ(KeyWireType(0x79), kFixed64);
  EXPECT_EQ(KeyField(WireKey(536870911, kFixed32)), 536870911u);
  EXPECT_EQ(KeyWireType(WireKey(536870911, kFixed32)), kFixed32);
}

TEST(WireTest, VarintsAsProtobufEncodesThem) {
  EXPECT_EQ(Encode(0), std::string("\x00", 1));
  EXPECT_EQ(Encode(1), "\x01");
  EXPECT_EQ(Encode(127), "\x7f");
  EXPECT_EQ(Encode(128), "\x80\x01");
  EXPECT_EQ(Encode(300), "\xac\x02");
  EXPECT_EQ(Encode(std::numeric_limits<uint64_t>::max()),
            "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
  EXPECT_EQ(VarintSize(0), 1u);
  EXPECT_EQ(VarintSize(16383), 2u);
  EXPECT_EQ(VarintSize(16384), 3u);
  EXPECT_EQ(VarintSize(std::numeric_limits<uint64_t>::max()), 10u);
}

TEST(WireTest, ReadVarintRoundTripsAndRefusesBadInput) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300},
                     uint64_t{1} << 35, std::numeric_limits<uint64_t>::max()}) {
    const std::string bytes = Encode(v);
    const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const uint8_t* end = p + bytes.size();
    uint64_t read = 0;
    ASSERT_EQ(ReadVarint(&p, end, &read), VarintRead::kOk) << v;
    EXPECT_EQ(read, v);
    EXPECT_EQ(p, end);
  }
  const std::string truncated = "\x80\x80";
  const uint8_t* p = reinterpret_cast<const uint8_t*>(truncated.data());
  uint64_t read;
  EXPECT_EQ(ReadVarint(&p, p + truncated.size(), &read), VarintRead::kTruncated);
  const std::string six = "\x80\x80\x80\x80\x80\x01";
  p = reinterpret_cast<const uint8_t*>(six.data());
  EXPECT_EQ(ReadVarint(&p, p + six.size(), &read, 5), VarintRead::kTooLong);
  p = reinterpret_cast<const uint8_t*>(six.data());
  EXPECT_EQ(ReadVarint(&p, p + six.size(), &read), VarintRead::kOk);
  EXPECT_EQ(read, uint64_t{1} << 35);
  const std::string eleven(10, '\x80');
  p = reinterpret_cast<const uint8_t*>(eleven.data());
  EXPECT_EQ(ReadVarint(&p, p + eleven.size(), &read), VarintRead::kTooLong);
}

TEST(WireTest, ZigZag) {
  EXPECT_EQ(ZigZagEncode64(0), 0u);
  EXPECT_EQ(ZigZagEncode64(-1), 1u);
  EXPECT_EQ(ZigZagEncode64(1), 2u);
  EXPECT_EQ(ZigZagEncode64(-2), 3u);
  EXPECT_EQ(ZigZagEncode32(-1), 1u);
  EXPECT_EQ(ZigZagEncode32(std::numeric_limits<int32_t>::min()), 0xffffffffu);
  for (int64_t v : {int64_t{0}, int64_t{-1}, int64_t{1}, int64_t{-123456789},
                    std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}) {
    EXPECT_EQ(ZigZagDecode64(ZigZagEncode64(v)), v);
  }
}

}  // namespace
}  // namespace rwexport
