#include "tests/testing/testdata.h"

#include <sys/stat.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rwexport {
namespace {

// This package's BUILD file is a data dependency of :testdata, so it is in every test's
// runfiles as a symlink into the source tree.
constexpr absl::string_view kAnchor = "tests/testing/BUILD.bazel";

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

}  // namespace

std::string SourceTreeRoot() {
  std::vector<std::string> runfiles_dirs;
  std::string workspace = GetEnv("TEST_WORKSPACE");
  if (workspace.empty()) workspace = "rwexport";
  for (const char* var : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    std::string dir = GetEnv(var);
    if (!dir.empty()) runfiles_dirs.push_back(dir);
  }
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) runfiles_dirs.push_back(std::string(exe, n) + ".runfiles");
  for (const std::string& dir : runfiles_dirs) {
    std::string anchor = absl::StrCat(dir, "/", workspace, "/", kAnchor);
    char real[PATH_MAX];
    if (::realpath(anchor.c_str(), real) == nullptr) continue;
    std::string path(real);
    if (path.size() > kAnchor.size() + 1 &&
        absl::string_view(path).substr(path.size() - kAnchor.size()) == kAnchor) {
      return path.substr(0, path.size() - kAnchor.size() - 1);
    }
  }
  return std::string();
}

absl::StatusOr<std::string> FindK6TestdataDir() {
  std::vector<std::string> tried;
  std::string from_env = GetEnv("RWEXPORT_TESTDATA");
  if (!from_env.empty()) {
    if (IsDirectory(from_env)) return from_env;
    tried.push_back("$RWEXPORT_TESTDATA=" + from_env);
  }
  std::string root = SourceTreeRoot();
  if (!root.empty()) {
    std::string beside = root + "/../shared/testdata/k6";
    char real[PATH_MAX];
    if (::realpath(beside.c_str(), real) != nullptr && IsDirectory(real)) return std::string(real);
    tried.push_back(beside);
  } else {
    tried.push_back("<source tree>/../shared/testdata/k6 (source tree not found from runfiles)");
  }
  const std::string fallback = "/work/shared/testdata/k6";
  if (IsDirectory(fallback)) return fallback;
  tried.push_back(fallback);
  return absl::NotFoundError(absl::StrCat(
      "k6 test data not found; set RWEXPORT_TESTDATA to the directory holding finance-run.json "
      "(shared/testdata/k6 beside the repository). Tried: ",
      absl::StrJoin(tried, ", ")));
}

std::string K6TestdataDir() {
  absl::StatusOr<std::string> dir = FindK6TestdataDir();
  if (!dir.ok()) {
    std::fprintf(stderr, "FATAL: %s\n", std::string(dir.status().message()).c_str());
    std::fflush(stderr);
    std::exit(1);
  }
  return *dir;
}

std::string K6TestdataFile(absl::string_view name) {
  return absl::StrCat(K6TestdataDir(), "/", name);
}

}  // namespace rwexport
