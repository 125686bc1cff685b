#include "lib/export/stop_executor.h"

#include <algorithm>
#include <utility>

namespace rwexport {

StopExecutor::StopExecutor(size_t threads) {
  MutexLock lock(&mu_);
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i) {
    threads_.emplace_back([this] { Run(); });
  }
}

StopExecutor::~StopExecutor() { Shutdown(); }

bool StopExecutor::Schedule(std::function<void()> task) {
  MutexLock lock(&mu_);
  if (shutting_down_) return false;
  queue_.push_back(std::move(task));
  cv_.Signal();
  return true;
}

void StopExecutor::Shutdown() {
  std::vector<std::thread> threads;
  {
    MutexLock lock(&mu_);
    shutting_down_ = true;
    threads.swap(threads_);
    cv_.SignalAll();
  }
  for (std::thread& t : threads) t.join();
}

size_t StopExecutor::queued() const {
  MutexLock lock(&mu_);
  return queue_.size();
}

void StopExecutor::Run() {
  for (;;) {
    std::function<void()> task;
    {
      MutexLock lock(&mu_);
      while (queue_.empty() && !shutting_down_) cv_.Wait(&mu_);
      if (queue_.empty()) return;  // shutting down, nothing left to run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace rwexport
