// FirstInvalidUtf8: the offset of the first byte that is not well-formed UTF-8 (RFC 3629,
// table 3-7 of the Unicode standard), and AppendUtf8's output passing it.
#include "lib/common/utf8.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace rwexport {
namespace {

TEST(Utf8Test, WellFormedTextIsAccepted) {
  EXPECT_EQ(FirstInvalidUtf8(""), 0u);
  EXPECT_EQ(FirstInvalidUtf8("http_req_duration"), 17u);
  const std::string text = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";  // é € 😀
  EXPECT_EQ(FirstInvalidUtf8(text), text.size());
  EXPECT_EQ(FirstInvalidUtf8(std::string("a\0b", 3)), 3u);
}

TEST(Utf8Test, TheFirstBadByteIsFound) {
  EXPECT_EQ(FirstInvalidUtf8("ab\xff"), 2u);            // never in UTF-8
  EXPECT_EQ(FirstInvalidUtf8("a\x80"), 1u);             // lone continuation byte
  EXPECT_EQ(FirstInvalidUtf8("a\xc0\xaf"), 1u);         // overlong '/'
  EXPECT_EQ(FirstInvalidUtf8("\xe0\x80\xaf"), 0u);      // overlong, 3 bytes
  EXPECT_EQ(FirstInvalidUtf8("x\xed\xa0\x80"), 1u);     // surrogate U+D800
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("ok\xe2\x82"), 2u);        // truncated at the end
  EXPECT_EQ(FirstInvalidUtf8("\xc3\xa9\xc3(x"), 2u);    // continuation missing
}

TEST(Utf8Test, AppendUtf8OfEveryScalarValueIsWellFormed) {
  for (uint32_t cp :
       {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xD7FFu, 0xE000u, 0xFFFFu, 0x10000u, 0x10FFFFu}) {
    std::string out;
    AppendUtf8(cp, &out);
    EXPECT_EQ(FirstInvalidUtf8(out), out.size()) << cp;
  }
  std::string surrogate;
  AppendUtf8(0xD800, &surrogate);
  EXPECT_EQ(FirstInvalidUtf8(surrogate), 0u);
}

}  // namespace
}  // namespace rwexport
