#include "lib/aggregate/worker_pool.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/mutex.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// Remembers which thread ran each task, in the order tasks ran.
struct Recorder {
  Mutex mu;
  CondVar cv;
  std::vector<int> order ABSL_GUARDED_BY(mu);
  std::vector<std::thread::id> threads ABSL_GUARDED_BY(mu);

  void Record(int task) {
    MutexLock lock(&mu);
    order.push_back(task);
    threads.push_back(std::this_thread::get_id());
    cv.SignalAll();
  }
  // True once `n` tasks ran; false after 10 s.
  bool WaitFor(size_t n) {
    MutexLock lock(&mu);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (order.size() < n) {
      if (std::chrono::steady_clock::now() >= give_up) return false;
      cv.WaitFor(&mu, std::chrono::milliseconds(100));
    }
    return true;
  }
};

TEST(WorkerPoolTest, SizeIsTheNumberOfWorkers) {
  WorkerPool pool(3);
  EXPECT_EQ(pool.size(), 3u);
}

TEST(WorkerPoolTest, ZeroWorkersMeansOne) {
  WorkerPool pool(0);
  EXPECT_EQ(pool.size(), 1u);
  Recorder recorder;
  pool.Post(0, [&] { recorder.Record(1); });
  pool.Post(5, [&] { recorder.Record(2); });  // wraps to worker 0
  ASSERT_TRUE(recorder.WaitFor(2));
  MutexLock lock(&recorder.mu);
  EXPECT_THAT(recorder.order, ElementsAre(1, 2));
}

TEST(WorkerPoolTest, TasksOnOneWorkerRunInPostOrder) {
  WorkerPool pool(4);
  Recorder recorder;
  // The first task blocks the worker until every other task is queued behind it.
  Mutex gate_mu;
  CondVar gate_cv;
  bool open = false;
  pool.Post(2, [&] {
    MutexLock lock(&gate_mu);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!open && std::chrono::steady_clock::now() < give_up) {
      gate_cv.WaitFor(&gate_mu, std::chrono::milliseconds(100));
    }
  });
  std::vector<int> expected;
  for (int i = 0; i < 1000; ++i) {
    pool.Post(2, [&recorder, i] { recorder.Record(i); });
    expected.push_back(i);
  }
  {
    MutexLock lock(&gate_mu);
    open = true;
    gate_cv.SignalAll();
  }
  ASSERT_TRUE(recorder.WaitFor(1000));
  MutexLock lock(&recorder.mu);
  EXPECT_THAT(recorder.order, ElementsAreArray(expected));
  // All on one thread, and not the test's.
  for (const std::thread::id& id : recorder.threads) {
    EXPECT_EQ(id, recorder.threads.front());
  }
  EXPECT_NE(recorder.threads.front(), std::this_thread::get_id());
}

TEST(WorkerPoolTest, EveryTaskRunsBeforeDestructionReturns) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(3);
    for (int i = 0; i < 3000; ++i) {
      pool.Post(i % 3, [&ran] {
        // Slow enough that the queues are still full when the destructor starts.
        if (ran.fetch_add(1) % 100 == 0) std::this_thread::yield();
      });
    }
  }
  EXPECT_EQ(ran.load(), 3000);
}

TEST(WorkerPoolTest, WorkerIndexWrapsModuloSize) {
  WorkerPool pool(3);
  Recorder recorder;
  // Worker i and worker i + 3 (and i + 300) are the same thread.
  for (int task : {0, 3, 300}) pool.Post(task, [&recorder, task] { recorder.Record(task); });
  for (int task : {1, 4}) pool.Post(task, [&recorder, task] { recorder.Record(task); });
  ASSERT_TRUE(recorder.WaitFor(5));
  MutexLock lock(&recorder.mu);
  std::thread::id thread_of[301];
  for (size_t i = 0; i < recorder.order.size(); ++i) {
    thread_of[recorder.order[i]] = recorder.threads[i];
  }
  EXPECT_EQ(thread_of[0], thread_of[3]);
  EXPECT_EQ(thread_of[0], thread_of[300]);
  EXPECT_EQ(thread_of[1], thread_of[4]);
  EXPECT_NE(thread_of[0], thread_of[1]);
}

TEST(WorkerPoolTest, WorkersRunInParallel) {
  // The task on worker 0 waits for the one on worker 1: it sees it only if the two workers
  // run at the same time.
  Mutex mu;
  CondVar cv;
  bool one_ran = false;
  bool zero_saw_one = false;
  {
    WorkerPool pool(2);
    pool.Post(0, [&] {
      MutexLock lock(&mu);
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!one_ran && std::chrono::steady_clock::now() < give_up) {
        cv.WaitFor(&mu, std::chrono::milliseconds(100));
      }
      zero_saw_one = one_ran;
    });
    pool.Post(1, [&] {
      MutexLock lock(&mu);
      one_ran = true;
      cv.SignalAll();
    });
  }  // the destructor runs both tasks
  MutexLock lock(&mu);
  EXPECT_TRUE(zero_saw_one);
}

}  // namespace
}  // namespace rwexport
