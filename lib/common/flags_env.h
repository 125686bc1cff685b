// Command-line handling shared by rwexport_server and the rwexport CLI: --help that lists the
// program's own flags with their defaults and meanings, --version, and flags taken from
// environment variables (RWEXPORT_<FLAG_IN_CAPITALS>) before the command line is parsed, so
// that flags given on the command line or in a --flagfile win. Call from main() only.
#ifndef RWEXPORT_LIB_COMMON_FLAGS_ENV_H_
#define RWEXPORT_LIB_COMMON_FLAGS_ENV_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rwexport {

struct FlagsSetup {
  std::string program;  // "rwexport_server"
  std::string usage;    // printed above the flags by --help
  // The program's own flags are those defined in files under these directories ("server/").
  std::vector<std::string> flag_dirs;
  // Non-empty ("RWEXPORT_"): environment variables with this prefix set flags.
  std::string env_prefix;
};

// Sets flags from `environ`-style entries ("NAME=value") named `prefix` + the flag's name in
// capitals, e.g. RWEXPORT_METRICS_LISTEN=127.0.0.1:9464 sets --metrics_listen. A variable with
// the prefix that names no flag of the program is returned in `unknown` (the caller warns),
// except the variables of the project's scripts and tests (RWEXPORT_TESTDATA, RWEXPORT_CHECKS,
// RWEXPORT_FUZZ_*, RWEXPORT_PACKAGE_TEST, RWEXPORT_FLEET_TEST, RWEXPORT_CRASH_AT), which are
// skipped.
// A value the flag cannot take is INVALID_ARGUMENT naming the variable and the flag.
absl::Status ApplyFlagsFromEnvironment(const FlagsSetup& setup, char** environment,
                                       std::vector<std::string>* unknown);

// Every flag of the program, sorted by name: "  --name=default\n      help\n".
std::string FlagsHelp(const FlagsSetup& setup);

// What main() calls instead of absl::ParseCommandLine: answers --help/-h (usage and
// FlagsHelp on stdout, exit 0) and --version (exit 0); applies the environment (an unknown
// variable is a warning on stderr, a bad value an error with exit 2); then parses the command
// line, which overrides the environment. Returns the positional arguments, argv[0] first.
std::vector<char*> ParseFlagsOrExit(const FlagsSetup& setup, int argc, char** argv);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_FLAGS_ENV_H_
