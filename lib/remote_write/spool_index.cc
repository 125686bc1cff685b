#include "lib/remote_write/spool_index.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/remote_write/request_plan.h"

namespace rwexport {

absl::StatusOr<std::unique_ptr<SpoolIndex>> SpoolIndex::Open(const std::string& dir,
                                                             uint64_t max_bytes) {
  if (max_bytes == 0) return absl::InvalidArgumentError("spool_max_bytes: must be positive");
  // Lock first: the scan tidies the directory, which only its owner may do.
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InvalidArgumentError(
        absl::StrCat("spool_dir: cannot create \"", dir, "\": ", std::strerror(errno)));
  }
  const std::string lock_path = absl::StrCat(dir, "/.lock");
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spool_dir: cannot open \"", lock_path, "\": ", std::strerror(errno)));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("spool_dir: \"", dir, "\" is in use by another rwexport sender"));
  }
  absl::StatusOr<std::vector<SpoolFileInfo>> files = ScanSpoolDir(dir);
  if (!files.ok()) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("spool_dir: ", files.status().message()));
  }
  return std::unique_ptr<SpoolIndex>(new SpoolIndex(dir, max_bytes, fd, *files));
}

SpoolIndex::SpoolIndex(std::string dir, uint64_t max_bytes, int lock_fd,
                       const std::vector<SpoolFileInfo>& files)
    : dir_(std::move(dir)), max_bytes_(max_bytes), lock_fd_(lock_fd) {
  MutexLock lock(&mu_);
  for (const SpoolFileInfo& file : files) {
    files_[file.sequence] = Entry{file.header.key, file.bytes, file.header.points, kNoOwner,
                                  file.header.last_timestamp_ms};
    bytes_ += file.bytes;
    points_ += file.header.points;
    last_sequence_ = std::max(last_sequence_, file.sequence);
  }
  EvictLocked(0, 0);
  if (!files_.empty()) {
    LogInfo("spooled remote-write batches found; they are delivered when their target is added",
            {{"spool_dir", dir_},
             {"files", absl::StrCat(files_.size())},
             {"points", absl::StrCat(points_)}});
  }
}

SpoolIndex::~SpoolIndex() { close(lock_fd_); }

std::string SpoolIndex::Path(uint64_t key, uint64_t sequence) const {
  return SpoolFilePath(dir_, key, sequence);
}

std::vector<SpoolIndex::Claimed> SpoolIndex::Claim(uint64_t key, Owner owner) {
  std::vector<Claimed> out;
  MutexLock lock(&mu_);
  for (auto& [sequence, entry] : files_) {
    if (entry.key != key || entry.owner != kNoOwner) continue;
    entry.owner = owner;
    out.push_back({sequence, entry.points, entry.last_timestamp_ms});
  }
  return out;
}

absl::Status SpoolIndex::WriteBatch(SpoolFileHeader header, uint64_t sequence, PointBatch batch,
                                    size_t max_points, size_t max_bytes, Owner owner) {
  uint64_t chain = 1;
  const std::shared_ptr<const void> owner_of_series = batch.owner;
  std::vector<Piece> pieces = CutIntoPieces(std::move(batch), max_points, max_bytes, &chain);
  std::vector<SpooledRequest> requests;
  header.first_timestamp_ms = std::numeric_limits<int64_t>::max();
  header.last_timestamp_ms = std::numeric_limits<int64_t>::min();
  for (Piece& piece : pieces) {
    absl::StatusOr<std::string> body = EncodeBody(piece.content);
    if (!body.ok()) return body.status();
    requests.push_back({piece.points, piece.chain, piece.max_timestamp_ms, *std::move(body)});
    header.first_timestamp_ms = std::min(header.first_timestamp_ms, piece.min_timestamp_ms);
    header.last_timestamp_ms = std::max(header.last_timestamp_ms, piece.max_timestamp_ms);
  }
  return Write(std::move(header), sequence, requests, owner);
}

