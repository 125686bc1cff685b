// The real rwexport_server as a child process, for the data-dir tests (crash and restart):
// started on a free loopback port and waited for, SIGKILLed and reaped, and the rwexport CLI
// run against it. Test-only; uses gtest expectations.
#ifndef RWEXPORT_TESTS_TESTING_SERVER_PROCESS_H_
#define RWEXPORT_TESTS_TESTING_SERVER_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tests/testing/subprocess.h"

namespace rwexport {

// $TEST_TMPDIR/<name> (/tmp/<name> outside Bazel).
std::string TestTempPath(const std::string& name);

// Starts server/rwexport_server with `flags` plus --listen=127.0.0.1:0 and --port_file=
// `port_file`, and waits (up to `wait`) until it listens. Sets `*server_flag` to
// "--server=127.0.0.1:<port>". Null (and a test failure) if it does not start.
std::unique_ptr<Subprocess> StartServerProcess(const std::vector<std::string>& flags,
                                               const std::string& port_file,
                                               std::string* server_flag, absl::Duration wait);

// SIGKILLs the server, expects it to die of it within `wait`, and resets the pointer.
void SigkillServer(std::unique_ptr<Subprocess>& server, absl::Duration wait);

// Runs client/rwexport with `args` and `server_flag`.
ProcessResult RunCli(std::vector<std::string> args, const std::string& server_flag);

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_SERVER_PROCESS_H_
