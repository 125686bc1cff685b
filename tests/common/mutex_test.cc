#include "lib/common/mutex.h"

#include <chrono>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

struct Counter {
  Mutex mu;
  int value ABSL_GUARDED_BY(mu) = 0;
};

TEST(MutexTest, LockSerializesIncrementsFromManyThreads) {
  Counter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&counter] {
      for (int i = 0; i < 10000; ++i) {
        MutexLock lock(&counter.mu);
        ++counter.value;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  MutexLock lock(&counter.mu);
  EXPECT_EQ(counter.value, 40000);
}

TEST(MutexTest, ExplicitLockAndUnlock) {
  Counter counter;
  counter.mu.Lock();
  counter.value = 5;
  counter.mu.Unlock();
  // Another thread can take it now.
  std::thread other([&counter] {
    MutexLock lock(&counter.mu);
    counter.value += 1;
  });
  other.join();
  MutexLock lock(&counter.mu);
  EXPECT_EQ(counter.value, 6);
}

TEST(CondVarTest, WaitForTimesOutWithoutSignal) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  const auto start = std::chrono::steady_clock::now();
  // Spurious wake-ups are allowed to return true, so loop until a timeout is reported, bounded.
  bool signalled = true;
  for (int i = 0; i < 100 && signalled; ++i) {
    signalled = cv.WaitFor(&mu, std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(signalled);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
}

TEST(CondVarTest, SignalWakesAWaiter) {
  Mutex mu;
  CondVar cv;
  bool ready = false;
  bool woke = false;
  std::thread waiter([&] {
    MutexLock lock(&mu);
    while (!ready) cv.Wait(&mu);
    woke = true;
    cv.Signal();
  });
  {
    MutexLock lock(&mu);
    ready = true;
    cv.Signal();
  }
  {
    MutexLock lock(&mu);
    // Bounded: the waiter signals back once it woke.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!woke && std::chrono::steady_clock::now() < give_up) {
      cv.WaitFor(&mu, std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(woke);
  }
  waiter.join();
}

TEST(CondVarTest, WaitForReturnsTrueWhenSignalled) {
  Mutex mu;
  CondVar cv;
  bool waiting = false;
  bool signalled = false;
  std::thread waiter([&] {
    MutexLock lock(&mu);
    waiting = true;
    cv.SignalAll();  // tells the main thread the waiter is about to wait
    // Waits long enough that only a signal (or a spurious wake-up) ends it early.
    signalled = cv.WaitFor(&mu, std::chrono::seconds(10));
  });
  {
    MutexLock lock(&mu);
    while (!waiting) cv.Wait(&mu);
    // The waiter holds no lock only once it is inside WaitFor, so this signal reaches it.
    cv.SignalAll();
  }
  const auto start = std::chrono::steady_clock::now();
  waiter.join();
  EXPECT_TRUE(signalled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(CondVarTest, SignalAllWakesEveryWaiter) {
  Mutex mu;
  CondVar cv;
  bool go = false;
  int waiting = 0;
  int woken = 0;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&] {
      MutexLock lock(&mu);
      ++waiting;
      cv.SignalAll();
      while (!go) cv.Wait(&mu);
      ++woken;
    });
  }
  {
    MutexLock lock(&mu);
    while (waiting < 3) cv.Wait(&mu);
    go = true;
    cv.SignalAll();
  }
  for (std::thread& t : waiters) t.join();
  MutexLock lock(&mu);
  EXPECT_EQ(woken, 3);
}

}  // namespace
}  // namespace rwexport
