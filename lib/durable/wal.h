// A write-ahead log: a directory of numbered segment files holding length-prefixed,
// CRC-checked records, with group commit (one write and one fdatasync for every record queued
// while the previous group was being written). It is the durability layer that ingest writes
// accepted batches to before acknowledging them; it knows nothing of what a payload means.
//
// On disk, in `WalOptions::dir`:
//   <20-digit segment number>.wal   e.g. 00000000000000000003.wal
//     header (32 bytes, little-endian): magic "RWEXWAL\0", u32 version, u64 segment
//       number, u64 number of the segment before it in the log (0 for none), u32 checksum of
//       the 28 bytes before it;
//     records: [u32 payload length][u32 checksum of the payload][payload]. A length of 0
//       or above kMaxWalRecordBytes is corrupt (so zero-filled or garbage tails never parse as
//       records, and a corrupt length never makes a reader allocate gigabytes).
//     The checksum is the version's: CRC-32C (lib/durable/crc32c.h, SSE4.2) in version 2, which
//     new segments are written in; zlib's CRC-32 in version 1 (segments of earlier builds,
//     still read, so a log written before the upgrade recovers). A segment of any other version
//     is not readable: recovery treats it as a damaged header (its message names the version).
//   lost/                           segments set aside by recovery (see below), never read.
//
// Recovery (Wal::Open), never an error because of what it finds in segments, so a server does
// not crash-loop on a damaged log; everything it does is counted in WalRecoveryReport:
//   - The segments are read in number order; each must name the one before it (the header's
//     previous-segment field). The first segment may follow any number (TruncateBefore deleted
//     the ones before it), so a missing FIRST or LAST segment cannot be told apart from a
//     truncated log.
//   - A corrupt or truncated record cuts its segment at the last good record (ftruncate), and
//     the bytes cut are counted. In the last segment that is the torn tail of an interrupted
//     write. In an earlier segment the rest of that segment is cut the same way (the records
//     after a corrupt one cannot be framed reliably) and the LATER SEGMENTS ARE STILL READ:
//     they hold records acknowledged after the damaged ones.
//   - A gap (a segment whose previous-segment field does not name the segment read before it,
//     or a non-last segment whose header is unreadable): the log is read up to the gap, and the
//     segment after it and every later one are moved to `<dir>/lost/` (renamed, not deleted),
//     counted, and described in the report's messages. Replaying records past a hole would
//     hand aggregation a log with records missing in the middle.
//   - A last segment whose header is incomplete or unreadable and that holds no more bytes
//     than a header is an interrupted segment creation: it is deleted and counted as cut. One
//     with more bytes is moved to lost/.
//   - New appends go to a fresh segment numbered above every segment seen (lost ones
//     included), so positions only grow across restarts.
//
// Writing: Append queues a record; one writer thread writes every queued record with one
// write and, per FsyncPolicy, one fdatasync per group, then calls the records' `done`
// callbacks. `done` is called with OK only once the record is durable. After a write or fsync
// error the segment is truncated back to its last durable end, every record not yet durable is
// failed with the error (RESOURCE_EXHAUSTED for ENOSPC/EDQUOT/EFBIG, UNAVAILABLE otherwise,
// naming the file and the errno text), and the next Append tries again. If even that
// truncation fails, the segment is closed and the next group starts a new one.
//
// A segment is closed (fdatasync'ed) and a new one created at the first record boundary at or
// past `segment_bytes` (a group is split there); the directory is fsync'ed whenever a segment is
// created, moved or deleted.
#ifndef RWEXPORT_LIB_DURABLE_WAL_H_
#define RWEXPORT_LIB_DURABLE_WAL_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/mutex.h"

namespace rwexport {

// The largest payload a record may hold: 64 MiB (the largest batch ingest accepts) + slack.
inline constexpr uint32_t kMaxWalRecordBytes = (64u << 20) + (64u << 10);
// Bytes of a segment header and of a record's frame (length + crc).
inline constexpr uint64_t kWalHeaderBytes = 32;
inline constexpr uint64_t kWalFrameBytes = 8;

// Where a record starts: its segment's number and the byte offset of its frame in that file.
// Ordered as the log is.
struct WalPosition {
  uint64_t segment = 0;
  uint64_t offset = 0;

