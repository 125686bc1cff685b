#include "lib/common/allocator.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rwexport {
namespace {

TEST(AllocatorTest, NamesTheAllocatorAndHowItCameIn) {
  const std::string description = AllocatorDescription();
  const char* name = AllocatorName(CurrentAllocator());
  EXPECT_EQ(description.rfind(name, 0), 0u) << description;
  if (CurrentAllocator() == Allocator::kGlibc) {
    EXPECT_EQ(description, "glibc malloc");
  }
  EXPECT_STREQ(AllocatorName(Allocator::kJemalloc), "jemalloc");
  EXPECT_STREQ(AllocatorName(Allocator::kTcmalloc), "tcmalloc");
}

// Sanitizers replace malloc and count nothing the allocator would; the figure is only checked
// where the allocator reports one.
TEST(AllocatorTest, HeapInUseCountsALiveBlockAndReleaseKeepsIt) {
  const uint64_t before = HeapInUseBytes();
  if (before == 0) GTEST_SKIP() << "this allocator reports no heap figure";
  constexpr size_t kSize = 64 << 20;
  char* block = static_cast<char*>(std::malloc(kSize));
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kSize);
  EXPECT_GE(HeapInUseBytes(), before + kSize);
  ReleaseFreeMemory();  // frees nothing live
  EXPECT_EQ(block[kSize - 1], 1);
  EXPECT_GE(HeapInUseBytes(), before + kSize);
  std::free(block);
  EXPECT_LT(HeapInUseBytes(), before + kSize);
}

TEST(AllocatorTest, ResidencyIsJemallocsOnly) {
  const AllocatorResidency residency = CurrentAllocatorResidency();
  if (CurrentAllocator() != Allocator::kJemalloc) {
    EXPECT_EQ(residency.resident, 0u);
    EXPECT_EQ(residency.metadata, 0u);
    return;
  }
  EXPECT_GT(residency.metadata, 0u);
  EXPECT_GE(residency.resident, residency.metadata);
}

TEST(AllocatorTest, FlushThreadCacheKeepsLiveBlocks) {
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(std::make_unique<char[]>(256));
  blocks.resize(32);  // freed into this thread's cache (jemalloc)
  const uint64_t before = HeapInUseBytes();
  FlushThreadCache();
  ReleaseFreeMemory();
  EXPECT_EQ(HeapInUseBytes(), before);  // only free blocks moved
  for (auto& block : blocks) block[255] = 1;
}

}  // namespace
}  // namespace rwexport
