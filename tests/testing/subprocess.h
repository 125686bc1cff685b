// Runs a program as a child process for tests (the rwexport binaries, found in the test's
// runfiles), capturing its stdout and stderr, with bounded waits and signals.
//
// Thread-safe. The child is started with fork/exec from a multi-threaded test: between the two
// it only calls async-signal-safe functions.
#ifndef RWEXPORT_TESTS_TESTING_SUBPROCESS_H_
#define RWEXPORT_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "lib/common/mutex.h"

namespace rwexport {

// $TEST_SRCDIR/<workspace>/<path>: a file of the test's runfiles, e.g. a binary that is a data
// dependency ("server/rwexport_server").
std::string RunfilePath(absl::string_view path);

class Subprocess {
 public:
  // Starts `binary` with `args` (argv[1..]); stdin is /dev/null. An error if it cannot be
  // started (exec failures show as exit code 127 and a line on stderr).
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::string& binary,
                                                           const std::vector<std::string>& args);
  // Kills the child (SIGKILL) if it is still running, and reaps it.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `signal` to the child unless it has exited.
  void Kill(int signal);

  // True once the child's stderr contains `text`; false if `timeout` passed or the child closed
  // stderr first.
  bool WaitForStderr(absl::string_view text, absl::Duration timeout);

  // Waits for the child to exit and returns its exit code (128 + N if signal N ended it).
  // DeadlineExceeded if it still ran after `timeout`: it is then killed.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  std::string stdout_text() const;
  std::string stderr_text() const;

 private:
  Subprocess(pid_t pid, int out_fd, int err_fd);
  // Reads both pipes to their end, then reaps the child.
  void ReadLoop(int out_fd, int err_fd);

  const pid_t pid_;
  std::thread reader_;
  mutable Mutex mu_;
  CondVar cv_;
  std::string out_ ABSL_GUARDED_BY(mu_);
  std::string err_ ABSL_GUARDED_BY(mu_);
  bool err_closed_ ABSL_GUARDED_BY(mu_) = false;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  int exit_code_ ABSL_GUARDED_BY(mu_) = -1;
};

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `binary` to its end (killed after `timeout`: DeadlineExceeded).
absl::StatusOr<ProcessResult> RunProcess(const std::string& binary,
                                         const std::vector<std::string>& args,
                                         absl::Duration timeout = absl::Seconds(20));

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_SUBPROCESS_H_
