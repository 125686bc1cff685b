// Why a target's points were dropped, and the stable names that figures and logs show.
//
// The names are an interface (TargetFigures::dropped_by_reason, the status RPCs, dashboards):
// they never change. One table in drop_reason.cc maps each reason to its name. Thread-safe.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_DROP_REASON_H_
#define RWEXPORT_LIB_REMOTE_WRITE_DROP_REASON_H_

#include <string>

namespace rwexport {

enum class DropReason {
  kQueueFull,        // "queue_full": the memory queue was full and there is no spool
  kShutdownTimeout,  // "shutdown_timeout": undelivered at the RemoveTarget deadline
  kShutdown,         // "shutdown": undelivered when the Sender was destroyed
  kTargetRemoved,    // "target_removed": enqueued after RemoveTarget began
  kEncodeError,      // "encode_error": the request could not be encoded
  kSpooled,          // "spooled": left on disk for a later target with the same URL
  kSpoolFull,        // "spool_full": deleted to bound the spool, or too large for it
  kSpoolError,       // "spool_error": a spool file that could not be read back
  kHttp,             // "http_<status>": refused by the target, not retried
};

// The stable name of `reason`; for kHttp, "http_" followed by `http_status`.
std::string DropReasonName(DropReason reason, long http_status = 0);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_DROP_REASON_H_