absl::Status SpoolIndex::Write(SpoolFileHeader header, uint64_t sequence,
                               const std::vector<SpooledRequest>& requests, Owner owner) {
  const uint64_t key = header.key;
  const int64_t last_timestamp_ms = header.last_timestamp_ms;
  const std::string display_url = header.display_url;
  const std::string contents = EncodeSpoolFile(std::move(header), requests);
  uint64_t points = 0;
  for (const SpooledRequest& r : requests) points += r.points;
  if (contents.size() > max_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat("a batch of ", contents.size(),
                                                     " bytes does not fit in the spool (",
                                                     max_bytes_, " bytes)"));
  }
  MutexLock lock(&mu_);
  auto existing = files_.find(sequence);
  if (existing != files_.end()) {
    bytes_ -= existing->second.bytes;
    points_ -= existing->second.points;
    files_.erase(existing);
  }
  EvictLocked(contents.size(), sequence);
  absl::Status status = WriteSpoolFile(Path(key, sequence), contents);
  if (!status.ok()) {
    LogError("cannot write a spool file",
             {{"target", display_url}, {"error", std::string(status.message())}});
    return status;
  }
  files_[sequence] = Entry{key, contents.size(), points, owner, last_timestamp_ms};
  bytes_ += contents.size();
  points_ += points;
  return absl::OkStatus();
}

void SpoolIndex::EvictLocked(uint64_t incoming, uint64_t keep_sequence) {
  uint64_t evicted_points = 0;
  size_t evicted_files = 0;
  for (auto it = files_.begin(); it != files_.end() && bytes_ + incoming > max_bytes_;) {
    if (it->first == keep_sequence) {
      ++it;
      continue;
    }
    const Entry& entry = it->second;
    unlink(Path(entry.key, it->first).c_str());
    bytes_ -= entry.bytes;
    points_ -= entry.points;
    evicted_points += entry.points;
    ++evicted_files;
    if (entry.owner == kNoOwner) {
      dropped_unowned_ += entry.points;
    } else {
      evicted_[entry.owner].push_back(it->first);
    }
    it = files_.erase(it);
  }
  if (evicted_files > 0) {
    LogWarning("spool full, oldest spooled batches deleted",
               {{"spool_dir", dir_},
                {"files", absl::StrCat(evicted_files)},
                {"points", absl::StrCat(evicted_points)},
                {"spool_max_bytes", absl::StrCat(max_bytes_)}});
  }
}

bool SpoolIndex::Take(uint64_t sequence, Owner owner) {
  MutexLock lock(&mu_);
  auto it = files_.find(sequence);
  if (it == files_.end() || it->second.owner != owner) return false;
  bytes_ -= it->second.bytes;
  points_ -= it->second.points;
  files_.erase(it);
  return true;
}

bool SpoolIndex::Discard(uint64_t sequence, Owner owner) {
  MutexLock lock(&mu_);
  auto it = files_.find(sequence);
  if (it == files_.end() || it->second.owner != owner) return false;
  unlink(Path(it->second.key, sequence).c_str());
  bytes_ -= it->second.bytes;
  points_ -= it->second.points;
  files_.erase(it);
  return true;
}

std::pair<uint64_t, uint64_t> SpoolIndex::DiscardUnowned() {
  uint64_t files = 0;
  uint64_t points = 0;
  MutexLock lock(&mu_);
  for (auto it = files_.begin(); it != files_.end();) {
    const Entry& entry = it->second;
    if (entry.owner != kNoOwner) {
      ++it;
      continue;
    }
    unlink(Path(entry.key, it->first).c_str());
    bytes_ -= entry.bytes;
    points_ -= entry.points;
    dropped_unowned_ += entry.points;
    ++files;
    points += entry.points;
    it = files_.erase(it);
  }
  return {files, points};
}

bool SpoolIndex::Release(uint64_t sequence, Owner owner) {
  MutexLock lock(&mu_);
  auto it = files_.find(sequence);
  if (it == files_.end() || it->second.owner != owner) return false;
  it->second.owner = kNoOwner;
  return true;
}

std::vector<uint64_t> SpoolIndex::TakeEvicted(Owner owner) {
  std::vector<uint64_t> out;
  MutexLock lock(&mu_);
  auto it = evicted_.find(owner);
  if (it == evicted_.end()) return out;
  out.swap(it->second);
  evicted_.erase(it);
  return out;
}

bool SpoolIndex::HasEvicted(Owner owner) const {
  MutexLock lock(&mu_);
  auto it = evicted_.find(owner);
  return it != evicted_.end() && !it->second.empty();
}

SpoolFigures SpoolIndex::Figures() const {
  MutexLock lock(&mu_);
  SpoolFigures out;
  out.files = files_.size();
  out.bytes = bytes_;
  out.points = points_;
  out.points_dropped_unowned = dropped_unowned_;
  return out;
}

}  // namespace rwexport
