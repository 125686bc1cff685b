// Reads the export configuration out of a k6 test script, where k6 users keep it:
//
//   export const options = {
//     ext: { loadimpact: { apm: [ { provider: 'prometheus', remoteWriteURL: __ENV.RW_URL, } ] } },
//   };
//
// No JavaScript engine: the `options` object literal (after `export const|let|var options =`,
// an optional TypeScript type annotation allowed) is read as JSON5 is: unquoted keys, single
// or double quotes, template strings without `${`, trailing commas, comments, hex numbers,
// `undefined` (= not set). `__ENV.NAME` and `__ENV["NAME"]` are taken from `env` (k6's own
// `-e NAME=...` is not seen: set them in the environment). Any other expression (a call, a
// variable, `a || b`, `${...}`, a spread) is an error naming its line only where the apm
// configuration needs it; elsewhere in the options (vus, stages, thresholds, ...) it is
// ignored. The apm blocks are then read as ParseK6ApmJson reads them (lib/config/k6_json.h),
// and its errors gain the line of the value they name.
//
// Pure function of its arguments; thread-safe if `env` is.
#ifndef RWEXPORT_LIB_CONFIG_K6_SCRIPT_H_
#define RWEXPORT_LIB_CONFIG_K6_SCRIPT_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// The value of environment variable `name`, or nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view name)>;

// Converts the `options.ext.loadimpact.apm` configuration of k6 script `script` into a request
// for test run `test_run_id`. Errors: InvalidArgumentError starting with "line N: " where a
// line is known, e.g. "line 7: ext.loadimpact.apm[0].remoteWriteURL: cannot evaluate
// `${BASE}/write`: only literals and __ENV.NAME are read from a k6 script" (the expression is
// not shown for credentials, sigv4 and headers), "line 9: __ENV.RW_TOKEN
// is not set in the environment", "no `export const options = {...}` in the script".
absl::StatusOr<rwexport::v1::StartExportRequest> ParseK6ScriptApm(absl::string_view script,
                                                                  absl::string_view test_run_id,
                                                                  const EnvLookup& env);

// Whether `path` names a script (.js, .mjs, .cjs, .ts) rather than a JSON document.
bool IsK6ScriptPath(absl::string_view path);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CONFIG_K6_SCRIPT_H_
