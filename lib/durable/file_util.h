// Small files written so that a crash leaves either the old or the new content, never a mix:
// the data directory's records (lib/durable/export_store.h). POSIX only. Thread-safe (no
// shared state).
#ifndef RWEXPORT_LIB_DURABLE_FILE_UTIL_H_
#define RWEXPORT_LIB_DURABLE_FILE_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rwexport {

// A Status for a failed system call: RESOURCE_EXHAUSTED for a full disk or quota (ENOSPC,
// EDQUOT), NOT_FOUND for ENOENT, UNAVAILABLE for any other error; the message is
// "<what>: <strerror(err)>".
absl::Status ErrnoStatus(int err, absl::string_view what);

// Replaces `path` with `contents` atomically and durably: writes a temp file beside it (mode
// 0600), fsyncs it, renames it over `path`, and fsyncs the directory. On failure `path` is
// unchanged and the temp file removed; the Status is ErrnoStatus's, naming the file.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// The whole file. NOT_FOUND when it does not exist; ErrnoStatus's codes otherwise. (Not named
// ReadFileToString: lib/common/file.h has that one, which reports every failure as NOT_FOUND
// and serves configuration files.)
absl::StatusOr<std::string> ReadFileContents(const std::string& path);

// Removes `path` and fsyncs its directory. A file that does not exist is not an error.
absl::Status RemoveFileDurably(const std::string& path);

// Renames `from` to `to` (same file system) and fsyncs both directories.
absl::Status RenameDurably(const std::string& from, const std::string& to);

// fsync of a directory, so that entries created, renamed or removed in it are durable.
absl::Status SyncDirectory(const std::string& dir);

// Creates `path` with `mode` if it does not exist. INVALID_ARGUMENT if it exists and is not a
// directory.
absl::Status EnsureDirectory(const std::string& path, int mode);

// The names of the regular files in `dir` (not "." nor ".."), sorted.
absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_FILE_UTIL_H_
