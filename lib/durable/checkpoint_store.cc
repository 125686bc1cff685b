#include "lib/durable/checkpoint_store.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/durable/file_util.h"
#include "lib/durable/record_file.h"

namespace rwexport {

absl::StatusOr<std::unique_ptr<CheckpointStore>> CheckpointStore::Open(const DataDir& dir) {
  absl::StatusOr<std::string> checkpoints = dir.Subdirectory("checkpoints");
  if (!checkpoints.ok()) return checkpoints.status();
  absl::StatusOr<std::string> corrupt = dir.Subdirectory("corrupt");
  if (!corrupt.ok()) return corrupt.status();
  return std::unique_ptr<CheckpointStore>(new CheckpointStore(*checkpoints, *corrupt));
}

std::string CheckpointStore::PathOf(const std::string& export_id) const {
  return absl::StrCat(dir_, "/", export_id, kRecordSuffix);
}

absl::Status CheckpointStore::Write(const durable::v1::AggregationCheckpoint& checkpoint) {
  if (!IsPlainRecordId(checkpoint.export_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint: not a plain export id: \"", checkpoint.export_id(), "\""));
  }
  return WriteFileAtomically(PathOf(checkpoint.export_id()), checkpoint.SerializeAsString());
}

void CheckpointStore::MoveAside(const std::string& name, const std::string& reason) {
  MoveRecordAside(dir_, name, corrupt_dir_, reason);
  MutexLock lock(&mu_);
  ++corrupt_files_;
}

absl::StatusOr<LoadedCheckpoints> CheckpointStore::Load() {
  absl::StatusOr<std::vector<std::string>> names = ListFiles(dir_);
  if (!names.ok()) return names.status();
  LoadedCheckpoints loaded;
  for (const std::string& name : *names) {
    if (IsRecordTempFile(name)) {
      RemoveFileDurably(absl::StrCat(dir_, "/", name)).IgnoreError();
      ++loaded.temp_removed;
      continue;
    }
    durable::v1::AggregationCheckpoint checkpoint;
    const std::string id = RecordIdOfFileName(name);
    absl::StatusOr<std::string> problem =
        id.empty() ? std::string("not named <export id>.binpb")
                   : ParseRecordFile(absl::StrCat(dir_, "/", name), &checkpoint);
    if (!problem.ok()) return problem.status();
    if (problem->empty() && checkpoint.export_id() != id) {
      *problem = "its export id is not its name";
    }
    if (!problem->empty()) {
      MoveAside(name, *problem);
      ++loaded.corrupt;
      continue;
    }
    loaded.checkpoints.emplace(id, std::move(checkpoint));
  }
  return loaded;
}

void CheckpointStore::SetAside(const std::string& export_id, const std::string& reason) {
  if (!IsPlainRecordId(export_id)) return;  // never written
  MoveAside(absl::StrCat(export_id, kRecordSuffix), reason);
}

absl::Status CheckpointStore::Remove(const std::string& export_id) {
  if (!IsPlainRecordId(export_id)) return absl::OkStatus();  // never written
  return RemoveFileDurably(PathOf(export_id));
}

int64_t CheckpointStore::corrupt_files() const {
  MutexLock lock(&mu_);
  return corrupt_files_;
}

WalPosition CheckpointPosition(const durable::v1::AggregationCheckpoint& checkpoint) {
  return WalPosition{checkpoint.covers().segment(), checkpoint.covers().offset()};
}

void SetCheckpointPosition(const WalPosition& position,
                           durable::v1::AggregationCheckpoint* checkpoint) {
  checkpoint->mutable_covers()->set_segment(position.segment);
  checkpoint->mutable_covers()->set_offset(position.offset);
}

}  // namespace rwexport
