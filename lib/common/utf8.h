// UTF-8 encoding of one code point, for the hand-written parsers (selector strings, k6 script
// literals) that decode \u escapes.
#ifndef RWEXPORT_LIB_COMMON_UTF8_H_
#define RWEXPORT_LIB_COMMON_UTF8_H_

#include <cstdint>
#include <string>

namespace rwexport {

// Appends `code_point` (at most 0x10FFFF) to `out` as UTF-8.
inline void AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_UTF8_H_
