// An export's configuration: validation of a StartExportRequest (the k6 "apm" blocks plus
// rwexport's extras) into plain, checked values with every default filled in.
//
// Whole-request problems (a missing field, an out-of-range value, a malformed selector) fail
// the request with InvalidArgumentError whose message starts with the field path in k6/JSON
// spelling, e.g. "targets[1].resampleRate: must be an integer from 1 to 10, got 11".
// Metric entries that merely cannot be exported (a name outside Prometheus naming rules, an
// exported-name clash) are skipped and listed in TargetConfig::skipped instead.
//
// Pure functions over values; thread-safe. The results are plain structs, copyable.
#ifndef RWEXPORT_LIB_CONFIG_CONFIG_H_
#define RWEXPORT_LIB_CONFIG_CONFIG_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/redact.h"  // RedactRemoteWriteUrl, which RedactTarget applies
#include "lib/config/selector.h"
#include "lib/model/metric.h"
#include "lib/model/trend_stat.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// Limits enforced by ValidateStartExport.
inline constexpr size_t kMaxTestRunIdLength = 256;
inline constexpr size_t kMaxTargets = 32;
inline constexpr size_t kMaxMetricEntries = 1000;
// Bounds on every name and value of a configuration, so that nothing the server keeps or
// echoes (StartExport's answer, status, logs) can grow without end.
inline constexpr size_t kMaxConfigBytes = 1 << 20;  // The whole request, encoded.
inline constexpr size_t kMaxUrlLength = 4096;
inline constexpr size_t kMaxSourceMetricLength = 1024;  // Selector included.
inline constexpr size_t kMaxNameLength = 256;           // Metric, label and header names.
inline constexpr size_t kMaxKeepTags = 64;              // Per metric entry.
inline constexpr size_t kMaxHeaders = 64;
inline constexpr size_t kMaxHeaderValueLength = 8192;
inline constexpr size_t kMaxTokenLength = 8192;  // Bearer token.
inline constexpr size_t kMaxPasswordLength = 1024;
inline constexpr size_t kMaxPathLength = 4096;  // TLS files.
inline constexpr size_t kMaxTrendStats = 32;
inline constexpr size_t kMaxTrendStatLength = 32;
inline constexpr int kDefaultResampleRateS = 3;
inline constexpr absl::Duration kDefaultTimeout = absl::Seconds(10);
inline constexpr absl::Duration kMaxTimeout = absl::Minutes(10);
inline constexpr size_t kMaxStaticLabels = 64;
inline constexpr char kDefaultTestRunIdLabel[] = "test_run_id";
inline constexpr char kDefaultSigV4Service[] = "aps";
// The metric entry that stands for every metric the test sends.
inline constexpr char kAllMetricsEntry[] = "*";

// One metric entry in force: which samples it takes and how their series are named.
struct OutputSpec {
  std::string entry;                     // sourceMetric as given (selector included).
  MetricSelector selector;               // Parsed sourceMetric.
  std::string source_metric;             // selector.metric().
  std::string base_name;                 // "k6_" + source_metric, or targetMetric as given.
  std::vector<std::string> keep_tags;    // k6 tag names kept, duplicates removed, in given order.
  std::vector<std::string> keep_labels;  // SanitizeLabelName(keep_tags[i]), parallel to keep_tags.
  // The "*" entry: every metric of the test that no other entry of the target exports under
  // its default name, each as "k6_" + its name (source_metric and base_name are then "*" and
  // "k6_", the selector empty; the aggregator makes one output per metric it meets).
  bool all_metrics = false;
};

// A default metric left out because a user entry exports the same series.
struct ReplacedDefault {
  std::string metric;  // The default metric, e.g. "http_req_duration".
  std::string entry;   // The entry exporting it instead (sourceMetric as given).
};

// AWS Signature Version 4 for every request of a target (Amazon Managed Service for
// Prometheus).
struct SigV4Config {
  std::string region;
  std::string service = kDefaultSigV4Service;
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // Empty: none.
};

// A metric entry that is not exported, and why (reported back by StartExport).
struct SkippedEntry {
  std::string entry;  // sourceMetric as given.
  std::string reason;
};

// One remote-write endpoint, validated, defaults applied.
struct TargetConfig {
  std::string url;           // As given; sent unchanged (query string included).
  std::string redacted_url;  // url with userinfo password and secret-looking query values
                             // replaced by "REDACTED": the only form fit for logs and replies.
  std::string bearer_token;  // Set, or username/password set, or none of them.
  std::string username;
  std::string password;
  std::vector<std::pair<std::string, std::string>> headers;  // Extra headers, sorted by name.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure_skip_verify = false;
  absl::Duration timeout = kDefaultTimeout;
  int resample_rate_s = kDefaultResampleRateS;
  bool include_test_run_id = false;
  std::string test_run_id_label = kDefaultTestRunIdLabel;  // Valid label name.
  // Labels added to every series of the target, sorted by name; valid, not reserved, none
  // named test_run_id_label when include_test_run_id.
  std::vector<std::pair<std::string, std::string>> labels;
  std::optional<SigV4Config> sigv4;    // Set: no bearer token, username or URL userinfo.
  std::vector<TrendStat> trend_stats;  // Non-empty, no two with the same suffix().
  bool stale_markers = false;
  bool native_histograms = false;
  std::vector<OutputSpec> outputs;  // User entries first, then the default metrics.
  std::vector<SkippedEntry> skipped;
  std::vector<ReplacedDefault> replaced_defaults;
};

struct ExportConfig {
  std::string test_run_id;
  std::vector<TargetConfig> targets;  // In request order.
  // StartExportRequest.metric_declarations, checked: valid names, a type, no conflict with a
  // built-in metric's type; in request order (a repeated name: the first wins).
  std::vector<std::pair<std::string, MetricInfo>> metric_declarations;
};

// Validates `request` and applies defaults. Reads the file system only to check that TLS
// files exist and are readable. Errors: InvalidArgumentError starting with the field path;
// values quoted in a message are cut to 64 characters, so a message stays short whatever the
// request holds. A target must export something: with includeDefaultMetrics false, at least one
// metric entry must be usable. Credentials, when present, must hold a token or a username and
// password that are not blank.
absl::StatusOr<ExportConfig> ValidateStartExport(const rwexport::v1::StartExportRequest& request);

// Checks a remote-write URL: scheme://[userinfo@]host[:port][/path][?query], scheme http or
// https, a host, port 1..65535, no whitespace or control characters, no fragment. The error
// message does not name a field (the caller prefixes it).
absl::Status CheckRemoteWriteUrl(absl::string_view url);

// The target as given, fit to show (status RPCs, logs): token and password, the SigV4 access
// key, secret key and session token, secret-looking URL parts (see RedactRemoteWriteUrl in
// lib/common/redact.h) and the values of headers whose names look secret (token, password,
// secret, key, auth, signature, cookie) replaced by "REDACTED".
rwexport::v1::Target RedactTarget(const rwexport::v1::Target& target);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CONFIG_CONFIG_H_
