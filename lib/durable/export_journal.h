// The export journal: what rwexport_server writes to its write-ahead log (wal.h) in
// <data_dir>/wal, so that accepted samples survive a crash (README, "Crash safety").
//
// Records (the first byte is the type; strings are a varint length and the bytes):
//   batch   (1): export id, stream id, varint sequence, then the batch's bytes as received (a
//                serialized v1::SampleBatch; never re-serialized);
//   stopped (2): export id. Written when an export has stopped: its records are no longer
//                needed, and the log is truncated behind the oldest record still needed.
//   checkpoint (3): export id. Written when a checkpoint of the export's aggregation state is
//                taken (checkpoint_store.h, lib/durable/checkpoints.md): its position is the one
//                the checkpoint covers. Once the checkpoint is durable (CheckpointCovered), the
//                export's records before it are no longer needed.
// A stream id names one ingest stream (a StreamSamples call, an influx write); compact
// batches refer to series declared earlier on the same stream, so replay keeps one ingester
// per (export, stream). The sequence is the batch's number within its stream (for the
// acknowledged ingest RPC's dedup; StreamSamples numbers its batches from 0).
//
// Thread-safe.
#ifndef RWEXPORT_LIB_DURABLE_EXPORT_JOURNAL_H_
#define RWEXPORT_LIB_DURABLE_EXPORT_JOURNAL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/common/mutex.h"
#include "lib/durable/wal.h"

namespace rwexport {

// The stream of the InfluxDB write API's writes: one per export, numbered 1, 2, ... in the
// order the writes were dispatched to aggregation (checkpoints tell them apart by it).
inline constexpr absl::string_view kInfluxStreamId = "influx";

enum class JournalRecordType : uint8_t { kBatch = 1, kStopped = 2, kCheckpoint = 3 };

// One record, decoded; the views point into the record's bytes.
struct JournalRecord {
  JournalRecordType type = JournalRecordType::kBatch;
  absl::string_view export_id;
  absl::string_view stream_id;  // kBatch only
  uint64_t sequence = 0;        // kBatch only
  absl::string_view batch;      // kBatch only: the serialized v1::SampleBatch
  WalPosition position;         // where it is in the log (set by ExportJournal::Open's replay)
};

std::string EncodeBatchRecord(absl::string_view export_id, absl::string_view stream_id,
                              uint64_t sequence, absl::string_view batch);
// A batch record's bytes before its batch: EncodeBatchRecord(...) is this + batch.
std::string EncodeBatchRecordHead(absl::string_view export_id, absl::string_view stream_id,
                                  uint64_t sequence, size_t reserve_for_batch = 0);
std::string EncodeStoppedRecord(absl::string_view export_id);
std::string EncodeCheckpointRecord(absl::string_view export_id);
// DataLoss naming what is wrong for bytes that are not a record (a CRC-valid record of an
// unknown type or a malformed one: written by another version).
absl::StatusOr<JournalRecord> DecodeJournalRecord(absl::string_view bytes);

class ExportJournal {
 public:
  using DurableCallback = std::function<void(absl::Status status)>;
  // Called for every record found at open, in log order. An error fails Open.
  using ReplayCallback = std::function<absl::Status(const JournalRecord& record)>;

  // Opens (recovers) the log in `options.dir` and hands every record to `replay` (one read
  // of the log). Records that do not decode are skipped and counted (undecodable()).
  static absl::StatusOr<std::unique_ptr<ExportJournal>> Open(const WalOptions& options,
                                                             WalRecoveryReport* report,
                                                             const ReplayCallback& replay);

  // Appends one batch of an ingest stream; `on_durable` is called exactly once, on the WAL's
  // writer thread (keep it short), with OK once the record is durable or with the error
  // (RESOURCE_EXHAUSTED for a full disk, UNAVAILABLE for an I/O error, naming the cause).
  // The hook for acknowledged ingest: acknowledge `sequence` from `on_durable`.
  void Append(absl::string_view export_id, absl::string_view stream_id, uint64_t sequence,
              absl::string_view batch, DurableCallback on_durable);
  // The same without copying the batch: `batch_owner` keeps `batch` valid, and the log holds
  // it until the record is written (Wal::Append in two pieces). A null owner copies the batch.
  void Append(absl::string_view export_id, absl::string_view stream_id, uint64_t sequence,
              absl::string_view batch, std::shared_ptr<const void> batch_owner,
              DurableCallback on_durable);

  // Records that `export_id` has stopped (none of its records is needed any more), then
  // deletes the segments before the oldest record of a running export. Blocks until the
  // record is durable; returns its error, or the truncation's.
  absl::Status ExportStopped(const std::string& export_id);

  // Writes a checkpoint record for `export_id` and returns its position once it is durable
  // (or the error). Call it while the export's ingest is paused and after every batch applied
  // so far was handed to Append: every record of the export before the returned position is
  // then in the state being checkpointed (batches applied before it but appended after it
  // are told apart by their stream's sequence, lib/durable/checkpoints.md).
  absl::StatusOr<WalPosition> MarkCheckpoint(const std::string& export_id);
  // MarkCheckpoint without waiting (for Aggregator::Snapshot's cut): `on_durable` gets the
  // record's position once it is durable, or the error, on the WAL's writer thread.
  void AppendCheckpoint(const std::string& export_id,
                        std::function<void(absl::StatusOr<WalPosition>)> on_durable);

  // The checkpoint of `export_id` at `position` (a MarkCheckpoint position) is durable: the
  // export's records before it are no longer needed. Deletes the segments before the oldest
  // record still needed (of any export); returns the truncation's error.
  absl::Status CheckpointCovered(const std::string& export_id, WalPosition position);

  // Segments deleted by truncation so far; records skipped at open because they did not
  // decode.
  int64_t segments_truncated() const;
  int64_t undecodable() const { return undecodable_; }
  WalFigures Figures() const { return wal_->Figures(); }

 private:
  explicit ExportJournal(std::unique_ptr<Wal> wal) : wal_(std::move(wal)) {}
  // Deletes the segments before OldestNeeded().
  absl::Status Truncate();
  // Remembers the first position of `export_id`'s records (on their first durable record).
  void Track(const std::string& export_id, WalPosition position);
  // The oldest first position of a running export, or the log's durable end when none.
  WalPosition OldestNeeded() const;

  std::unique_ptr<Wal> wal_;
  int64_t undecodable_ = 0;
  mutable Mutex mu_;
  // The first record of every export whose records are still needed.
  absl::flat_hash_map<std::string, WalPosition> first_ ABSL_GUARDED_BY(mu_);
  // Exports whose stopped record is written (a late batch of theirs is not tracked).
  absl::flat_hash_set<std::string> stopped_ ABSL_GUARDED_BY(mu_);
  int64_t segments_truncated_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_EXPORT_JOURNAL_H_
