#include "lib/model/metric.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"

namespace rwexport {
namespace {

using BuiltinTable = absl::flat_hash_map<std::string, MetricInfo>;

const BuiltinTable& Builtins() {
  static const BuiltinTable* const table = [] {
    constexpr MetricInfo kCounter{MetricType::kCounter, ValueKind::kDefault};
    constexpr MetricInfo kDataCounter{MetricType::kCounter, ValueKind::kData};
    constexpr MetricInfo kGauge{MetricType::kGauge, ValueKind::kDefault};
    constexpr MetricInfo kRate{MetricType::kRate, ValueKind::kDefault};
    constexpr MetricInfo kTimeTrend{MetricType::kTrend, ValueKind::kTime};
    return new BuiltinTable{
        // Standard metrics.
        {"vus", kGauge},
        {"vus_max", kGauge},
        {"iterations", kCounter},
        {"iteration_duration", kTimeTrend},
        {"dropped_iterations", kCounter},
        {"data_received", kDataCounter},
        {"data_sent", kDataCounter},
        {"checks", kRate},
        // HTTP.
        {"http_reqs", kCounter},
        {"http_req_blocked", kTimeTrend},
        {"http_req_connecting", kTimeTrend},
        {"http_req_tls_handshaking", kTimeTrend},
        {"http_req_sending", kTimeTrend},
        {"http_req_waiting", kTimeTrend},
        {"http_req_receiving", kTimeTrend},
        {"http_req_duration", kTimeTrend},
        {"http_req_failed", kRate},
        // Groups.
        {"group_duration", kTimeTrend},
        // WebSockets.
        {"ws_connecting", kTimeTrend},
        {"ws_msgs_received", kCounter},
        {"ws_msgs_sent", kCounter},
        {"ws_ping", kTimeTrend},
        {"ws_session_duration", kTimeTrend},
        {"ws_sessions", kCounter},
        // gRPC.
        {"grpc_req_duration", kTimeTrend},
        {"grpc_streams", kCounter},
        {"grpc_streams_msgs_received", kCounter},
        {"grpc_streams_msgs_sent", kCounter},
        // Browser.
        {"browser_data_received", kDataCounter},
        {"browser_data_sent", kDataCounter},
        {"browser_http_req_duration", kTimeTrend},
        {"browser_http_req_failed", kRate},
        {"browser_web_vital_cls", kGauge},
        {"browser_web_vital_fcp", kTimeTrend},
        {"browser_web_vital_fid", kTimeTrend},
        {"browser_web_vital_inp", kTimeTrend},
        {"browser_web_vital_lcp", kTimeTrend},
        {"browser_web_vital_ttfb", kTimeTrend},
    };
  }();
  return *table;
}

bool IsAsciiLetterOrUnderscore(char c) { return absl::ascii_isalpha(c) || c == '_'; }

}  // namespace

std::optional<MetricInfo> BuiltinMetric(absl::string_view name) {
  const BuiltinTable& table = Builtins();
  auto it = table.find(name);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

const std::vector<std::string>& DefaultMetricNames() {
  static const std::vector<std::string>* const names = new std::vector<std::string>{
      "data_sent", "data_received", "http_req_duration", "http_reqs", "iterations", "vus"};
  return *names;
}

absl::string_view MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kRate:
      return "rate";
    case MetricType::kTrend:
      return "trend";
  }
  return "unknown";
}

std::optional<MetricType> ParseMetricType(absl::string_view name) {
  if (name == "counter") return MetricType::kCounter;
  if (name == "gauge") return MetricType::kGauge;
  if (name == "rate") return MetricType::kRate;
  if (name == "trend") return MetricType::kTrend;
  return std::nullopt;
}

absl::string_view ValueKindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kDefault:
      return "default";
    case ValueKind::kTime:
      return "time";
    case ValueKind::kData:
      return "data";
  }
  return "unknown";
}

std::optional<ValueKind> ParseValueKind(absl::string_view name) {
  if (name == "default") return ValueKind::kDefault;
  if (name == "time") return ValueKind::kTime;
  if (name == "data") return ValueKind::kData;
  return std::nullopt;
}

bool IsValidMetricName(absl::string_view name) {
  if (name.empty()) return false;
  if (!IsAsciiLetterOrUnderscore(name[0]) && name[0] != ':') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != ':') return false;
  }
  return true;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || !IsAsciiLetterOrUnderscore(name[0])) return false;
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

std::string SanitizeLabelName(absl::string_view name) {
  std::string out;
  if (name.empty()) return out;
  out.reserve(name.size() + 1);
  if (absl::ascii_isdigit(name[0])) out.push_back('_');
  for (char c : name) out.push_back(absl::ascii_isalnum(c) || c == '_' ? c : '_');
  while (out.size() >= 2 && out[0] == '_' && out[1] == '_') out.erase(0, 1);
  return out;
}

}  // namespace rwexport
