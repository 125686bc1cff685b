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

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/redact.h"  // RedactRemoteWriteUrl, which RedactTarget applies
#include "lib/model/trend_stat.h"
#include "lib/config/selector.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// Limits enforced by ValidateStartExport.
inline constexpr size_t kMaxTestRunIdLength = 256;
inline constexpr size_t kMaxTargets = 32;
inline constexpr size_t kMaxMetricEntries = 1000;
inline constexpr int kDefaultResampleRateS = 3;
inline constexpr absl::Duration kDefaultTimeout = absl::Seconds(10);
inline constexpr absl::Duration kMaxTimeout = absl::Minutes(10);

// One metric entry in force: which samples it takes and how their series are named.
struct OutputSpec {
  std::string entry;                     // sourceMetric as given (selector included).
  MetricSelector selector;               // Parsed sourceMetric.
  std::string source_metric;             // selector.metric().
  std::string base_name;                 // "k6_" + source_metric, or targetMetric as given.
  std::vector<std::string> keep_tags;    // k6 tag names kept, duplicates removed, in given order.
  std::vector<std::string> keep_labels;  // SanitizeLabelName(keep_tags[i]), parallel to keep_tags.
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
  std::vector<TrendStat> trend_stats;  // Non-empty, no two with the same suffix().
  bool stale_markers = false;
  bool native_histograms = false;
  std::vector<OutputSpec> outputs;  // User entries first, then the default metrics.
  std::vector<SkippedEntry> skipped;
};

struct ExportConfig {
  std::string test_run_id;
  std::vector<TargetConfig> targets;  // In request order.
};

// Validates `request` and applies defaults. Reads the file system only to check that TLS
// files exist and are readable. Errors: InvalidArgumentError starting with the field path.
absl::StatusOr<ExportConfig> ValidateStartExport(const rwexport::v1::StartExportRequest& request);

// Checks a remote-write URL: scheme://[userinfo@]host[:port][/path][?query], scheme http or
// https, a host, port 1..65535, no whitespace or control characters, no fragment. The error
// message does not name a field (the caller prefixes it).
absl::Status CheckRemoteWriteUrl(absl::string_view url);

// The target as given, fit to show (status RPCs, logs): token and password, secret-looking URL
// parts (see RedactRemoteWriteUrl in lib/common/redact.h) and the values of headers whose names
// look secret (token, password, secret, key, auth, signature, cookie) replaced by "REDACTED".
rwexport::v1::Target RedactTarget(const rwexport::v1::Target& target);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CONFIG_CONFIG_H_