  friend bool operator==(const WalPosition& a, const WalPosition& b) {
    return a.segment == b.segment && a.offset == b.offset;
  }
  friend bool operator!=(const WalPosition& a, const WalPosition& b) { return !(a == b); }
  friend bool operator<(const WalPosition& a, const WalPosition& b) {
    return std::tie(a.segment, a.offset) < std::tie(b.segment, b.offset);
  }
  friend bool operator<=(const WalPosition& a, const WalPosition& b) { return !(b < a); }
  friend bool operator>(const WalPosition& a, const WalPosition& b) { return b < a; }
  friend bool operator>=(const WalPosition& a, const WalPosition& b) { return !(a < b); }
};
std::ostream& operator<<(std::ostream& out, const WalPosition& position);
std::string WalPositionToString(const WalPosition& position);  // "3:1024"

// When the writer fsyncs.
//   always:     every group is fdatasync'ed before its records' `done` calls (concurrent
//               appends still share one fsync).
//   interval:D: at most one fdatasync every D; `done` waits for the fsync that covers its
//               record, so latency rises (up to D) while fsyncs fall.
struct FsyncPolicy {
  enum class Kind { kAlways, kInterval };
  Kind kind = Kind::kAlways;
  absl::Duration interval = absl::ZeroDuration();  // kInterval only; > 0
};
// Parses "always" or "interval:<absl duration>" (e.g. "interval:100ms"); InvalidArgument
// naming the bad value otherwise (the duration must be positive).
absl::StatusOr<FsyncPolicy> ParseFsyncPolicy(absl::string_view text);
std::string FsyncPolicyToString(const FsyncPolicy& policy);

struct WalOptions {
  std::string dir;  // created if missing (its parent must exist)
  uint64_t segment_bytes = 64u << 20;
  FsyncPolicy fsync;
  // After each fsync, drop the segment's durable whole pages from the page cache
  // (posix_fadvise DONTNEED): the log is written once and read only at a restart, and keeping
  // it cached makes the page cache grow by every byte logged, each new page allocated (on a VM
  // whose host reclaims free guest memory, faulted in from the host). With it the writer
  // reuses the pages it just freed. A restart then reads the log from disk. false keeps the
  // pages (for comparison: wal_bench --keep_page_cache).
  bool drop_written_pages = true;
};

// What Wal::Open found and did.
struct WalRecoveryReport {
  struct Cut {
    uint64_t segment = 0;
    uint64_t offset = 0;  // where the segment now ends
    uint64_t bytes = 0;   // bytes removed
    bool last_segment = false;
    std::string reason;  // e.g. "crc mismatch in the record at offset 4096"
  };
  int64_t segments = 0;       // segments kept
  int64_t records = 0;        // valid records in them
  int64_t payload_bytes = 0;  // their payload bytes
  int64_t bytes_cut = 0;      // sum of cuts[].bytes (deleted interrupted segments included)
  std::vector<Cut> cuts;
  int64_t lost_segments = 0;  // moved to <dir>/lost/
  int64_t lost_bytes = 0;
  std::vector<std::string> lost_files;  // their new paths
  WalPosition first;                    // the first record kept ({0,0} when none)
  WalPosition end;                      // just past the last record kept ({0,0} when none)
  uint64_t next_segment = 0;            // the segment new appends go to
  // One line each, for the log: every cut, every segment moved and why.
  std::vector<std::string> messages;

  bool clean() const { return bytes_cut == 0 && lost_segments == 0; }
  // "wal recovered: 3 segments, 1200 records (19.2 MB); cut 37 bytes; 0 segments lost".
  std::string Summary() const;
};

// For self-metrics.
struct WalFigures {
  int64_t records_appended = 0;  // acknowledged with OK
  int64_t bytes_appended = 0;    // their payload bytes
  int64_t records_failed = 0;    // `done` called with an error
  int64_t groups = 0;            // groups written (one write each; split at segment ends)
  int64_t fsyncs = 0;            // fdatasync calls on segments (not counting directories)
  int64_t largest_group = 0;     // records
  int64_t write_errors = 0;      // failed writes/fsyncs/segment creations
  std::string last_error;        // empty when none
  int64_t segments = 0;          // segment files in the log
  int64_t bytes_on_disk = 0;     // durable bytes in them (headers included)
  int64_t queued_records = 0;    // appended, `done` not yet called
  WalPosition durable_end;       // everything before it is durable ({0,0} before any write)
};

// Thread-safe: Append, Replay, TruncateBefore and Figures may be called from any thread,
// concurrently. `done` callbacks run on the writer thread, one at a time, in log order; they
// must not block for long (they hold up the next group) and must not destroy the Wal; they may
// call Append (the record joins a later group) and Figures. Each
// call gets a Status of its own: a callback that keeps it should move it (under TSan, a Status
// copied across threads looks like a race, as Debian's Abseil is not instrumented).
class Wal {
 public:
  using DoneCallback = std::function<void(absl::Status status, WalPosition position)>;
  using ReplayCallback = std::function<absl::Status(WalPosition position, absl::string_view)>;

  // Recovers the log in `options.dir` (see the file comment) and starts the writer. Fails only
  // on bad options or when the directory cannot be read or changed (permissions, I/O errors).
  // `report` may be null.
  static absl::StatusOr<std::unique_ptr<Wal>> Open(const WalOptions& options,
                                                   WalRecoveryReport* report);
  // Open and replay in one pass over the log (a restart reads it once, not twice): `replay`
  // gets exactly the records that Replay(from, ...) would return after Open, in order, while
  // recovery validates them. An error of `replay` fails Open with that error.
  static absl::StatusOr<std::unique_ptr<Wal>> Open(const WalOptions& options,
                                                   WalRecoveryReport* report, WalPosition from,
                                                   const ReplayCallback& replay);

