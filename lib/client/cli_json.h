// The documents `--json` prints (start, stop, replay; bench's is in client/bench_command.cc,
// which prints it with JsonText): figures as JSON numbers (not the
// proto3 JSON mapping's strings for 64-bit counts), configuration as in force (defaults
// applied), field names in the API's JSON spelling. Pure functions; thread-safe.
#ifndef RWEXPORT_LIB_CLIENT_CLI_JSON_H_
#define RWEXPORT_LIB_CLIENT_CLI_JSON_H_

#include <nlohmann/json.hpp>
#include <string>

#include "rwexport/v1/export.pb.h"

namespace rwexport {

// {"exportId", "testRunId", "targets": [{"remoteWriteURL" (redacted), "auth", "resampleRate",
// "timeoutMs", "includeDefaultMetrics", "includeTestRunId", "trendStats", "staleMarkers",
// "nativeHistograms", "exportedMetrics", "skippedMetrics": [{"entry", "reason"}]}]}.
nlohmann::ordered_json StartJson(const v1::StartExportRequest& request,
                                 const v1::StartExportResponse& response);

// {"samplesAccepted", "samplesRejected", "rejections": [{"reason", "count", "example"}],
// "pointsDropped" (all targets), "targets": [per target figures]}.
nlohmann::ordered_json StopJson(const v1::StopExportResponse& response);

// [{"reason", "count", "example"}].
nlohmann::ordered_json RejectionsJson(
    const google::protobuf::RepeatedPtrField<v1::Rejection>& rejections);

// `json` as indented text and a newline; invalid UTF-8 in strings is replaced, never fatal.
std::string JsonText(const nlohmann::ordered_json& json);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_CLI_JSON_H_
