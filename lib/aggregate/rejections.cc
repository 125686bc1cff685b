#include "lib/aggregate/rejections.h"

#include <iterator>

namespace rwexport {
namespace {

// Indexed by RejectionReason. These names are part of the API: never rename one.
constexpr absl::string_view kReasonNames[] = {
    "invalid_value",
    "invalid_timestamp",
    "too_new",
    "too_old",
    "unknown_metric",
    "series_limit",
    "compact_length_mismatch",
    "unknown_series_ref",
    "missing_type",
    "invalid_type",
    "type_conflict",
    "invalid_name",
    "invalid_series_ref",
    "missing_metric",
};
static_assert(std::size(kReasonNames) == static_cast<size_t>(RejectionReason::kMissingMetric) + 1,
              "one name per RejectionReason");

void Add(Rejections* rejections, absl::string_view reason, const std::string& example,
         uint64_t count) {
  auto it = rejections->find(reason);
  if (it == rejections->end())
    it = rejections->emplace(std::string(reason), RejectionCount{}).first;
  RejectionCount& r = it->second;
  if (r.count == 0) r.example = example;
  r.count += count;
}

}  // namespace

absl::string_view RejectionReasonName(RejectionReason reason) {
  return kReasonNames[static_cast<size_t>(reason)];
}

void AddRejection(Rejections* rejections, RejectionReason reason, const std::string& example,
                  uint64_t count) {
  Add(rejections, RejectionReasonName(reason), example, count);
}

void MergeRejections(Rejections* into, const Rejections& from) {
  for (const auto& [reason, r] : from) Add(into, reason, r.example, r.count);
}

}  // namespace rwexport
