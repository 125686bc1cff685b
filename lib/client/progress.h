// Progress of a long CLI operation: one line on stderr, rewritten in place about twice a
// second, cleared when done. Nothing at all is written when stderr is not a terminal, so
// logs and pipes stay clean.
//
// Thread-safe: `text` runs on the line's own thread, which the destructor joins.
#ifndef RWEXPORT_LIB_CLIENT_PROGRESS_H_
#define RWEXPORT_LIB_CLIENT_PROGRESS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "lib/common/mutex.h"

namespace rwexport {

class ProgressLine {
 public:
  // Starts showing `text()` if stderr is a terminal.
  explicit ProgressLine(std::function<std::string()> text);
  // Clears the line.
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // stderr is a terminal (and TERM is not "dumb").
  static bool Enabled();

 private:
  void Run();

  const std::function<std::string()> text_;
  Mutex mu_;
  CondVar cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// "read 12345 samples (2401/s), points sent 5678": the figures of a replay or demo so far.
// `points_sent` < 0: not known (not shown).
std::string ProgressText(int64_t samples, absl::Duration elapsed, int64_t points_sent);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_PROGRESS_H_
