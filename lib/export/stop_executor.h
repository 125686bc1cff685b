// A small fixed pool of threads with a queue, for work that may block for seconds: stopping an
// export waits for its delivery (up to its delivery timeout). The export registry owns one and
// runs on it every StopExport call (so gRPC's callback threads never block) and every stop of
// an idle export (so the ticker never blocks), instead of a thread per stop. At most `threads`
// stops run at once; more wait in the queue, in order. Thread-safe.
#ifndef RWEXPORT_LIB_EXPORT_STOP_EXECUTOR_H_
#define RWEXPORT_LIB_EXPORT_STOP_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "lib/common/mutex.h"

namespace rwexport {

class StopExecutor {
 public:
  // Starts `threads` threads (at least 1).
  explicit StopExecutor(size_t threads);
  // Shutdown().
  ~StopExecutor();
  StopExecutor(const StopExecutor&) = delete;
  StopExecutor& operator=(const StopExecutor&) = delete;

  // Queues `task` to run on one of the threads. False, and `task` dropped unrun, once Shutdown()
  // has begun.
  bool Schedule(std::function<void()> task);

  // Takes no more tasks, runs every task already queued, and joins the threads. Must not be
  // called from a task. Later calls return at once.
  void Shutdown();

  // Tasks queued and not yet started.
  size_t queued() const;

 private:
  void Run();

  mutable Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Taken by the first Shutdown(), which joins them.
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_EXPORT_STOP_EXECUTOR_H_
