#include "lib/common/flags_env.h"

#include <unistd.h>  // environ

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/common/build_info.h"

namespace rwexport {
namespace {

// Variables of the project's own scripts and tests that share the prefix and are not flags:
// skipped without a warning (a developer's shell holds them).
constexpr absl::string_view kScriptVariables[] = {"TESTDATA",   "CHECKS",       "FUZZ_SECONDS",
                                                  "FUZZ_RUNS",  "FUZZ_VERBOSE", "PACKAGE_TEST",
                                                  "FLEET_TEST", "CRASH_AT"};

bool IsOwnFlag(const FlagsSetup& setup, const absl::CommandLineFlag& flag) {
  const std::string file = flag.Filename();
  for (const std::string& dir : setup.flag_dirs) {
    if (absl::StartsWith(file, dir) || absl::StrContains(file, absl::StrCat("/", dir))) {
      return true;
    }
  }
  return false;
}

std::vector<const absl::CommandLineFlag*> OwnFlags(const FlagsSetup& setup) {
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!flag->IsRetired() && IsOwnFlag(setup, *flag)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  return flags;
}

// Word-wraps `text` to lines of at most `width` characters, each starting with `indent`.
std::string Wrap(absl::string_view text, absl::string_view indent, size_t width) {
  std::string out;
  std::string line;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      absl::StrAppend(&out, indent, line, "\n");
      line.clear();
    }
    absl::StrAppend(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) absl::StrAppend(&out, indent, line, "\n");
  return out;
}

}  // namespace

absl::Status ApplyFlagsFromEnvironment(const FlagsSetup& setup, char** environment,
                                       std::vector<std::string>* unknown) {
  if (setup.env_prefix.empty() || environment == nullptr) return absl::OkStatus();
  for (char** entry = environment; *entry != nullptr; ++entry) {
    const absl::string_view text(*entry);
    if (!absl::StartsWith(text, setup.env_prefix)) continue;
    const size_t eq = text.find('=');
    if (eq == absl::string_view::npos) continue;
    const absl::string_view variable = text.substr(0, eq);
    const absl::string_view value = text.substr(eq + 1);
    const absl::string_view suffix = variable.substr(setup.env_prefix.size());
    if (std::find(std::begin(kScriptVariables), std::end(kScriptVariables), suffix) !=
        std::end(kScriptVariables)) {
      continue;
    }
    const std::string name = absl::AsciiStrToLower(suffix);
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    // Upper case only: RWEXPORT_listen is not the documented spelling.
    if (flag == nullptr || !IsOwnFlag(setup, *flag) || absl::AsciiStrToUpper(name) != suffix) {
      unknown->emplace_back(variable);
      continue;
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", variable, " (--", name, "): ", error));
    }
  }
  return absl::OkStatus();
}

std::string FlagsHelp(const FlagsSetup& setup) {
  std::string out = "Flags:\n";
  if (!setup.env_prefix.empty()) {
    out = absl::StrCat("Flags; each also from the environment as ", setup.env_prefix,
                       "<FLAG_IN_CAPITALS>\n(the command line and --flagfile win):\n");
  }
  for (const absl::CommandLineFlag* flag : OwnFlags(setup)) {
    absl::StrAppend(&out, "  --", flag->Name(), "=", flag->DefaultValue(), "\n",
                    Wrap(flag->Help(), "      ", 88));
  }
  absl::StrAppend(&out,
                  "  --flagfile=FILE\n"
                  "      Read flags from FILE, one --name=value per line; lines starting with # "
                  "are comments.\n"
                  "  --help, --helpfull (every flag, Abseil's too), --version\n");
  return out;
}

std::vector<char*> ParseFlagsOrExit(const FlagsSetup& setup, int argc, char** argv) {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [dirs = setup.flag_dirs](absl::string_view file) {
    for (const std::string& dir : dirs) {
      if (absl::StartsWith(file, dir) || absl::StrContains(file, absl::StrCat("/", dir))) {
        return true;
      }
    }
    return false;
  };
  config.version_string = [program = setup.program] {
    return absl::StrCat(VersionLine(program), "\n");
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(setup.usage);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) break;
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0 ||
        std::strcmp(argv[i], "-help") == 0) {
      std::printf("%s\n\n%s", setup.usage.c_str(), FlagsHelp(setup).c_str());
      std::exit(0);
    }
    if (std::strcmp(argv[i], "--version") == 0 || std::strcmp(argv[i], "-version") == 0) {
      std::printf("%s\n", VersionLine(setup.program).c_str());
      std::exit(0);
    }
  }
  std::vector<std::string> unknown;
  if (absl::Status status = ApplyFlagsFromEnvironment(setup, environ, &unknown); !status.ok()) {
    std::fprintf(stderr, "%s: %s\n", setup.program.c_str(), std::string(status.message()).c_str());
    std::exit(2);
  }
  for (const std::string& variable : unknown) {
    std::fprintf(stderr, "%s: warning: environment variable %s names no flag; ignored\n",
                 setup.program.c_str(), variable.c_str());
  }
  return absl::ParseCommandLine(argc, argv);
}

}  // namespace rwexport
