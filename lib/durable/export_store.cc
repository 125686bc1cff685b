#include "lib/durable/export_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/crash_point.h"
#include "lib/common/log.h"
#include "lib/durable/file_util.h"
#include "lib/durable/record_file.h"

namespace rwexport {

ExportStore::ExportStore(std::string exports_dir, std::string stopped_dir, std::string corrupt_dir,
                         ExportStoreOptions options)
    : exports_dir_(std::move(exports_dir)),
      stopped_dir_(std::move(stopped_dir)),
      corrupt_dir_(std::move(corrupt_dir)),
      options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ExportStore>> ExportStore::Open(const DataDir& dir,
                                                               ExportStoreOptions options) {
  absl::StatusOr<std::string> exports = dir.Subdirectory("exports");
  if (!exports.ok()) return exports.status();
  absl::StatusOr<std::string> stopped = dir.Subdirectory("stopped");
  if (!stopped.ok()) return stopped.status();
  absl::StatusOr<std::string> corrupt = dir.Subdirectory("corrupt");
  if (!corrupt.ok()) return corrupt.status();
  return std::unique_ptr<ExportStore>(
      new ExportStore(*exports, *stopped, *corrupt, std::move(options)));
}

std::string ExportStore::RunningPath(const std::string& export_id) const {
  return absl::StrCat(exports_dir_, "/", export_id, kRecordSuffix);
}

std::string ExportStore::StoppedPath(const std::string& export_id) const {
  return absl::StrCat(stopped_dir_, "/", export_id, kRecordSuffix);
}

void ExportStore::MoveAside(const std::string& dir, const std::string& name,
                            const std::string& reason) {
  MoveRecordAside(dir, name, corrupt_dir_, reason);
  MutexLock lock(&mu_);
  ++corrupt_files_;
}

absl::StatusOr<LoadedExports> ExportStore::Load() {
  LoadedExports loaded;
  absl::flat_hash_set<std::string> stopped_ids;
  if (absl::Status s = LoadStopped(&loaded, &stopped_ids); !s.ok()) return s;
  if (absl::Status s = LoadRunning(&loaded); !s.ok()) return s;
  // A crash between RecordStopped's two steps leaves both records: the export has stopped.
  auto finished = [&](const durable::v1::ExportRecord& r) {
    if (!stopped_ids.contains(r.export_id())) return false;
    RemoveFileDurably(RunningPath(r.export_id())).IgnoreError();
    return true;
  };
  loaded.running.erase(std::remove_if(loaded.running.begin(), loaded.running.end(), finished),
                       loaded.running.end());
  std::sort(loaded.running.begin(), loaded.running.end(),
            [](const durable::v1::ExportRecord& a, const durable::v1::ExportRecord& b) {
              return a.sequence() < b.sequence();
            });
  return loaded;
}

absl::Status ExportStore::LoadRunning(LoadedExports* loaded) {
  absl::StatusOr<std::vector<std::string>> names = ListFiles(exports_dir_);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (IsRecordTempFile(name)) {
      RemoveFileDurably(absl::StrCat(exports_dir_, "/", name)).IgnoreError();
      continue;
    }
    durable::v1::ExportRecord record;
    const std::string id = RecordIdOfFileName(name);
    absl::StatusOr<std::string> problem =
        id.empty() ? std::string("not named <export id>.binpb")
                   : ParseRecordFile(absl::StrCat(exports_dir_, "/", name), &record);
    if (!problem.ok()) return problem.status();
    if (problem->empty() && record.export_id() != id) *problem = "its export id is not its name";
    if (!problem->empty()) {
      MoveAside(exports_dir_, name, *problem);
      ++loaded->corrupt;
      continue;
    }
    loaded->max_sequence = std::max(loaded->max_sequence, record.sequence());
    loaded->running.push_back(std::move(record));
  }
  return absl::OkStatus();
}

