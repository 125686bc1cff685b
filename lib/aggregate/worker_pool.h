// A fixed set of worker threads, each with its own FIFO task queue.
//
// Aggregation state is sharded by worker: shard i of every export is only ever touched by
// tasks posted to worker i, so that state needs no lock, and tasks posted to one worker run
// in the order they were posted. Thread-safe.
#ifndef RWEXPORT_LIB_AGGREGATE_WORKER_POOL_H_
#define RWEXPORT_LIB_AGGREGATE_WORKER_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "lib/common/mutex.h"

namespace rwexport {

class WorkerPool {
 public:
  using Task = std::function<void()>;

  // Starts `workers` threads (at least 1).
  explicit WorkerPool(size_t workers);
  // Runs every task already posted, then joins the threads.
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t size() const { return workers_.size(); }

  // Queues `task` on worker `worker` (< size()). Never blocks on the task itself.
  void Post(size_t worker, Task task);

 private:
  struct Worker {
    Mutex mu;
    CondVar cv;
    std::deque<Task> tasks ABSL_GUARDED_BY(mu);
    bool stopping ABSL_GUARDED_BY(mu) = false;
    std::thread thread;
  };

  static void Run(Worker* worker);

  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_WORKER_POOL_H_
