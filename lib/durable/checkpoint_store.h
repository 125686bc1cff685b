// Checkpoints of running exports' aggregation state in the data directory:
//   <data_dir>/checkpoints/<export id>.binpb   one AggregationCheckpoint per running export
//                                              (proto/rwexport/durable/v1/checkpoint.proto),
//                                              tagged with the log position it covers;
//   <data_dir>/corrupt/                        checkpoints that did not parse, moved aside.
// Directories 0700, files 0600; each write replaces the export's checkpoint atomically and
// durably (temp file, fsync, rename, directory fsync: file_util.h), so a crash leaves the old
// checkpoint or the new one. What the state holds and how recovery uses it:
// lib/durable/checkpoints.md.
//
// Thread-safe.
#ifndef RWEXPORT_LIB_DURABLE_CHECKPOINT_STORE_H_
#define RWEXPORT_LIB_DURABLE_CHECKPOINT_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/common/mutex.h"
#include "lib/durable/data_dir.h"
#include "lib/durable/wal.h"
#include "rwexport/durable/v1/checkpoint.pb.h"

namespace rwexport {

// What Load() found.
struct LoadedCheckpoints {
  // By export id.
  std::map<std::string, durable::v1::AggregationCheckpoint> checkpoints;
  // Files that did not parse, or whose content did not match their name: moved to corrupt/.
  size_t corrupt = 0;
  // Temp files of writes a crash interrupted: removed.
  size_t temp_removed = 0;
};

class CheckpointStore {
 public:
  // Creates checkpoints/ and corrupt/ in `dir` if missing. `dir` must outlive the store.
  static absl::StatusOr<std::unique_ptr<CheckpointStore>> Open(const DataDir& dir);

  // Replaces the export's checkpoint. INVALID_ARGUMENT for an export id that is not a plain
  // id; otherwise WriteFileAtomically's errors (RESOURCE_EXHAUSTED for a full disk,
  // UNAVAILABLE), naming the file; the previous checkpoint is then unchanged.
  absl::Status Write(const durable::v1::AggregationCheckpoint& checkpoint);

  // Reads every checkpoint. One that cannot be used is moved aside (one WARN line) and
  // counted, never an error; an error only when the directory cannot be read.
  absl::StatusOr<LoadedCheckpoints> Load();

  // Moves the export's checkpoint to corrupt/ (recovery found it unusable, e.g. it covers a
  // log position the log no longer has in the right form), with one WARN line giving `reason`.
  void SetAside(const std::string& export_id, const std::string& reason);

  // Removes the export's checkpoint (the export stopped). No checkpoint is not an error.
  absl::Status Remove(const std::string& export_id);

  // Checkpoints moved aside since Open.
  int64_t corrupt_files() const;

  const std::string& dir() const { return dir_; }

 private:
  CheckpointStore(std::string dir, std::string corrupt_dir)
      : dir_(std::move(dir)), corrupt_dir_(std::move(corrupt_dir)) {}
  std::string PathOf(const std::string& export_id) const;
  void MoveAside(const std::string& name, const std::string& reason);

  const std::string dir_;
  const std::string corrupt_dir_;
  mutable Mutex mu_;
  int64_t corrupt_files_ ABSL_GUARDED_BY(mu_) = 0;
};

// The position a checkpoint covers, and back.
WalPosition CheckpointPosition(const durable::v1::AggregationCheckpoint& checkpoint);
void SetCheckpointPosition(const WalPosition& position,
                           durable::v1::AggregationCheckpoint* checkpoint);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_CHECKPOINT_STORE_H_
