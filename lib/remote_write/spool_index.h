// The sender's spool as a whole: which spool files exist, which live target owns each, and
// their total size, kept within a bound by deleting the oldest files. The file format is
// spool.h's; the policy of when to spool is the sender's.
//
// Group commit (durable queues, Open's group_commit): WriteGrouped writes a file under its
// pending name without syncing it and returns; a committer thread takes every file written
// meanwhile as one group, syncs them with one syncfs(2) of the directory's file system, renames
// each to its final name and syncs the directory once: two syncs per group rather than two per
// file. A file is "committed" (durable, under its final name) only once its group's directory
// sync has returned; a crash before that leaves only pending files, deleted by the next scan,
// and a file is never visible under its final name before its data is synced, so a file found
// after a crash is whole, and every file written before it is there too. A failed sync is
// logged and tried again (the group stays pending, not durable, meanwhile). syncfs flushes the
// whole file system of the directory: give the data dir a file system of its own when other
// programs write much to it.
//
// Owns the spool directory's lock (flock on "<dir>/.lock") for its lifetime: one index per
// directory at a time, across processes. Thread-safe; lock order: a target queue's mutex, then
// the index's.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_SPOOL_INDEX_H_
#define RWEXPORT_LIB_REMOTE_WRITE_SPOOL_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/common/mutex.h"
#include "lib/model/series.h"
#include "lib/remote_write/spool.h"

namespace rwexport {

// The spool as a whole.
struct SpoolFigures {
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t points = 0;
  // Points deleted to bound the spool from files no target had taken over (those of a live
  // target count in its figures as "spool_full").
  uint64_t points_dropped_unowned = 0;
  // Group commit: groups committed (each one syncfs and one directory fsync), and the files
  // they made durable.
  uint64_t commits = 0;
  uint64_t committed_files = 0;
};

class SpoolIndex {
 public:
  // Who holds a spool file: a target id, or kNoOwner.
  using Owner = uint64_t;
  static constexpr Owner kNoOwner = 0;

  // Creates `dir` if missing (one level), locks it and scans it, deleting the oldest files
  // beyond `max_bytes`. INVALID_ARGUMENT when it cannot be used, FAILED_PRECONDITION when
  // another index holds it. `group_commit`: starts the committer (WriteGrouped); `commit_gate`
  // (tests only, may be empty) is called by it before each group's sync, without locks.
  static absl::StatusOr<std::unique_ptr<SpoolIndex>> Open(
      const std::string& dir, uint64_t max_bytes, bool group_commit = false,
      std::function<void()> commit_gate = nullptr);
  // Commits what is pending (one last group), then releases the directory's lock; the files
  // stay.
  ~SpoolIndex();
  SpoolIndex(const SpoolIndex&) = delete;
  SpoolIndex& operator=(const SpoolIndex&) = delete;

  const std::string& dir() const { return dir_; }
  // The highest sequence number found by the scan; 0 when the directory held none.
  uint64_t last_sequence() const { return last_sequence_; }
  // The path of the file of `sequence` for the target with spool key `key`.
  std::string Path(uint64_t key, uint64_t sequence) const;

  // Gives `owner` every file of spool key `key` that no live target holds, oldest first.
  struct Claimed {
    uint64_t sequence = 0;
    uint64_t points = 0;
    int64_t last_timestamp_ms = 0;
  };
  std::vector<Claimed> Claim(uint64_t key, Owner owner) ABSL_LOCKS_EXCLUDED(mu_);

  // Writes the file of `sequence` (replacing one with the same sequence) for `owner`, deleting
  // the oldest other files to stay within the bound. `header` gives key, display URL and
  // timestamps. RESOURCE_EXHAUSTED when the file alone is larger than the bound.
  absl::Status Write(SpoolFileHeader header, uint64_t sequence,
                     const std::vector<SpooledRequest>& requests, Owner owner)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Group commit: writes the file of `sequence` for `owner` under its pending name and returns
  // at once; it becomes durable with its group (Committed). Same bound and errors as Write.
  absl::Status WriteGrouped(SpoolFileHeader header, uint64_t sequence,
                            const std::vector<SpooledRequest>& requests, Owner owner)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the file of `sequence` is not (or no longer) waiting for its group commit.
  bool Committed(uint64_t sequence) const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether a file of `owner` waits for its group commit.
  bool HasUncommitted(Owner owner) const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `timeout` until every file written (WriteGrouped) before the call is committed
  // (or deleted); false on timeout.
  bool AwaitCommitted(absl::Duration timeout) const ABSL_LOCKS_EXCLUDED(mu_);
  // Deletes the file of `sequence` (taken by its owner, Take), or, while it waits for its group
  // commit, has it deleted instead of committed.
  void Unlink(uint64_t key, uint64_t sequence) ABSL_LOCKS_EXCLUDED(mu_);

