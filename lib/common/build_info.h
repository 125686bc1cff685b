// What this binary is: the version (the repository's VERSION file), the git revision it was
// built from and the build date, stamped in by Bazel's workspace status
// (scripts/workspace_status.sh) when the binary is built. A revision of "unknown" means the
// tree was not a git checkout; "-dirty" marks uncommitted changes. Thread-safe.
#ifndef RWEXPORT_LIB_COMMON_BUILD_INFO_H_
#define RWEXPORT_LIB_COMMON_BUILD_INFO_H_

#include <string>

#include "absl/strings/string_view.h"

namespace rwexport {

struct BuildInfo {
  std::string version;     // "0.1.0"
  std::string revision;    // "1976a30d678c", "1976a30d678c-dirty" or "unknown"
  std::string build_date;  // UTC, "2026-12-07T00:15:36Z", or "unknown"
};

const BuildInfo& GetBuildInfo();

// "<program> version 0.1.0 (revision 1976a30d678c, built 2026-12-07T00:15:36Z)", one line.
std::string VersionLine(absl::string_view program);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_BUILD_INFO_H_
