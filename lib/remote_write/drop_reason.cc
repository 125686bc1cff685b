#include "lib/remote_write/drop_reason.h"

#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

struct Name {
  DropReason reason;
  const char* name;
};

// The one table of stable names.
constexpr Name kNames[] = {
    {DropReason::kQueueFull, "queue_full"},
    {DropReason::kShutdownTimeout, "shutdown_timeout"},
    {DropReason::kShutdown, "shutdown"},
    {DropReason::kTargetRemoved, "target_removed"},
    {DropReason::kEncodeError, "encode_error"},
    {DropReason::kSpooled, "spooled"},
    {DropReason::kSpoolFull, "spool_full"},
    {DropReason::kSpoolError, "spool_error"},
    {DropReason::kHttp, "http_"},
};

}  // namespace

std::string DropReasonName(DropReason reason, long http_status) {
  for (const Name& entry : kNames) {
    if (entry.reason != reason) continue;
    if (reason == DropReason::kHttp) return absl::StrCat(entry.name, http_status);
    return entry.name;
  }
  return "unknown";
}

}  // namespace rwexport