  // Cuts `batch` into requests (request_plan.h's caps), encodes it and writes it as above.
  absl::Status WriteBatch(SpoolFileHeader header, uint64_t sequence, PointBatch batch,
                          size_t max_points, size_t max_bytes, Owner owner)
      ABSL_LOCKS_EXCLUDED(mu_);

  // When `owner` holds the file of `sequence`: removes it from the index (the file stays on
  // disk for the caller to read, then delete with Unlink) and returns true.
  bool Take(uint64_t sequence, Owner owner) ABSL_LOCKS_EXCLUDED(mu_);

  // When `owner` holds the file of `sequence`: removes it from the index and deletes it;
  // returns true.
  bool Discard(uint64_t sequence, Owner owner) ABSL_LOCKS_EXCLUDED(mu_);

  // When `owner` holds the file of `sequence`: hands it over to `to` (no one: a target added
  // later resumes it) and returns true.
  bool Release(uint64_t sequence, Owner owner, Owner to = kNoOwner) ABSL_LOCKS_EXCLUDED(mu_);

  // Deletes every file `owner` holds (a removed target's files, kept until its end was
  // recorded: Sender::DiscardQueue). Returns how many files and points.
  std::pair<uint64_t, uint64_t> DiscardOwned(Owner owner) ABSL_LOCKS_EXCLUDED(mu_);

  // Deletes every file no live target holds; their points count in points_dropped_unowned.
  // Returns how many files and points.
  std::pair<uint64_t, uint64_t> DiscardUnowned() ABSL_LOCKS_EXCLUDED(mu_);

  // The sequences of `owner`'s files deleted to bound the spool since the last call.
  std::vector<uint64_t> TakeEvicted(Owner owner) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether files of `owner` were deleted since the last TakeEvicted.
  bool HasEvicted(Owner owner) const ABSL_LOCKS_EXCLUDED(mu_);

  SpoolFigures Figures() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    uint64_t key = 0;
    uint64_t bytes = 0;
    uint64_t points = 0;
    Owner owner = kNoOwner;
    int64_t last_timestamp_ms = 0;
  };

  // A file written by WriteGrouped, not committed yet.
  struct Pending {
    uint64_t key = 0;
    Owner writer = kNoOwner;
    // WriteGrouped's count when it was written (AwaitCommitted).
    uint64_t generation = 0;
    // Renamed to its final name, the directory not synced yet.
    bool renamed = false;
    // Deleted meanwhile: the committer removes its pending file instead of renaming it.
    bool cancelled = false;
  };

  SpoolIndex(std::string dir, uint64_t max_bytes, int lock_fd,
             const std::vector<SpoolFileInfo>& files, bool group_commit,
             std::function<void()> commit_gate);
  // Deletes the oldest files but `keep_sequence` until `incoming` more bytes fit.
  void EvictLocked(uint64_t incoming, uint64_t keep_sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes the file of `sequence` now, or once its commit comes (see Pending).
  // Write (synced now) or WriteGrouped (pending, synced by the committer).
  absl::Status WriteFile(SpoolFileHeader header, uint64_t sequence,
                         const std::vector<SpooledRequest>& requests, Owner owner, bool grouped)
      ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveFileLocked(uint64_t key, uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Deletes `owner`'s files (kNoOwner: the unowned ones); (files, points) deleted.
  std::pair<uint64_t, uint64_t> DiscardOwnedLocked(Owner owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Checks the bound and makes room for `contents` of `sequence` (replacing a file with the same
  // sequence).
  absl::Status MakeRoomLocked(uint64_t sequence, size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The committer thread.
  void CommitLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string dir_;
  const uint64_t max_bytes_;
  const int lock_fd_;
  uint64_t last_sequence_ = 0;

  mutable Mutex mu_;
  std::map<uint64_t, Entry> files_ ABSL_GUARDED_BY(mu_);  // by sequence
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t points_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_unowned_ ABSL_GUARDED_BY(mu_) = 0;
  // Sequences of files deleted by EvictLocked, by owner, for TakeEvicted.
  absl::flat_hash_map<Owner, std::vector<uint64_t>> evicted_ ABSL_GUARDED_BY(mu_);

  // Group commit.
  const std::function<void()> commit_gate_;
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);  // by sequence
  uint64_t written_generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t committed_generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t committed_files_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  CondVar work_cv_;          // pending files, or stopping
  mutable CondVar done_cv_;  // a group committed
  std::thread committer_;    // joinable with group commit
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_SPOOL_INDEX_H_
