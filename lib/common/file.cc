#include "lib/common/file.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace rwexport {

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  if (in) buffer << in.rdbuf();
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read \"", path, "\""));
  return buffer.str();
}

}  // namespace rwexport
