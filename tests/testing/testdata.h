// Finds the shared test data that lives beside the repository (shared/testdata/, outside the
// source tree): CI clones the repository with shared/ next to it. Test-only; thread-safe.
#ifndef RWEXPORT_TESTS_TESTING_TESTDATA_H_
#define RWEXPORT_TESTS_TESTING_TESTDATA_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rwexport {

// The directory of the real k6 result files (finance-run.json, ...), tried in this order:
// $RWEXPORT_TESTDATA (passed into Bazel tests by .bazelrc's --test_env), then
// <source tree>/../shared/testdata/k6 (the source tree is found by resolving this package's
// runfile symlink), then /work/shared/testdata/k6. NotFoundError lists what was tried.
absl::StatusOr<std::string> FindK6TestdataDir();

// FindK6TestdataDir(), or ends the test binary with the error message when it fails.
std::string K6TestdataDir();

// The repository's source tree (where WORKSPACE is), found by resolving the symlink of a
// runfile of this package; empty when not run under Bazel (no runfiles).
std::string SourceTreeRoot();

// K6TestdataDir() + "/" + name.
std::string K6TestdataFile(absl::string_view name);

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_TESTDATA_H_