  // Writes every queued record, fsyncs and calls every pending `done`, then stops the writer.
  // No other call may run concurrently with or after it.
  ~Wal();

  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Queues `payload` as one record. `done(status, position)` is called exactly once, on the
  // writer thread: OK with the record's position once it is durable, or the error (with
  // position {0,0}); InvalidArgument for an empty payload or one over kMaxWalRecordBytes.
  void Append(std::string payload, DoneCallback done);
  // The same for the record `head` followed by `body`, written as one record without joining
  // them (the payload read back is head + body; `head` may be empty). `body` must stay valid
  // until the record has been written: `body_owner` keeps it alive, and the WAL holds it until
  // then (at the latest until `done` is called). For a batch logged from the request that
  // carried it, without copying it.
  void Append(std::string head, absl::string_view body, std::shared_ptr<const void> body_owner,
              DoneCallback done);

  // Calls `callback` with every durable record at or after `from`, in log order, reading the
  // segments as a stream (memory: a read buffer plus the largest record). `from` must be {0,0},
  // a segment's start ({n, 0}) or a position handed out by Append or Replay. Stops at and
  // returns the first error of `callback`; DataLoss if a record that Open validated no longer
  // reads back (the disk changed under the log).
  absl::Status Replay(WalPosition from, const ReplayCallback& callback) const;

  // Deletes every segment that lies wholly before `position` (number < position.segment),
  // never the one being written; for checkpoints. Returns how many were deleted.
  absl::StatusOr<int> TruncateBefore(WalPosition position);

  WalFigures Figures() const;

  const std::string& dir() const { return options_.dir; }
  std::string SegmentPath(uint64_t segment) const;

 private:
  struct Pending {
    std::string head;
    absl::string_view body;
    std::shared_ptr<const void> body_owner;
    DoneCallback done;
    absl::Status error;  // set for records refused before queueing

    size_t size() const { return head.size() + body.size(); }
  };
  struct Written {
    DoneCallback done;
    WalPosition position;
    int64_t payload_bytes = 0;
  };

  Wal(const WalOptions& options, std::map<uint64_t, uint64_t> segments, uint64_t next_segment);
  static absl::StatusOr<std::unique_ptr<Wal>> Open(const WalOptions& options,
                                                   WalRecoveryReport* report, WalPosition from,
                                                   const ReplayCallback* replay);

  void WriterLoop();
  // Writer thread only: writes one group taken from the queue (split where a segment fills).
  void WriteGroup(std::deque<Pending>* group);
  // Writer thread only: writes records [begin, end) to the open segment with one pwritev; on
  // error fails them and every unsynced record, and returns the error.
  absl::Status WriteRecords(std::vector<Pending>* records, size_t begin, size_t end);
  // Writer thread only: fdatasyncs the open segment and completes `unsynced_`.
  void SyncAndComplete();
  // Writer thread only: with drop_written_pages, drops the open segment's durable whole pages
  // not dropped yet from the page cache (`to_end`: the partial last page too).
  void DropWrittenPages(bool to_end);
  // Writer thread only: creates segment `next_segment_`; on error returns it.
  absl::Status CreateSegment();
  // Writer thread only: closes the open segment after fsyncing what is unsynced.
  void CloseSegment();
  // Writer thread only: after an error, truncate back to the durable end and fail every record
  // not yet durable (and the ones in `group`).
  void FailUnsynced(const absl::Status& status, std::vector<Written>* group);
  void RecordError(const absl::Status& status);

  const WalOptions options_;

  mutable Mutex mu_;
  CondVar wake_;  // the writer waits on it for work or stop
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Segment number -> durable size (bytes a reader may read), for every segment in the log.
  std::map<uint64_t, uint64_t> segments_ ABSL_GUARDED_BY(mu_);
  uint64_t open_segment_ ABSL_GUARDED_BY(mu_) = 0;  // 0 when none is open
  WalFigures figures_ ABSL_GUARDED_BY(mu_);

  // Owned by the writer thread (set before it starts).
  int fd_ = -1;
  uint64_t segment_ = 0;           // the open segment's number
  uint64_t prev_segment_ = 0;      // the segment before the next one created
  uint64_t next_segment_ = 0;      // the number the next segment gets
  uint64_t size_ = 0;              // bytes written to the open segment
  uint64_t durable_size_ = 0;      // bytes of it fdatasync'ed
  uint64_t dropped_size_ = 0;      // bytes of it dropped from the page cache
  std::vector<Written> unsynced_;  // written, not yet fdatasync'ed
  bool synced_once_ = false;
  std::chrono::steady_clock::time_point last_sync_;
  std::string buffer_;  // the group being written

  std::thread writer_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_WAL_H_
