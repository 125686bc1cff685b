// The naming and reading of the data directory's record files, <dir>/<export id>.binpb, shared
// by the export registry's records (export_store.h) and the checkpoints (checkpoint_store.h).
// Thread-safe (no shared state).
#ifndef RWEXPORT_LIB_DURABLE_RECORD_FILE_H_
#define RWEXPORT_LIB_DURABLE_RECORD_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace rwexport {

inline constexpr absl::string_view kRecordSuffix = ".binpb";

// The export id a record file is named after ("" when the name is not <id>.binpb).
std::string RecordIdOfFileName(const std::string& name);

// Leftovers of a write that a crash interrupted (file_util.h's temp files).
bool IsRecordTempFile(const std::string& name);

// An id as the registry makes them (and nothing that could leave the directory).
bool IsPlainRecordId(absl::string_view id);

// Reads and parses `path` into `message`: "" when it parsed, else why the record cannot be
// used ("does not parse"). A file that cannot be read is an error Status instead.
absl::StatusOr<std::string> ParseRecordFile(const std::string& path,
                                            google::protobuf::Message* message);

// Moves <dir>/<name> to <corrupt_dir>/<base of dir>-<name>.<unix ns> (removes it if it cannot
// be moved, so it is never read again) and logs one WARN line naming it and `reason`.
void MoveRecordAside(const std::string& dir, const std::string& name,
                     const std::string& corrupt_dir, const std::string& reason);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_RECORD_FILE_H_
