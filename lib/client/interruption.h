// SIGINT and SIGTERM as a request to stop, for commands that clean up before they exit (stop
// the export they started, print its figures): the first signal is recorded and makes fd()
// readable; a second one ends the process at once with 128 + its number.
//
// Thread-safe. Install() before any other thread starts.
#ifndef RWEXPORT_LIB_CLIENT_INTERRUPTION_H_
#define RWEXPORT_LIB_CLIENT_INTERRUPTION_H_

#include <atomic>

#include "absl/time/time.h"

namespace rwexport {

class Interruption {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread, and so in every thread started after,
  // and starts the thread that takes them. Later calls return the same object.
  static Interruption& Install();

  bool requested() const { return signal_.load() != 0; }
  // The first signal taken, 0 before.
  int signal_number() const { return signal_.load(); }
  // 128 + signal_number(): 130 for SIGINT, 143 for SIGTERM (as a shell reports them).
  int exit_code() const { return 128 + signal_number(); }
  // Readable once requested (for poll).
  int fd() const { return read_fd_; }
  // Waits for `duration`; false if a signal came first.
  bool SleepFor(absl::Duration duration) const;

 private:
  Interruption() = default;
  void Run();

  std::atomic<int> signal_{0};
  int read_fd_ = -1;
  int write_fd_ = -1;
};

// Waits up to `timeout` for `fd` to become readable (fd < 0: just waits). True if it did.
bool WaitReadable(int fd, absl::Duration timeout);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_INTERRUPTION_H_