absl::Status ExportStore::LoadStopped(LoadedExports* loaded,
                                      absl::flat_hash_set<std::string>* ids) {
  absl::StatusOr<std::vector<std::string>> names = ListFiles(stopped_dir_);
  if (!names.ok()) return names.status();
  const absl::Time oldest_kept = Now() - options_.stopped_retention;
  for (const std::string& name : *names) {
    const std::string path = absl::StrCat(stopped_dir_, "/", name);
    if (IsRecordTempFile(name)) {
      RemoveFileDurably(path).IgnoreError();
      continue;
    }
    durable::v1::StoppedExportRecord record;
    const std::string id = RecordIdOfFileName(name);
    absl::StatusOr<std::string> problem =
        id.empty() ? std::string("not named <export id>.binpb") : ParseRecordFile(path, &record);
    if (!problem.ok()) return problem.status();
    if (problem->empty() && record.export_id() != id) *problem = "its export id is not its name";
    if (!problem->empty()) {
      MoveAside(stopped_dir_, name, *problem);
      ++loaded->corrupt;
      continue;
    }
    loaded->max_sequence = std::max(loaded->max_sequence, record.sequence());
    ids->insert(id);
    if (absl::FromUnixMillis(record.stopped_unix_ms()) < oldest_kept) {
      RemoveFileDurably(path).IgnoreError();
      ++loaded->stopped_pruned;
      continue;
    }
    ++loaded->stopped_kept;
    MutexLock lock(&mu_);
    stopped_[id] = std::move(record);
  }
  return absl::OkStatus();
}

absl::Status ExportStore::PutRunning(const durable::v1::ExportRecord& record) {
  if (!IsPlainRecordId(record.export_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("export id \"", record.export_id(), "\" cannot name a file"));
  }
  return WriteFileAtomically(RunningPath(record.export_id()), record.SerializeAsString());
}

absl::Status ExportStore::RemoveRunning(const std::string& export_id) {
  if (!IsPlainRecordId(export_id)) return absl::OkStatus();  // never written
  return RemoveFileDurably(RunningPath(export_id));
}

void ExportStore::SetAsideRunning(const std::string& export_id, const std::string& reason) {
  if (!IsPlainRecordId(export_id)) return;
  MoveAside(exports_dir_, absl::StrCat(export_id, kRecordSuffix), reason);
}

absl::Status ExportStore::RecordStopped(durable::v1::StoppedExportRecord record) {
  if (!IsPlainRecordId(record.export_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("export id \"", record.export_id(), "\" cannot name a file"));
  }
  if (record.stopped_unix_ms() == 0) record.set_stopped_unix_ms(absl::ToUnixMillis(Now()));
  const std::string id = record.export_id();
  if (absl::Status written = WriteFileAtomically(StoppedPath(id), record.SerializeAsString());
      !written.ok()) {
    return written;
  }
  {
    MutexLock lock(&mu_);
    stopped_[id] = std::move(record);
  }
  CrashPoint("stop_export.after_stopped_record");  // both records on disk
  return RemoveFileDurably(RunningPath(id));
}

std::optional<durable::v1::StoppedExportRecord> ExportStore::FindStopped(
    const std::string& export_id) const {
  const absl::Time oldest_kept = Now() - options_.stopped_retention;
  MutexLock lock(&mu_);
  auto it = stopped_.find(export_id);
  if (it == stopped_.end() || absl::FromUnixMillis(it->second.stopped_unix_ms()) < oldest_kept) {
    return std::nullopt;
  }
  return it->second;
}

size_t ExportStore::PruneStopped() {
  const absl::Time oldest_kept = Now() - options_.stopped_retention;
  std::vector<std::string> expired;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, record] : stopped_) {
      if (absl::FromUnixMillis(record.stopped_unix_ms()) < oldest_kept) expired.push_back(id);
    }
    for (const std::string& id : expired) stopped_.erase(id);
  }
  for (const std::string& id : expired) {
    if (absl::Status removed = RemoveFileDurably(StoppedPath(id)); !removed.ok()) {
      LogWarning("data dir: cannot remove an expired stopped record",
                 {{"export_id", id}, {"error", std::string(removed.message())}});
    }
  }
  return expired.size();
}

uint64_t ExportStore::corrupt_files() const {
  MutexLock lock(&mu_);
  return corrupt_files_;
}

}  // namespace rwexport
