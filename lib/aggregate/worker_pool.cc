#include "lib/aggregate/worker_pool.h"

#include <utility>

namespace rwexport {

WorkerPool::WorkerPool(size_t workers) {
  if (workers == 0) workers = 1;
  workers_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    Worker* w = workers_.back().get();
    w->thread = std::thread([w] { Run(w); });
  }
}

WorkerPool::~WorkerPool() {
  for (auto& w : workers_) {
    MutexLock lock(&w->mu);
    w->stopping = true;
    w->cv.Signal();
  }
  for (auto& w : workers_) w->thread.join();
}

void WorkerPool::Post(size_t worker, Task task) {
  Worker* w = workers_[worker % workers_.size()].get();
  {
    MutexLock lock(&w->mu);
    w->tasks.push_back(std::move(task));
  }
  // After unlocking: a worker woken while the lock is still held would only block on it again
  // (two more futex calls and a context switch per wake-up, frequent when batches come in
  // bursts, as acknowledged ingest's do after each group commit of the log).
  w->cv.Signal();
}

void WorkerPool::Run(Worker* worker) {
  for (;;) {
    Task task;
    {
      MutexLock lock(&worker->mu);
      while (worker->tasks.empty() && !worker->stopping) worker->cv.Wait(&worker->mu);
      if (worker->tasks.empty()) return;  // stopping, and nothing left to run
      task = std::move(worker->tasks.front());
      worker->tasks.pop_front();
    }
    task();
  }
}

}  // namespace rwexport
