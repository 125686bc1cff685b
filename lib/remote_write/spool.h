// The on-disk spool of remote-write batches: its file format and directory listing.
//
// A spool file holds one batch of one target, already cut into requests and encoded (each
// request a snappy-compressed prometheus.WriteRequest, exactly the body that is POSTed), plus
// a small text header: the target's spool key (a hash of its URL and extra headers), its
// display URL (no secrets), the point count and the first and last timestamp. Credentials are
// never written. Files are named "<key as 16 hex digits>-<sequence as 20 digits>.rwspool", so
// that listing them by name orders them by sequence; a file is written to a temporary name
// and renamed once its data is synced, so a crash never leaves a half-written spool file under
// its final name.
//
// The Sender owns the policy (when to spool, the size bound, replay); this file only reads and
// writes. Stateless functions; thread-safe.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_SPOOL_H_
#define RWEXPORT_LIB_REMOTE_WRITE_SPOOL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rwexport {

// One request of a spooled batch.
struct SpooledRequest {
  uint64_t points = 0;
  // Requests of a batch with the same non-zero chain must be sent one after the other, in file
  // order (the pieces of one long series); chain 0 may travel in parallel.
  uint64_t chain = 0;
  int64_t max_timestamp_ms = 0;
  std::string body;  // snappy(WriteRequest)
};

struct SpoolFileHeader {
  uint64_t key = 0;
  std::string display_url;
  uint64_t points = 0;
  int64_t first_timestamp_ms = 0;
  int64_t last_timestamp_ms = 0;
  uint64_t requests = 0;
};

// A spool file as found in the directory.
struct SpoolFileInfo {
  std::string path;
  uint64_t sequence = 0;
  uint64_t bytes = 0;  // file size
  SpoolFileHeader header;
};

// The identity of a target in the spool: FNV-1a 64 of its URL and its extra headers (sorted),
// and `scope` when not empty (a durable queue's owner: the export id and the target's index),
// not its credentials, so a target configured again with rotated credentials resumes.
uint64_t SpoolKey(absl::string_view url,
                  const std::vector<std::pair<std::string, std::string>>& headers,
                  absl::string_view scope = "");

// "<dir>/<key>-<sequence>.rwspool".
std::string SpoolFilePath(absl::string_view dir, uint64_t key, uint64_t sequence);

// The file's bytes: header, then each request. Fills header.requests and header.points from
// `requests`; the caller sets key, display_url and the timestamps.
std::string EncodeSpoolFile(SpoolFileHeader header, const std::vector<SpooledRequest>& requests);

// Writes `contents` to `path` atomically and durably (temporary file, fsync, rename, fsync of
// the directory).
absl::Status WriteSpoolFile(const std::string& path, absl::string_view contents);

// Group commit (spool_index.h): writes `contents` to `path`'s pending name ("<path>.pending")
// without syncing it; the committer syncs a group of them at once and renames each to `path`.
absl::Status WritePendingSpoolFile(const std::string& path, absl::string_view contents);
std::string PendingSpoolFilePath(absl::string_view path);

// fsync of the directory `dir` (its renames and unlinks become durable).
absl::Status SyncSpoolDir(const std::string& dir);

// Reads and checks a whole spool file. DataLossError when it is truncated or malformed.
absl::StatusOr<std::pair<SpoolFileHeader, std::vector<SpooledRequest>>> ReadSpoolFile(
    const std::string& path);

// Creates `dir` if needed (one level), removes leftover temporary and pending files, and lists the
// spool files in sequence order with their headers. A file whose header cannot be read is renamed
// to "<name>.corrupt" (kept for people, ignored from then on) and logged.
absl::StatusOr<std::vector<SpoolFileInfo>> ScanSpoolDir(const std::string& dir);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_SPOOL_H_
