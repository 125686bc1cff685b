// A full disk, without root: RLIMIT_FSIZE makes writes past a size fail with EFBIG, as ENOSPC
// would on a full file system. A test binary of its own, since the limit is process-wide.
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/durable/wal.h"
#include "tests/durable/wal_testing.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using testing_wal::AppendSync;
using testing_wal::FileSize;
using testing_wal::MakeTempDir;
using testing_wal::Payload;
using testing_wal::ReplayAll;

constexpr int kFrame = 108;  // a 100-byte record on disk

// Sets the soft RLIMIT_FSIZE for the scope; SIGXFSZ ignored so writes fail with EFBIG.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved_);
    struct rlimit limit = saved_;
    limit.rlim_cur = bytes;
    ok_ = setrlimit(RLIMIT_FSIZE, &limit) == 0;
  }
  ~FileSizeLimit() { Restore(); }
  void Restore() {
    if (ok_) setrlimit(RLIMIT_FSIZE, &saved_);
    ok_ = false;
  }
  bool ok() const { return ok_; }

 private:
  struct rlimit saved_;
  bool ok_ = false;
};

TEST(WalDiskFullTest, FailsWithTheCauseAcknowledgesNothingMoreAndResumes) {
  WalOptions options;
  options.dir = MakeTempDir();
  auto opened = Wal::Open(options, nullptr);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Wal& wal = **opened;
  const std::string segment = wal.SegmentPath(1);
  std::vector<std::string> acknowledged;

  FileSizeLimit limit(32 + 10 * kFrame + 50);  // room for 10 records and half of the 11th
  ASSERT_TRUE(limit.ok());
  for (int i = 0; i < 10; ++i) {
    auto pos = AppendSync(wal, Payload(i, 100));
    ASSERT_TRUE(pos.ok()) << pos.status();
    acknowledged.push_back(Payload(i, 100));
  }
  // The 11th crosses the limit: a partial write, then EFBIG.
  auto full = AppendSync(wal, Payload(10, 100));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full.status().message(),
            absl::StrCat("file size limit reached writing ", segment, ": File too large"));
  // The segment was truncated back to its durable end: no partial record left behind.
  EXPECT_EQ(FileSize(segment), 32 + 10 * kFrame);

  // Concurrent appends while the disk stays full: every one fails, none is acknowledged.
  std::atomic<int> failed{0};
  std::atomic<int> succeeded{0};
  std::atomic<int> done{0};
  for (int i = 0; i < 20; ++i) {
    wal.Append(Payload(100 + i, 100), [&](absl::Status s, WalPosition) {
      if (s.code() == absl::StatusCode::kResourceExhausted) ++failed;
      if (s.ok()) ++succeeded;
      ++done;
    });
  }
  auto last = AppendSync(wal, Payload(200, 100));  // queued after the 20: done after them
  EXPECT_EQ(last.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(done.load(), 20);
  EXPECT_EQ(failed.load(), 20);
  EXPECT_EQ(succeeded.load(), 0);
  EXPECT_EQ(FileSize(segment), 32 + 10 * kFrame);
  WalFigures f = wal.Figures();
  EXPECT_EQ(f.records_appended, 10);
  EXPECT_EQ(f.records_failed, 22);
  EXPECT_GE(f.write_errors, 2);
  EXPECT_THAT(f.last_error, HasSubstr("File too large"));
  EXPECT_EQ(f.durable_end, (WalPosition{1, 32 + 10 * kFrame}));

  // Space returns: the next append succeeds, in the same segment, right after the last good
  // record.
  limit.Restore();
  for (int i = 0; i < 5; ++i) {
    auto pos = AppendSync(wal, Payload(300 + i, 100));
    ASSERT_TRUE(pos.ok()) << pos.status();
    EXPECT_EQ(*pos, (WalPosition{1, static_cast<uint64_t>(32 + (10 + i) * kFrame)}));
    acknowledged.push_back(Payload(300 + i, 100));
  }
  f = wal.Figures();
  EXPECT_EQ(f.records_appended, 15);

  opened->reset();
  WalRecoveryReport report;
  auto reopened = Wal::Open(options, &report);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE(report.clean()) << report.Summary();
  auto records = ReplayAll(**reopened);
  ASSERT_TRUE(records.ok()) << records.status();
  std::vector<std::string> replayed;
  for (const auto& r : *records) replayed.push_back(r.payload);
  EXPECT_EQ(replayed, acknowledged);
}

// Full before the first record: creating a segment fails, and a later append creates it.
TEST(WalDiskFullTest, SegmentCreationFailsAndIsRetried) {
  WalOptions options;
  options.dir = MakeTempDir();
  auto opened = Wal::Open(options, nullptr);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Wal& wal = **opened;
  {
    FileSizeLimit limit(10);  // not even a header fits
    ASSERT_TRUE(limit.ok());
    auto full = AppendSync(wal, "x");
    EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(full.status().message(),
                HasSubstr(absl::StrCat("creating ", wal.SegmentPath(1), ": File too large")));
    EXPECT_EQ(FileSize(wal.SegmentPath(1)), -1);  // the half-made segment was removed
    EXPECT_EQ(wal.Figures().segments, 0);
  }
  auto pos = AppendSync(wal, "y");
  ASSERT_TRUE(pos.ok()) << pos.status();
  EXPECT_EQ(*pos, (WalPosition{1, 32}));
}

}  // namespace
}  // namespace rwexport
