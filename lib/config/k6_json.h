// Reads the export configuration the way k6 users write it: the `apm` blocks of a k6 test's
// options (`options.ext.loadimpact.apm`), as JSON, into a StartExportRequest.
//
// Accepted documents (comments // and /* */ allowed):
//   (a) the apm array itself:                 [ {"provider": "prometheus", ...}, ... ]
//   (b) an object holding it:                 {"apm": [ ... ], ...}
//   (c) a whole k6 options object:            {"ext": {"loadimpact": {"apm": [ ... ]}}, ...}
//   Other keys next to "apm" or "ext" (projectID, vus, thresholds, ...) are ignored.
// Each block takes the k6 keys (provider, remoteWriteURL, credentials {token | username,
// password}, metrics, includeDefaultMetrics, resampleRate, includeTestRunId) and rwexport's
// extras (headers, tls {caFile, certFile, keyFile, insecureSkipVerify}, timeoutMs, trendStats,
// staleMarkers, nativeHistograms, labels, sigv4 {region, accessKey, secretKey, sessionToken,
// service}, testRunIdLabel). A `metrics` entry is a metric name (selector allowed) or an
// object {sourceMetric, targetMetric, keepTags}. A null value means "not set".
//
// Beside "apm" (forms b and c), "metricTypes": {"name": "type[:kind]", ...} declares metrics for
// the whole export (StartExportRequest.metric_declarations), as --metric_types does.
//
// Only the document's shape is checked here (unknown keys, JSON types, integers); the values
// are checked by ValidateStartExport (lib/config/config.h). Pure function; thread-safe.
#ifndef RWEXPORT_LIB_CONFIG_K6_JSON_H_
#define RWEXPORT_LIB_CONFIG_K6_JSON_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// Converts the apm configuration in `json` into a request for test run `test_run_id`.
// Errors: InvalidArgumentError starting with the JSON path, e.g.
// "apm[0].remoteWriteUrl: unknown field (did you mean remoteWriteURL?)",
// "apm[0].resampleRate: expected an integer, got 3.5", or "invalid JSON: parse error at line 2,
// column 7: ...".
absl::StatusOr<rwexport::v1::StartExportRequest> ParseK6ApmJson(absl::string_view json,
                                                                absl::string_view test_run_id);

// Parses metric declarations written "name:type[:kind],..." (the CLI's --metric_types): type
// counter, gauge, rate or trend; kind default (the default), time (milliseconds) or data
// (bytes), as k6 spells its metrics' "contains". Names are checked by ValidateStartExport.
// Errors name the entry: "\"x:hist\": type \"hist\" is not counter, gauge, rate or trend".
absl::StatusOr<std::vector<rwexport::v1::MetricDeclaration>> ParseMetricTypes(
    absl::string_view spec);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CONFIG_K6_JSON_H_
