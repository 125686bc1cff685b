// The status page served at / on the metrics listener, for a person: the server's own figures
// and every running export with its targets' delivery, from the same snapshot /metrics reads.
// One self-contained HTML document (inline style, no scripts, no external assets) that reloads
// itself every 5 s. URLs and errors arrive redacted from the registry; every text is
// HTML-escaped. Pure functions, thread-safe.
#ifndef RWEXPORT_LIB_METRICS_STATUS_PAGE_H_
#define RWEXPORT_LIB_METRICS_STATUS_PAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/build_info.h"
#include "lib/export/export.h"
#include "lib/metrics/process_metrics.h"

namespace rwexport {

struct StatusPageInput {
  std::vector<v1::ExportStatus> live;
  RetiredTotals retired;
  uint64_t exports_started = 0;
  BuildInfo build;
  ProcessFigures process;
  bool ready = false;
  absl::Time now;
};

std::string RenderStatusPage(const StatusPageInput& input);

// `text` with &, <, >, " and ' replaced by entities.
std::string HtmlEscape(absl::string_view text);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_METRICS_STATUS_PAGE_H_
