// Private to //lib/config:config: the pieces of ValidateStartExport (config.h) that its source
// files share. Each Validate* function checks one part of a target, at field path `path`
// ("targets[0]"), and fills the matching fields of `out`; errors are InvalidArgumentError
// starting with the field path. Pure functions over values except where noted; thread-safe.
#ifndef RWEXPORT_LIB_CONFIG_CONFIG_INTERNAL_H_
#define RWEXPORT_LIB_CONFIG_CONFIG_INTERNAL_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "lib/config/config.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace config_internal {

// InvalidArgument "<path>: <what>".
absl::Status FieldError(absl::string_view path, absl::string_view what);

// `s` quoted and escaped for a message, cut to 64 characters (the length is then given), so
// that no value of a request can make a message long.
std::string Quoted(absl::string_view s);

// InvalidArgument at `path` when `value` is longer than `max` bytes.
absl::Status CheckLength(absl::string_view path, absl::string_view value, size_t max);

bool IsBlank(absl::string_view s);
bool HasControlChar(absl::string_view s);

// config_auth.cc: how a target is reached and authenticated.
absl::Status ValidateCredentials(const std::string& path, const rwexport::v1::Target& target,
                                 bool url_has_userinfo, TargetConfig* out);
absl::Status ValidateHeaders(const std::string& path, const rwexport::v1::Target& target,
                             TargetConfig* out);
// Reads the file system: the TLS files must exist and be readable.
absl::Status ValidateTls(const std::string& path, const rwexport::v1::Target& target,
                         TargetConfig* out);
// After ValidateCredentials and ValidateHeaders (it checks against their results).
absl::Status ValidateSigV4(const std::string& path, const rwexport::v1::Target& target,
                           bool url_has_userinfo, TargetConfig* out);

// config_labels.cc: trend statistics and the labels added to every series.
absl::Status ValidateTrendStats(const std::string& path, const rwexport::v1::Target& target,
                                TargetConfig* out);
absl::Status ValidateTestRunIdLabel(const std::string& path, const rwexport::v1::Target& target,
                                    TargetConfig* out);
// After ValidateTestRunIdLabel.
absl::Status ValidateStaticLabels(const std::string& path, const rwexport::v1::Target& target,
                                  TargetConfig* out);

// config_metrics.cc: the metric entries (and the default metrics) -> out->outputs, skipped and
// replaced_defaults. After ValidateTestRunIdLabel and ValidateStaticLabels.
absl::Status ValidateMetrics(const std::string& path, const rwexport::v1::Target& target,
                             TargetConfig* out);

}  // namespace config_internal
}  // namespace rwexport

#endif  // RWEXPORT_LIB_CONFIG_CONFIG_INTERNAL_H_
