// Fuzz target: K6ResultsReader::ReadBuffer over `k6 run --out json` input, plus
// the RFC 3339 parser its timestamps go through.
#include <cstdint>

#include "absl/strings/string_view.h"
#include "lib/k6/results_reader.h"
#include "tests/fuzz/k6_reader_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  rwexport::fuzz::ReadK6Buffer(text, rwexport::K6Format::kJson);
  if (size < 64) rwexport::ParseRfc3339UnixNanos(text).IgnoreError();
  return 0;
}
