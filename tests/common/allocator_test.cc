#include "lib/common/allocator.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace rwexport {
namespace {

TEST(AllocatorTest, NamesTheAllocatorAndHowItCameIn) {
  const std::string description = AllocatorDescription();
  const char* name = AllocatorName(CurrentAllocator());
  EXPECT_EQ(description.rfind(name, 0), 0u) << description;
  if (CurrentAllocator() == Allocator::kGlibc) EXPECT_EQ(description, "glibc malloc");
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

}  // namespace
}  // namespace rwexport
