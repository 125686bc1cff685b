// A test hook for crash tests: rwexport_server reads RWEXPORT_CRASH_AT=<name> once at start
// (ArmCrashPointFromEnvironment), and the process kills itself with SIGKILL when it reaches the
// point of that name (CrashPoint), e.g. between the two durable steps of a StopExport. So a
// test can crash the real binary exactly there and check what a restart finds. Unset (always
// in production): CrashPoint is one relaxed atomic load.
//
// Points (README, "Crash safety"): start_export.after_record, stop_export.before_stopped_record,
// stop_export.after_stopped_record, stop_export.after_running_removed, wal.after_sync (a group
// of records durable, not yet acknowledged). Thread-safe.
#ifndef RWEXPORT_LIB_COMMON_CRASH_POINT_H_
#define RWEXPORT_LIB_COMMON_CRASH_POINT_H_

#include "absl/strings/string_view.h"

namespace rwexport {

// Reads RWEXPORT_CRASH_AT; empty or unset arms nothing. Call once, before threads start.
void ArmCrashPointFromEnvironment();

// Kills the process (SIGKILL, after one line on stderr) if the armed point is `name`.
void CrashPoint(absl::string_view name);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_CRASH_POINT_H_
