// Reading a whole (small) file: configurations, certificates, tokens. Thread-safe.
#ifndef RWEXPORT_LIB_COMMON_FILE_H_
#define RWEXPORT_LIB_COMMON_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace rwexport {

// The file's bytes, or NotFound `cannot read "<path>"` (callers prefix what the file is for).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_FILE_H_
