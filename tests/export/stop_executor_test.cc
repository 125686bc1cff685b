// The stop executor: every task runs, never more than its threads at once, the rest wait in
// order; shutdown runs what is queued, joins, and refuses new tasks.
#include "lib/export/stop_executor.h"

#include <algorithm>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/common/mutex.h"

namespace rwexport {
namespace {

// Tasks that block until released, recording how many ran at once and in which order.
class Gate {
 public:
  void Enter(int id) {
    MutexLock lock(&mu_);
    started_.push_back(id);
    ++running_;
    max_running_ = std::max(max_running_, running_);
    cv_.SignalAll();
    while (!open_) cv_.Wait(&mu_);
    --running_;
    ++finished_;
    cv_.SignalAll();
  }
  void Open() {
    MutexLock lock(&mu_);
    open_ = true;
    cv_.SignalAll();
  }
  // Waits (at most 10 s) until `n` tasks are running; false on timeout.
  bool AwaitRunning(int n) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (running_ < n && absl::Now() < deadline) {
      cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(absl::Milliseconds(50)));
    }
    return running_ >= n;
  }
  int max_running() {
    MutexLock lock(&mu_);
    return max_running_;
  }
  int finished() {
    MutexLock lock(&mu_);
    return finished_;
  }
  std::vector<int> started() {
    MutexLock lock(&mu_);
    return started_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int max_running_ ABSL_GUARDED_BY(mu_) = 0;
  int finished_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int> started_ ABSL_GUARDED_BY(mu_);
};

TEST(StopExecutorTest, RunsAtMostItsThreadsAtOnceAndTheRestInOrder) {
  Gate gate;
  StopExecutor executor(2);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(executor.Schedule([&gate, i] { gate.Enter(i); }));
  }
  ASSERT_TRUE(gate.AwaitRunning(2));
  EXPECT_EQ(executor.queued(), 8u);
  EXPECT_EQ(gate.finished(), 0);
  gate.Open();
  executor.Shutdown();
  EXPECT_EQ(gate.finished(), 10);
  EXPECT_EQ(gate.max_running(), 2);
  EXPECT_EQ(executor.queued(), 0u);
  // Two threads take tasks from the head of one queue: a task never starts before one queued
  // two or more places ahead of it.
  const std::vector<int> started = gate.started();
  ASSERT_EQ(started.size(), 10u);
  for (size_t k = 0; k < started.size(); ++k) {
    EXPECT_LE(started[k], static_cast<int>(k) + 1) << "position " << k;
  }
}

TEST(StopExecutorTest, ShutdownRunsWhatIsQueuedThenRefusesNewTasks) {
  Gate gate;
  StopExecutor executor(1);
  ASSERT_TRUE(executor.Schedule([&gate] { gate.Enter(0); }));
  ASSERT_TRUE(gate.AwaitRunning(1));
  int ran_after = 0;
  ASSERT_TRUE(executor.Schedule([&ran_after] { ++ran_after; }));
  EXPECT_EQ(executor.queued(), 1u);
  gate.Open();
  executor.Shutdown();  // joins: the queued task has run by now
  EXPECT_EQ(gate.finished(), 1);
  EXPECT_EQ(ran_after, 1);
  EXPECT_FALSE(executor.Schedule([&ran_after] { ++ran_after; }));
  executor.Shutdown();  // again: returns at once
  EXPECT_EQ(ran_after, 1);
}

TEST(StopExecutorTest, DestructionRunsQueuedTasksAndJoins) {
  Gate gate;
  int ran = 0;
  {
    StopExecutor executor(1);
    ASSERT_TRUE(executor.Schedule([&gate] { gate.Enter(0); }));
    ASSERT_TRUE(executor.Schedule([&ran] { ++ran; }));
    ASSERT_TRUE(gate.AwaitRunning(1));
    gate.Open();
  }
  EXPECT_EQ(gate.finished(), 1);
  EXPECT_EQ(ran, 1);
}

TEST(StopExecutorTest, ZeroThreadsMeansOne) {
  StopExecutor executor(0);
  int ran = 0;
  ASSERT_TRUE(executor.Schedule([&ran] { ++ran; }));
  executor.Shutdown();
  EXPECT_EQ(ran, 1);
}

}  // namespace
}  // namespace rwexport
