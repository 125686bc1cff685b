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

namespace {

// A failed group commit is tried again after this long.
constexpr absl::Duration kCommitRetry = absl::Milliseconds(200);

}  // namespace

absl::StatusOr<std::unique_ptr<SpoolIndex>> SpoolIndex::Open(const std::string& dir,
                                                             uint64_t max_bytes, bool group_commit,
                                                             std::function<void()> commit_gate) {
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
  return std::unique_ptr<SpoolIndex>(
      new SpoolIndex(dir, max_bytes, fd, *files, group_commit, std::move(commit_gate)));
}

SpoolIndex::SpoolIndex(std::string dir, uint64_t max_bytes, int lock_fd,
                       const std::vector<SpoolFileInfo>& files, bool group_commit,
                       std::function<void()> commit_gate)
    : dir_(std::move(dir)),
      max_bytes_(max_bytes),
      lock_fd_(lock_fd),
      commit_gate_(std::move(commit_gate)) {
  if (group_commit) committer_ = std::thread([this] { CommitLoop(); });
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

SpoolIndex::~SpoolIndex() {
  if (committer_.joinable()) {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      work_cv_.SignalAll();
    }
    committer_.join();
  }
  close(lock_fd_);
}

void SpoolIndex::CommitLoop() {
  bool failed = false;
  while (true) {
    std::vector<uint64_t> group;
    uint64_t generation = 0;
    {
      MutexLock lock(&mu_);
      while (pending_.empty() && !stopping_) work_cv_.Wait(&mu_);
      if (pending_.empty()) return;  // stopping, nothing left
      if (failed && !stopping_) {
        work_cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(kCommitRetry));
        if (pending_.empty()) continue;
      }
      generation = written_generation_;
      // Files deleted before their commit (delivered already, or evicted) need no sync.
      for (auto it = pending_.begin(); it != pending_.end();) {
        if (!it->second.cancelled) {
          group.push_back((it++)->first);
          continue;
        }
        if (!it->second.renamed)
          unlink(PendingSpoolFilePath(Path(it->second.key, it->first)).c_str());
        it = pending_.erase(it);
      }
      if (group.empty()) {
        committed_generation_ = std::max(committed_generation_, generation);
        done_cv_.SignalAll();
        continue;
      }
    }
    if (commit_gate_) commit_gate_();
    // One sync for the data of every file of the group (and anything else of the file system).
    const int dir_fd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    absl::Status status = absl::OkStatus();
    if (dir_fd < 0 || syncfs(dir_fd) != 0) {
      status = absl::ErrnoToStatus(
          errno, absl::StrCat("cannot sync the spool's file system \"", dir_, "\""));
    }
    if (dir_fd >= 0) close(dir_fd);
    if (status.ok()) {
      MutexLock lock(&mu_);
      for (uint64_t sequence : group) {
        auto it = pending_.find(sequence);
        if (it == pending_.end()) continue;
        const std::string path = Path(it->second.key, sequence);
        if (it->second.cancelled) {
          unlink(PendingSpoolFilePath(path).c_str());
          pending_.erase(it);
          continue;
        }
        if (it->second.renamed) continue;  // by an earlier attempt whose directory sync failed
        if (rename(PendingSpoolFilePath(path).c_str(), path.c_str()) != 0) {
          status = absl::ErrnoToStatus(
              errno, absl::StrCat("cannot rename spool file \"", PendingSpoolFilePath(path), "\""));
          break;  // this one and the rest: tried again
        }
        it->second.renamed = true;
      }
    }
    // The renames are durable once the directory is synced.
    if (status.ok()) status = SyncSpoolDir(dir_);
    MutexLock lock(&mu_);
    if (!status.ok()) {
      if (!failed) {
        LogError(
            "cannot commit remote-write queue files; they are not durable until a retry "
            "succeeds",
            {{"spool_dir", dir_}, {"error", std::string(status.message())}});
      }
      failed = true;
      if (stopping_) return;  // left pending: the next scan deletes them
      continue;
    }
    if (failed) LogInfo("remote-write queue files are committed again", {{"spool_dir", dir_}});
    failed = false;
    uint64_t files = 0;
    for (uint64_t sequence : group) {
      auto it = pending_.find(sequence);
      if (it == pending_.end() || !it->second.renamed) continue;
      pending_.erase(it);
      ++files;
    }
    ++commits_;
    committed_files_ += files;
    committed_generation_ = std::max(committed_generation_, generation);
    done_cv_.SignalAll();
  }
}

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

absl::Status SpoolIndex::MakeRoomLocked(uint64_t sequence, size_t bytes) {
  if (bytes > max_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a batch of ", bytes, " bytes does not fit in the spool (", max_bytes_, " bytes)"));
  }
  auto existing = files_.find(sequence);
  if (existing != files_.end()) {
    bytes_ -= existing->second.bytes;
    points_ -= existing->second.points;
    files_.erase(existing);
  }
  EvictLocked(bytes, sequence);
  return absl::OkStatus();
}

absl::Status SpoolIndex::Write(SpoolFileHeader header, uint64_t sequence,
                               const std::vector<SpooledRequest>& requests, Owner owner) {
  return WriteFile(std::move(header), sequence, requests, owner, /*grouped=*/false);
}

