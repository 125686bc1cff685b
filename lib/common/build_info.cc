#include "lib/common/build_info.h"

#include "absl/strings/str_cat.h"
#include "lib/common/build_info_stamp.h"

namespace rwexport {

const BuildInfo& GetBuildInfo() {
  static const BuildInfo* const info =
      new BuildInfo{kStampVersion, kStampRevision, kStampBuildDate};
  return *info;
}

std::string VersionLine(absl::string_view program) {
  const BuildInfo& info = GetBuildInfo();
  return absl::StrCat(program, " version ", info.version, " (revision ", info.revision, ", built ",
                      info.build_date, ")");
}

}  // namespace rwexport
