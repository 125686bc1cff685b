// The export registry's records in the data directory, so that exports survive a crash:
//   <data_dir>/exports/<id>.binpb   one ExportRecord per running export (its StartExportRequest,
//                                   credentials included);
//   <data_dir>/stopped/<id>.binpb   one StoppedExportRecord per export stopped within the
//                                   retention (the figures StopExport answered);
//   <data_dir>/corrupt/             files that did not parse, moved aside by Load().
// Directories are mode 0700, files 0600; every write is atomic and durable (file_util.h).
//
// What is NOT kept here: samples and figures; they are in the write-ahead log
// (export_journal.h), replayed into the recovered exports. The record holds the export's
// delivery mark (lib/export/delivery_mark.h), rewritten as it advances.
//
// Thread-safe.
#ifndef RWEXPORT_LIB_DURABLE_EXPORT_STORE_H_
#define RWEXPORT_LIB_DURABLE_EXPORT_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/common/mutex.h"
#include "lib/durable/data_dir.h"
#include "rwexport/durable/v1/export_record.pb.h"

namespace rwexport {

struct ExportStoreOptions {
  // How long a stopped export's figures are kept for a retried StopExport.
  absl::Duration stopped_retention = absl::Minutes(15);
  // The clock for stop times and pruning; absl::Now when empty (tests inject theirs).
  std::function<absl::Time()> now;
};

// What Load() found.
struct LoadedExports {
  // The running exports' records, by sequence.
  std::vector<durable::v1::ExportRecord> running;
  // Stopped records kept (within the retention) and removed (older).
  size_t stopped_kept = 0;
  size_t stopped_pruned = 0;
  // Files that did not parse, or whose content did not match their name: moved to corrupt/.
  size_t corrupt = 0;
  // The highest sequence of any record, running or stopped (0 when there is none).
  uint64_t max_sequence = 0;
};

class ExportStore {
 public:
  // Creates exports/, stopped/ and corrupt/ in `dir` if missing. `dir` must outlive the store
  // (its lock is what makes the store's files this process's alone).
  static absl::StatusOr<std::unique_ptr<ExportStore>> Open(const DataDir& dir,
                                                           ExportStoreOptions options = {});

  // Reads every record: running exports are returned, stopped ones are remembered for
  // FindStopped (those older than the retention are removed), files that do not parse are moved
  // aside to corrupt/ (a WARN line naming each, never an error), temp files of an interrupted
  // write are removed, and a running record whose export also has a stopped record (a crash
  // inside RecordStopped) is removed: that export has stopped. An error only when a directory
  // cannot be listed.
  absl::StatusOr<LoadedExports> Load();

  // Writes (or replaces) the running export's record. On failure (disk full: RESOURCE_EXHAUSTED;
  // an I/O error: UNAVAILABLE; the message names the file and the cause) nothing changed.
  absl::Status PutRunning(const durable::v1::ExportRecord& record);
  // Removes a running export's record (none: not an error).
  absl::Status RemoveRunning(const std::string& export_id);
  // Moves a running export's record to corrupt/ (it cannot be brought back: `reason`, logged).
  void SetAsideRunning(const std::string& export_id, const std::string& reason);

  // Records the export's final figures in stopped/, then removes its running record. Sets
  // stopped_unix_ms from the clock when it is 0. On failure the running record stays.
  absl::Status RecordStopped(durable::v1::StoppedExportRecord record);
  // The stopped record of `export_id`, if it stopped within the retention.
  std::optional<durable::v1::StoppedExportRecord> FindStopped(const std::string& export_id) const;
  // Removes stopped records older than the retention; returns how many.
  size_t PruneStopped();

  // Files moved to corrupt/ since the store was opened.
  uint64_t corrupt_files() const;
  const ExportStoreOptions& options() const { return options_; }

 private:
  ExportStore(std::string exports_dir, std::string stopped_dir, std::string corrupt_dir,
              ExportStoreOptions options);
  absl::Time Now() const { return options_.now ? options_.now() : absl::Now(); }
  std::string RunningPath(const std::string& export_id) const;
  std::string StoppedPath(const std::string& export_id) const;
  // Moves `dir`/`name` to corrupt/ with a WARN line naming the file and `reason`.
  void MoveAside(const std::string& dir, const std::string& name, const std::string& reason);
  // Reads exports/ into `loaded`.
  absl::Status LoadRunning(LoadedExports* loaded);
  // Reads stopped/ into stopped_ (and `loaded`'s counts), pruning old records; `ids` gets the
  // id of every stopped record found, pruned or kept.
  absl::Status LoadStopped(LoadedExports* loaded, absl::flat_hash_set<std::string>* ids);

  const std::string exports_dir_;
  const std::string stopped_dir_;
  const std::string corrupt_dir_;
  const ExportStoreOptions options_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, durable::v1::StoppedExportRecord> stopped_ ABSL_GUARDED_BY(mu_);
  uint64_t corrupt_files_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_EXPORT_STORE_H_
