// The k6 metric model: metric types, value kinds, the built-in k6 metrics, and Prometheus
// naming rules. Pure functions; thread-safe.
#ifndef RWEXPORT_LIB_MODEL_METRIC_H_
#define RWEXPORT_LIB_MODEL_METRIC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace rwexport {

enum class MetricType : uint8_t { kCounter, kGauge, kRate, kTrend };
enum class ValueKind : uint8_t { kDefault, kTime, kData };

// A tag of a sample (key, value), as views.
using RawTag = std::pair<absl::string_view, absl::string_view>;

struct MetricInfo {
  MetricType type;
  ValueKind kind;
};

inline bool operator==(const MetricInfo& a, const MetricInfo& b) {
  return a.type == b.type && a.kind == b.kind;
}

// The type and kind of a built-in k6 metric (http_reqs, http_req_duration, vus, checks, ...),
// or nullopt for a name k6 does not define.
std::optional<MetricInfo> BuiltinMetric(absl::string_view name);

// The metrics exported when a target's includeDefaultMetrics is true, in export order.
const std::vector<std::string>& DefaultMetricNames();

// "counter", "gauge", "rate", "trend" (k6 spelling) and back.
absl::string_view MetricTypeName(MetricType type);
std::optional<MetricType> ParseMetricType(absl::string_view name);
absl::string_view ValueKindName(ValueKind kind);
std::optional<ValueKind> ParseValueKind(absl::string_view name);

// Prometheus naming rules: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names
// [a-zA-Z_][a-zA-Z0-9_]* and not starting with "__" (reserved).
bool IsValidMetricName(absl::string_view name);
bool IsValidLabelName(absl::string_view name);

// Turns a k6 tag name into a valid label name: every character outside [a-zA-Z0-9_] becomes
// '_', a leading digit gets a '_' prefix, a leading "__" becomes "_". Empty stays empty.
std::string SanitizeLabelName(absl::string_view name);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_MODEL_METRIC_H_
