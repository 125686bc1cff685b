#include "lib/durable/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/common/log.h"
#include "lib/durable/file_util.h"

namespace rwexport {
namespace {

absl::Status Unusable(const std::string& path, absl::string_view what, int err) {
  return absl::InvalidArgumentError(
      absl::StrCat("data dir ", path, ": ", what, ": ", std::strerror(err)));
}

// The pid the lock holder wrote, or "unknown" (it may not have written it yet).
std::string HolderPid(int fd) {
  char buffer[32] = {};
  const ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
  const std::string pid(
      absl::StripAsciiWhitespace(absl::string_view(buffer, n > 0 ? static_cast<size_t>(n) : 0)));
  if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) return "unknown";
  return pid;
}

absl::Status WritePid(int fd) {
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()) || fsync(fd) != 0) {
    return ErrnoStatus(errno, "cannot write the pid into LOCK");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DataDir>> DataDir::Open(const std::string& given) {
  std::string path = given;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty()) return absl::InvalidArgumentError("data dir: empty path");
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Unusable(path, "cannot stat", errno);
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return Unusable(path, "cannot create it", errno);
    }
    if (stat(path.c_str(), &st) != 0) return Unusable(path, "cannot stat", errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("data dir ", path, ": not a directory"));
  }
  if (access(path.c_str(), W_OK | X_OK) != 0) return Unusable(path, "not writable", errno);
  const std::string lock_path = path + "/LOCK";
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Unusable(path, absl::StrCat("cannot open ", lock_path), errno);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string pid = err == EWOULDBLOCK ? HolderPid(fd) : "";
    close(fd);
    if (err != EWOULDBLOCK) return Unusable(path, absl::StrCat("cannot lock ", lock_path), err);
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " is in use by another rwexport_server (pid ", pid, ")"));
  }
  if (absl::Status written = WritePid(fd); !written.ok()) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("data dir ", path, ": ", written.message()));
  }
  if ((st.st_mode & 077) != 0) {
    LogWarning(
        "data dir is open to other users; it holds export configurations with their "
        "credentials (chmod 0700 it)",
        {{"data_dir", path}, {"mode", absl::StrFormat("%04o", st.st_mode & 0777)}});
  }
  return std::unique_ptr<DataDir>(new DataDir(std::move(path), fd));
}

DataDir::~DataDir() { close(lock_fd_); }

absl::StatusOr<std::string> DataDir::Subdirectory(absl::string_view name) const {
  std::string dir = absl::StrCat(path_, "/", name);
  if (absl::Status made = EnsureDirectory(dir, 0700); !made.ok()) return made;
  return dir;
}

}  // namespace rwexport
