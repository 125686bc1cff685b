// Validation of a target's trend statistics and of the labels added to every series
// (testRunIdLabel, labels).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/config/config.h"
#include "lib/config/config_internal.h"
#include "lib/model/metric.h"
#include "lib/model/trend_stat.h"

namespace rwexport {
namespace config_internal {
namespace {

absl::Status CheckLabelName(const std::string& path, absl::string_view name) {
  if (absl::StartsWith(name, "__")) {
    return FieldError(
        path, absl::StrCat(Quoted(name), " is reserved (names starting with __ are Prometheus's)"));
  }
  if (!IsValidLabelName(name)) {
    return FieldError(
        path, absl::StrCat(Quoted(name), " is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTrendStats(const std::string& path, const rwexport::v1::Target& target,
                                TargetConfig* out) {
  std::vector<TrendStat> stats;
  if (target.trend_stats().empty()) {
    stats = DefaultTrendStats();
  } else {
    if (static_cast<size_t>(target.trend_stats_size()) > kMaxTrendStats) {
      return FieldError(
          absl::StrCat(path, ".trendStats"),
          absl::StrCat("at most ", kMaxTrendStats, " statistics, got ", target.trend_stats_size()));
    }
    for (int i = 0; i < target.trend_stats_size(); ++i) {
      absl::Status length = CheckLength(absl::StrCat(path, ".trendStats[", i, "]"),
                                        target.trend_stats(i), kMaxTrendStatLength);
      if (!length.ok()) return length;
      absl::StatusOr<TrendStat> stat = ParseTrendStat(target.trend_stats(i));
      if (!stat.ok()) {
        return FieldError(absl::StrCat(path, ".trendStats[", i, "]"), stat.status().message());
      }
      stats.push_back(*std::move(stat));
    }
  }
  absl::flat_hash_set<std::string> suffixes;
  for (TrendStat& stat : stats) {
    if (suffixes.insert(std::string(stat.suffix())).second) {
      out->trend_stats.push_back(std::move(stat));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTestRunIdLabel(const std::string& path, const rwexport::v1::Target& target,
                                    TargetConfig* out) {
  out->include_test_run_id = target.include_test_run_id();
  if (target.test_run_id_label().empty()) return absl::OkStatus();
  const std::string lpath = absl::StrCat(path, ".testRunIdLabel");
  if (!target.include_test_run_id()) {
    return FieldError(lpath, "has no effect without includeTestRunId: true; set both");
  }
  absl::Status status = CheckLabelName(lpath, target.test_run_id_label());
  if (!status.ok()) return status;
  out->test_run_id_label = target.test_run_id_label();
  return absl::OkStatus();
}

absl::Status ValidateStaticLabels(const std::string& path, const rwexport::v1::Target& target,
                                  TargetConfig* out) {
  if (static_cast<size_t>(target.labels_size()) > kMaxStaticLabels) {
    return FieldError(
        absl::StrCat(path, ".labels"),
        absl::StrCat("at most ", kMaxStaticLabels, " labels, got ", target.labels_size()));
  }
  for (const auto& [name, value] : target.labels()) out->labels.emplace_back(name, value);
  std::sort(out->labels.begin(), out->labels.end());
  for (const auto& [name, value] : out->labels) {
    const std::string lpath = absl::StrCat(path, ".labels[", Quoted(name), "]");
    absl::Status status = CheckLabelName(lpath, name);
    if (!status.ok()) return status;
    if (out->include_test_run_id && name == out->test_run_id_label) {
      return FieldError(lpath, absl::StrCat("the label ", Quoted(name),
                                            " carries the test run id (includeTestRunId)"));
    }
    if (value.empty()) return FieldError(lpath, "empty value (Prometheus drops such a label)");
  }
  return absl::OkStatus();
}

}  // namespace config_internal
}  // namespace rwexport
