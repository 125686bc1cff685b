// Fuzz target: K6ResultsReader::ReadBuffer over `k6 run --out csv` input, plus the timestamp
// parser its rows go through.
#include <cstdint>

#include "absl/strings/string_view.h"
#include "lib/k6/results_reader.h"
#include "tests/fuzz/k6_reader_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  rwexport::fuzz::ReadK6Buffer(text, rwexport::K6Format::kCsv);
  if (size < 64) rwexport::ParseK6CsvTimestamp(text).IgnoreError();
  return 0;
}