absl::Status SpoolIndex::WriteGrouped(SpoolFileHeader header, uint64_t sequence,
                                      const std::vector<SpooledRequest>& requests, Owner owner) {
  return WriteFile(std::move(header), sequence, requests, owner, /*grouped=*/true);
}

absl::Status SpoolIndex::WriteFile(SpoolFileHeader header, uint64_t sequence,
                                   const std::vector<SpooledRequest>& requests, Owner owner,
                                   bool grouped) {
  const uint64_t key = header.key;
  const int64_t last_timestamp_ms = header.last_timestamp_ms;
  const std::string display_url = header.display_url;
  const std::string contents = EncodeSpoolFile(std::move(header), requests);
  uint64_t points = 0;
  for (const SpooledRequest& r : requests) points += r.points;
  const std::string path = Path(key, sequence);
  MutexLock lock(&mu_);
  if (absl::Status room = MakeRoomLocked(sequence, contents.size()); !room.ok()) return room;
  absl::Status status;
  if (grouped) {
    // No sync here: the committer syncs the group. Under the mutex, so that the committer never
    // takes a file not yet written whole.
    status = WritePendingSpoolFile(path, contents);
  } else {
    if (auto pending = pending_.find(sequence); pending != pending_.end()) {
      // Replaced: a pending file is not committed, a renamed one is overwritten.
      if (pending->second.renamed) {
        pending_.erase(pending);
      } else {
        pending->second.cancelled = true;
      }
    }
    status = WriteSpoolFile(path, contents);
  }
  if (!status.ok()) {
    LogError("cannot write a spool file",
             {{"target", display_url}, {"error", std::string(status.message())}});
    return status;
  }
  files_[sequence] = Entry{key, contents.size(), points, owner, last_timestamp_ms};
  bytes_ += contents.size();
  points_ += points;
  if (grouped) {
    pending_[sequence] = Pending{key, owner, ++written_generation_, false, false};
    work_cv_.Signal();
  }
  return absl::OkStatus();
}

bool SpoolIndex::Committed(uint64_t sequence) const {
  MutexLock lock(&mu_);
  return pending_.find(sequence) == pending_.end();
}

bool SpoolIndex::HasUncommitted(Owner owner) const {
  MutexLock lock(&mu_);
  for (const auto& [sequence, p] : pending_) {
    if (p.cancelled) continue;
    // Indexed as the owner's, or taken by its writer (being delivered).
    auto it = files_.find(sequence);
    if (it != files_.end() ? it->second.owner == owner : p.writer == owner) return true;
  }
  return false;
}

bool SpoolIndex::AwaitCommitted(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  const uint64_t generation = written_generation_;
  while (committed_generation_ < generation) {
    bool only_cancelled = true;
    for (const auto& [sequence, p] : pending_) {
      if (p.generation <= generation && !p.cancelled) only_cancelled = false;
    }
    if (only_cancelled) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    done_cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(left));
  }
  return true;
}

void SpoolIndex::Unlink(uint64_t key, uint64_t sequence) {
  MutexLock lock(&mu_);
  RemoveFileLocked(key, sequence);
}

void SpoolIndex::RemoveFileLocked(uint64_t key, uint64_t sequence) {
  auto pending = pending_.find(sequence);
  if (pending == pending_.end() || pending->second.renamed) {
    unlink(Path(key, sequence).c_str());
    if (pending != pending_.end()) pending->second.cancelled = true;
    return;
  }
  pending->second.cancelled = true;  // the committer removes its pending file
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
    RemoveFileLocked(entry.key, it->first);
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
  RemoveFileLocked(it->second.key, sequence);
  bytes_ -= it->second.bytes;
  points_ -= it->second.points;
  files_.erase(it);
  return true;
}

std::pair<uint64_t, uint64_t> SpoolIndex::DiscardOwnedLocked(Owner owner) {
  uint64_t files = 0;
  uint64_t points = 0;
  for (auto it = files_.begin(); it != files_.end();) {
    const Entry& entry = it->second;
    if (entry.owner != owner) {
      ++it;
      continue;
    }
    RemoveFileLocked(entry.key, it->first);
    bytes_ -= entry.bytes;
    points_ -= entry.points;
    ++files;
    points += entry.points;
    it = files_.erase(it);
  }
  return {files, points};
}

std::pair<uint64_t, uint64_t> SpoolIndex::DiscardUnowned() {
  MutexLock lock(&mu_);
  const std::pair<uint64_t, uint64_t> discarded = DiscardOwnedLocked(kNoOwner);
  dropped_unowned_ += discarded.second;
  return discarded;
}

std::pair<uint64_t, uint64_t> SpoolIndex::DiscardOwned(Owner owner) {
  MutexLock lock(&mu_);
  const std::pair<uint64_t, uint64_t> discarded = DiscardOwnedLocked(owner);
  evicted_.erase(owner);
  return discarded;
}

bool SpoolIndex::Release(uint64_t sequence, Owner owner, Owner to) {
  MutexLock lock(&mu_);
  auto it = files_.find(sequence);
  if (it == files_.end() || it->second.owner != owner) return false;
  it->second.owner = to;
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
  out.commits = commits_;
  out.committed_files = committed_files_;
  return out;
}

}  // namespace rwexport
