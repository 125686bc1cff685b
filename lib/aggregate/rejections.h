// Why a sample or a declaration was refused: one enum, one table of the stable names that
// clients see (StreamSamplesResponse.rejections, ExportResult.rejections), and the counts of
// refusals by name with one example each. Pure functions; thread-compatible.
#ifndef RWEXPORT_LIB_AGGREGATE_REJECTIONS_H_
#define RWEXPORT_LIB_AGGREGATE_REJECTIONS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace rwexport {

enum class RejectionReason : uint8_t {
  // Samples.
  kInvalidValue,           // "invalid_value": NaN or infinite
  kInvalidTimestamp,       // "invalid_timestamp": zero or negative
  kTooNew,                 // "too_new": beyond max_future ahead of the wall clock
  kTooOld,                 // "too_old": beyond max_age behind the export's newest sample
  kUnknownMetric,          // "unknown_metric": neither built in nor declared
  kSeriesLimit,            // "series_limit": every series it feeds is over a series limit
  kCompactLengthMismatch,  // "compact_length_mismatch": compact columns of unequal lengths
  kUnknownSeriesRef,       // "unknown_series_ref": a compact ref never declared
  // Declarations.
  kMissingType,       // "missing_type"
  kInvalidType,       // "invalid_type": type or kind outside the enums
  kTypeConflict,      // "type_conflict": declared with another type than the known one
  kInvalidName,       // "invalid_name": not a valid metric name
  kInvalidSeriesRef,  // "invalid_series_ref": a series ref not below the limit
  kMissingMetric,     // "missing_metric": a series declaration without a metric
};

// The stable name of `reason` ("too_old", ...), as clients see it.
absl::string_view RejectionReasonName(RejectionReason reason);

// Counts of refusals by reason name, with one example each.
struct RejectionCount {
  uint64_t count = 0;
  std::string example;
};
using Rejections = std::map<std::string, RejectionCount, std::less<>>;

void AddRejection(Rejections* rejections, RejectionReason reason, const std::string& example,
                  uint64_t count = 1);
void MergeRejections(Rejections* into, const Rejections& from);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_REJECTIONS_H_
