// The server's data directory (rwexport_server --data_dir): where what must survive a crash
// lives. Opening it creates it if needed and locks it, so that two servers never share one.
//
// Layout: <dir>/LOCK (the lock, holding the owner's pid), and one subdirectory per user of it
// (exports/, stopped/ and corrupt/ of lib/durable/export_store.h; the write-ahead log's own).
//
// Thread-safe (immutable once opened).
#ifndef RWEXPORT_LIB_DURABLE_DATA_DIR_H_
#define RWEXPORT_LIB_DURABLE_DATA_DIR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rwexport {

class DataDir {
 public:
  // Creates `path` (mode 0700; its parent must exist) if it does not exist, and takes an
  // exclusive flock on <path>/LOCK (mode 0600), writing this process's pid into it.
  // FAILED_PRECONDITION "data dir <path> is in use by another rwexport_server (pid N)" when
  // another open DataDir holds the lock, in this process or another; INVALID_ARGUMENT naming
  // the path and the system's reason when it is not a directory, cannot be created, or is not
  // writable.
  static absl::StatusOr<std::unique_ptr<DataDir>> Open(const std::string& path);
  // Releases the lock (the LOCK file stays; its content is only informative).
  ~DataDir();
  DataDir(const DataDir&) = delete;
  DataDir& operator=(const DataDir&) = delete;

  // The directory as given to Open, without a trailing slash.
  const std::string& path() const { return path_; }
  // <path>/<name>, created (mode 0700) if missing.
  absl::StatusOr<std::string> Subdirectory(absl::string_view name) const;

 private:
  DataDir(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}

  const std::string path_;
  const int lock_fd_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_DATA_DIR_H_
