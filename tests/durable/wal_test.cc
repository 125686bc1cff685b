#include "lib/durable/wal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/mutex.h"
#include "tests/durable/wal_testing.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using testing_wal::AppendSync;
using testing_wal::FileExists;
using testing_wal::MakeTempDir;
using testing_wal::Payload;
using testing_wal::ReplayAll;

TEST(ParseFsyncPolicyTest, AcceptsAlwaysAndIntervals) {
  auto always = ParseFsyncPolicy("always");
  ASSERT_TRUE(always.ok()) << always.status();
  EXPECT_EQ(always->kind, FsyncPolicy::Kind::kAlways);
  EXPECT_EQ(FsyncPolicyToString(*always), "always");

  auto interval = ParseFsyncPolicy("interval:100ms");
  ASSERT_TRUE(interval.ok()) << interval.status();
  EXPECT_EQ(interval->kind, FsyncPolicy::Kind::kInterval);
  EXPECT_EQ(interval->interval, absl::Milliseconds(100));
  EXPECT_EQ(FsyncPolicyToString(*interval), "interval:100ms");
  EXPECT_EQ(FsyncPolicy().kind, FsyncPolicy::Kind::kAlways);  // the default
}

TEST(ParseFsyncPolicyTest, RejectsBadValuesNamingThem) {
  for (const char* bad : {"interval:", "sometimes", "interval:-1s", "interval:0s", "interval:1",
                          "interval:inf", "", "Always"}) {
    auto policy = ParseFsyncPolicy(bad);
    ASSERT_FALSE(policy.ok()) << bad;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(policy.status().message(), HasSubstr(absl::StrCat("\"", bad, "\""))) << bad;
  }
}

TEST(WalPositionTest, OrderedAsTheLog) {
  EXPECT_LT((WalPosition{1, 500}), (WalPosition{2, 32}));
  EXPECT_LT((WalPosition{2, 32}), (WalPosition{2, 40}));
  EXPECT_EQ((WalPosition{2, 40}), (WalPosition{2, 40}));
  EXPECT_EQ(WalPositionToString({3, 1024}), "3:1024");
}

// The segments a sequence of one-record groups fills: rotation happens at the first group
// boundary at or past segment_bytes.
std::vector<WalPosition> ExpectedPositions(const std::vector<size_t>& sizes, uint64_t segment_bytes,
                                           uint64_t first_segment) {
  std::vector<WalPosition> out;
  uint64_t segment = first_segment;
  uint64_t size = kWalHeaderBytes;
  for (size_t s : sizes) {
    if (size >= segment_bytes) {
      ++segment;
      size = kWalHeaderBytes;
    }
    out.push_back({segment, size});
    size += kWalFrameBytes + s;
  }
  return out;
}

TEST(WalTest, RoundTripAcrossSegmentsAndReopen) {
  WalOptions options;
  options.dir = MakeTempDir() + "/wal";  // created by Open
  options.segment_bytes = 1000;
  std::vector<size_t> sizes;
  for (int i = 0; i < 50; ++i) sizes.push_back(100 + i);
  const std::vector<WalPosition> expected = ExpectedPositions(sizes, 1000, 1);
  ASSERT_EQ(expected.back().segment, 7u);

  {
    WalRecoveryReport report;
    auto wal = Wal::Open(options, &report);
    ASSERT_TRUE(wal.ok()) << wal.status();
    EXPECT_TRUE(report.clean());
    EXPECT_EQ(report.records, 0);
    EXPECT_EQ(report.next_segment, 1u);
    for (int i = 0; i < 50; ++i) {
      auto pos = AppendSync(**wal, Payload(i, sizes[i]));
      ASSERT_TRUE(pos.ok()) << pos.status();
      EXPECT_EQ(*pos, expected[i]) << i;
    }
    WalFigures f = (*wal)->Figures();
    EXPECT_EQ(f.records_appended, 50);
    EXPECT_EQ(f.bytes_appended, 50 * 100 + 49 * 50 / 2);
    EXPECT_EQ(f.groups, 50);
    EXPECT_EQ(f.fsyncs, 50);
    EXPECT_EQ(f.largest_group, 1);
    EXPECT_EQ(f.segments, 7);
    EXPECT_EQ(f.bytes_on_disk, 7 * 32 + 50 * 8 + 50 * 100 + 49 * 50 / 2);
    EXPECT_EQ(f.write_errors, 0);
    EXPECT_EQ(f.queued_records, 0);
    EXPECT_EQ(f.durable_end, (WalPosition{7, expected.back().offset + 8 + 149}));

    auto records = ReplayAll(**wal);
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_EQ(records->size(), 50u);
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ((*records)[i].position, expected[i]);
      EXPECT_EQ((*records)[i].payload, Payload(i, sizes[i]));
    }
  }
  for (uint64_t n = 1; n <= 7; ++n) {
    EXPECT_TRUE(FileExists(absl::StrFormat("%s/%020d.wal", options.dir, n))) << n;
  }

  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_TRUE(report.clean()) << report.Summary();
  EXPECT_EQ(report.segments, 7);
  EXPECT_EQ(report.records, 50);
  EXPECT_EQ(report.payload_bytes, 50 * 100 + 49 * 50 / 2);
  EXPECT_EQ(report.first, (WalPosition{1, 32}));
  EXPECT_EQ(report.end, (WalPosition{7, expected.back().offset + 8 + 149}));
  EXPECT_EQ(report.next_segment, 8u);
  EXPECT_TRUE(report.messages.empty());
  auto records = ReplayAll(**wal);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 50u);
  EXPECT_EQ(records->back().payload, Payload(49, 149));
  // New appends go to a fresh segment.
  auto pos = AppendSync(**wal, "after the restart");
  ASSERT_TRUE(pos.ok()) << pos.status();
  EXPECT_EQ(*pos, (WalPosition{8, 32}));
}

TEST(WalTest, ReplayFromAMiddlePosition) {
  WalOptions options;
  options.dir = MakeTempDir();
  options.segment_bytes = 1000;
  auto wal = Wal::Open(options, nullptr);
  ASSERT_TRUE(wal.ok()) << wal.status();
  std::vector<WalPosition> positions;
  for (int i = 0; i < 40; ++i) {
    auto pos = AppendSync(**wal, Payload(i, 120));
    ASSERT_TRUE(pos.ok()) << pos.status();
    positions.push_back(*pos);
  }
  // 8 records of 128 bytes per segment: after 7, 32 + 7 * 128 = 928 < 1000 leaves room.
  ASSERT_EQ(positions[8], (WalPosition{2, 32}));

  auto from20 = ReplayAll(**wal, positions[20]);
  ASSERT_TRUE(from20.ok()) << from20.status();
  ASSERT_EQ(from20->size(), 20u);
  EXPECT_EQ(from20->front().position, positions[20]);
  EXPECT_EQ(from20->front().payload, Payload(20, 120));
  EXPECT_EQ(from20->back().payload, Payload(39, 120));

  auto from_segment = ReplayAll(**wal, {3, 0});  // the start of segment 3: record 16
  ASSERT_TRUE(from_segment.ok()) << from_segment.status();
  ASSERT_EQ(from_segment->size(), 24u);
  EXPECT_EQ(from_segment->front().payload, Payload(16, 120));

  auto past_end = ReplayAll(**wal, {99, 0});
  ASSERT_TRUE(past_end.ok()) << past_end.status();
  EXPECT_TRUE(past_end->empty());

  // A callback's error stops the replay and is returned.
  int calls = 0;
  absl::Status s = (*wal)->Replay({}, [&](WalPosition, absl::string_view) {
    return ++calls == 5 ? absl::CancelledError("enough") : absl::OkStatus();
  });
  EXPECT_EQ(s, absl::CancelledError("enough"));
  EXPECT_EQ(calls, 5);
}

TEST(WalTest, GroupCommitFromManyThreads) {
  WalOptions options;
  options.dir = MakeTempDir();
  options.segment_bytes = 64 << 10;
  auto opened = Wal::Open(options, nullptr);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Wal& wal = **opened;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  constexpr int kTotal = kThreads * kPerThread;

  Mutex mu;
  CondVar all_done;
  int done_count = 0;
  std::vector<int> calls(kTotal, 0);  // guarded by mu
  std::vector<WalPosition> positions(kTotal);
  std::vector<absl::Status> statuses(kTotal);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * kPerThread + i;
        wal.Append(absl::StrCat(t, ":", i, ":", std::string(64, 'x')),
                   [&, id](absl::Status s, WalPosition p) {
                     MutexLock lock(&mu);
                     calls[id]++;
                     statuses[id] = std::move(s);
                     positions[id] = p;
                     if (++done_count == kTotal) all_done.SignalAll();
                   });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  {
    MutexLock lock(&mu);
    for (int i = 0; i < 1000 && done_count < kTotal; ++i) {
      all_done.WaitFor(&mu, std::chrono::milliseconds(100));
    }
    ASSERT_EQ(done_count, kTotal);
    for (int id = 0; id < kTotal; ++id) {
      ASSERT_EQ(calls[id], 1) << id;
      ASSERT_TRUE(statuses[id].ok()) << id << ": " << statuses[id];
    }
  }
  const WalFigures f = wal.Figures();
  EXPECT_EQ(f.records_appended, kTotal);
  EXPECT_EQ(f.records_failed, 0);
  EXPECT_LT(f.groups, kTotal);  // records shared groups
  EXPECT_EQ(f.fsyncs, f.groups);
  EXPECT_GT(f.largest_group, 1);
  EXPECT_GT(f.segments, 4);  // 4000 x 80 bytes over 64 KiB segments
  EXPECT_EQ(f.queued_records, 0);

  // Groups are split where a segment fills: no segment goes past 64 KiB by more than a record.
  for (uint64_t n = 1; n <= static_cast<uint64_t>(f.segments); ++n) {
    const int64_t size = testing_wal::FileSize(wal.SegmentPath(n));
    EXPECT_GT(size, 0) << n;
    EXPECT_LT(size, (64 << 10) + 80) << n;
  }

  auto records = ReplayAll(wal);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), static_cast<size_t>(kTotal));
  std::vector<int> next_of_thread(kThreads, 0);
  for (size_t r = 0; r < records->size(); ++r) {
    const auto& rec = (*records)[r];
    if (r > 0) {
      ASSERT_LT((*records)[r - 1].position, rec.position) << r;
    }
    const int t = rec.payload[0] - '0';
    const int i = std::stoi(rec.payload.substr(2));
    // Each thread's records are in the log in the order it appended them.
    ASSERT_EQ(i, next_of_thread[t]++) << "thread " << t;
    EXPECT_EQ(positions[t * kPerThread + i], rec.position);
  }
}

// Interval policy: `done` only after the fsync covering the record, at most one fsync per D.
TEST(WalTest, IntervalPolicyAcknowledgesOnlyAfterTheCoveringFsync) {
  WalOptions options;
  options.dir = MakeTempDir();
  options.fsync = *ParseFsyncPolicy("interval:300ms");
  auto opened = Wal::Open(options, nullptr);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Wal& wal = **opened;

  // The first record is synced at once (no fsync for a whole interval); the second waits for
  // the next slot, 300 ms after the first fsync.
  auto a = AppendSync(wal, "first");
  const auto a_done = std::chrono::steady_clock::now();
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = AppendSync(wal, "second");
  const auto b_done = std::chrono::steady_clock::now();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GE(b_done - a_done, std::chrono::milliseconds(250));
  EXPECT_EQ(wal.Figures().fsyncs, 2);

  // Many appends from 4 threads: every `done` finds its record inside the durable end.
  std::atomic<int> not_durable_at_done{0};
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  const auto start = std::chrono::steady_clock::now();
  const int64_t fsyncs_before = wal.Figures().fsyncs;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        std::string payload = Payload(t * 100 + i, 200);
        wal.Append(std::move(payload), [&](absl::Status s, WalPosition p) {
          const WalPosition end = wal.Figures().durable_end;
          if (end < WalPosition{p.segment, p.offset + kWalFrameBytes + 200}) ++not_durable_at_done;
          if (s.ok()) ++ok;
          ++done;
        });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 600 && done.load() < 400; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // bounded poll for the dones
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(done.load(), 400);
  EXPECT_EQ(ok.load(), 400);
  EXPECT_EQ(not_durable_at_done.load(), 0);
  const WalFigures f = wal.Figures();
  const int64_t fsyncs = f.fsyncs - fsyncs_before;
  // At most one fsync per 300 ms: the first may come at once, one more per elapsed interval.
  EXPECT_GE(fsyncs, 1);
  EXPECT_LE(fsyncs, 1 + elapsed / std::chrono::milliseconds(300)) << f.groups << " groups";
  EXPECT_EQ(f.records_appended, 402);
}

TEST(WalTest, AlwaysPolicySyncsEveryGroup) {
  WalOptions options;
  options.dir = MakeTempDir();
  auto opened = Wal::Open(options, nullptr);
  ASSERT_TRUE(opened.ok()) << opened.status();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(AppendSync(**opened, Payload(i, 50)).ok());
  const WalFigures f = (*opened)->Figures();
  EXPECT_EQ(f.groups, 20);
  EXPECT_EQ(f.fsyncs, 20);
  EXPECT_EQ(f.durable_end, (WalPosition{1, 32 + 20 * 58}));
}

// Pages of `path` in the page cache (mincore on a read-only mapping), or -1.
int64_t CachedPages(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    close(fd);
    return -1;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return -1;
  const long page = sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> resident((size + page - 1) / page);
  int64_t cached = -1;
  if (mincore(map, size, resident.data()) == 0) {
    cached = 0;
    for (unsigned char r : resident) cached += r & 1;
  }
  munmap(map, size);
  return cached;
}

// The log is written once and read at a restart: durable whole pages leave the page cache
// after each fsync (drop_written_pages, the default), so it does not grow with the log.
TEST(WalTest, DropsDurablePagesFromThePageCache) {
  for (bool drop : {true, false}) {
    SCOPED_TRACE(drop ? "drop_written_pages" : "keep");
    WalOptions options;
    options.dir = MakeTempDir();
    options.drop_written_pages = drop;
    auto wal = Wal::Open(options, nullptr);
    ASSERT_TRUE(wal.ok()) << wal.status();
    std::vector<std::string> payloads;
    for (int i = 0; i < 64; ++i) {  // 64 x 16 KiB: 256 pages
      payloads.push_back(Payload(i, 16 << 10));
      ASSERT_TRUE(AppendSync(**wal, payloads.back()).ok());
    }
    const std::string segment = (*wal)->SegmentPath(1);
    const int64_t cached = CachedPages(segment);
    if (drop) {
      // The folio holding the partial last page (16 KiB writes: folios of 16 KiB) stays.
      EXPECT_LE(cached, 8) << "only the pages around the end stay cached";
    } else {
      EXPECT_GE(cached, 256);
    }
    // What was dropped still reads back (from the disk).
    auto records = ReplayAll(**wal);
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_EQ(records->size(), payloads.size());
    for (size_t i = 0; i < payloads.size(); ++i) EXPECT_EQ((*records)[i].payload, payloads[i]);
    wal->reset();  // closes the segment
    if (drop) {
      EXPECT_EQ(CachedPages(segment), 0) << "a closed segment leaves the page cache whole";
    }
  }
}

TEST(WalTest, DestructorWritesWhatIsQueued) {
  WalOptions options;
  options.dir = MakeTempDir();
  options.fsync = *ParseFsyncPolicy("interval:10s");
  std::atomic<int> ok{0};
  {
    auto wal = Wal::Open(options, nullptr);
    ASSERT_TRUE(wal.ok()) << wal.status();
    for (int i = 0; i < 100; ++i) {
      (*wal)->Append(Payload(i, 30), [&](absl::Status s, WalPosition) {
        if (s.ok()) ++ok;
      });
    }
  }
  EXPECT_EQ(ok.load(), 100);
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_EQ(report.records, 100);
  EXPECT_TRUE(report.clean());
}

// A record in two pieces (a head and a body kept alive by its owner) reads back as one
// payload, checksummed as one; the WAL lets go of the owner once the record is written.
TEST(WalTest, TwoPieceRecordsReadBackJoined) {
  WalOptions options;
  options.dir = MakeTempDir();
  options.segment_bytes = 300;
  std::vector<std::string> expected;
  std::vector<std::weak_ptr<const std::string>> owners;
  {
    auto wal = Wal::Open(options, nullptr);
    ASSERT_TRUE(wal.ok()) << wal.status();
    std::atomic<int> ok{0};
    for (int i = 0; i < 12; ++i) {
      auto body = std::make_shared<const std::string>(Payload(i, 40 + 10 * i));
      owners.push_back(body);
      // Heads of 0, 1 and 9 bytes; the second record has only a head, no body.
      const std::string head = std::string(i % 3 == 0 ? 0 : i % 3 == 1 ? 1 : 9, 'h');
      const absl::string_view piece = i == 1 ? absl::string_view() : absl::string_view(*body);
      expected.push_back(head + std::string(piece));
      (*wal)->Append(head, piece, std::move(body), [&](absl::Status s, WalPosition) {
        if (s.ok()) ++ok;
      });
    }
    // An empty record in two pieces is refused like any empty record.
    auto refused = std::make_shared<absl::Status>();
    (*wal)->Append("", absl::string_view(), nullptr,
                   [refused](absl::Status s, WalPosition) { *refused = std::move(s); });
    auto last = AppendSync(**wal, "last");
    ASSERT_TRUE(last.ok()) << last.status();
    EXPECT_EQ(ok.load(), 12);
    EXPECT_EQ(refused->code(), absl::StatusCode::kInvalidArgument);
    for (size_t i = 0; i < owners.size(); ++i) EXPECT_TRUE(owners[i].expired()) << i;
    EXPECT_GT((*wal)->Figures().segments, 1);
  }
  expected.push_back("last");
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_TRUE(report.clean()) << report.Summary();
  auto records = ReplayAll(**wal);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ((*records)[i].payload, expected[i]) << i;
}

TEST(WalTest, RefusesEmptyAndOversizedRecords) {
  WalOptions options;
  options.dir = MakeTempDir();
  auto wal = Wal::Open(options, nullptr);
  ASSERT_TRUE(wal.ok()) << wal.status();
  auto empty = AppendSync(**wal, "");
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  auto huge = AppendSync(**wal, std::string(kMaxWalRecordBytes + 1, 'h'));
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(huge.status().message(), HasSubstr("67174401 bytes over the maximum of 67174400"));
  auto fine = AppendSync(**wal, "fine");
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(*fine, (WalPosition{1, 32}));
  const WalFigures f = (*wal)->Figures();
  EXPECT_EQ(f.records_failed, 2);
  EXPECT_EQ(f.records_appended, 1);
}

TEST(WalTest, TruncateBeforeDeletesWholeSegmentsButNeverTheOpenOne) {
  WalOptions options;
  options.dir = MakeTempDir();
  options.segment_bytes = 450;
  std::vector<WalPosition> positions;
  {
    auto wal = Wal::Open(options, nullptr);
    ASSERT_TRUE(wal.ok()) << wal.status();
    for (int i = 0; i < 20; ++i) {  // 4 records of 108 bytes per segment: 5 segments
      auto pos = AppendSync(**wal, Payload(i, 100));
      ASSERT_TRUE(pos.ok()) << pos.status();
      positions.push_back(*pos);
    }
    ASSERT_EQ(positions.back(), (WalPosition{5, 32 + 3 * 108}));
    // A position inside segment 4 deletes 1..3.
    auto deleted = (*wal)->TruncateBefore(positions[13]);
    ASSERT_TRUE(deleted.ok()) << deleted.status();
    EXPECT_EQ(*deleted, 3);
    EXPECT_EQ((*wal)->Figures().segments, 2);
    EXPECT_FALSE(FileExists((*wal)->SegmentPath(3)));
    EXPECT_TRUE(FileExists((*wal)->SegmentPath(4)));
    auto records = ReplayAll(**wal);
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_EQ(records->size(), 8u);
    EXPECT_EQ(records->front().position, (WalPosition{4, 32}));
    // Far past the end: segment 5 is still being written.
    deleted = (*wal)->TruncateBefore({1000, 0});
    ASSERT_TRUE(deleted.ok()) << deleted.status();
    EXPECT_EQ(*deleted, 1);
    EXPECT_TRUE(FileExists((*wal)->SegmentPath(5)));
    EXPECT_EQ((*wal)->Figures().segments, 1);
  }
  // The log now starts at segment 5: no gap.
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_TRUE(report.clean()) << report.Summary();
  EXPECT_EQ(report.records, 4);
  EXPECT_EQ(report.first, (WalPosition{5, 32}));
}

// Replay and TruncateBefore while appends go on: each replay sees a gap-free run of durable
// records in append order, the acknowledged ones included.
TEST(WalTest, ReplayAndTruncateWhileAppending) {
  WalOptions options;
  options.dir = MakeTempDir();
  options.segment_bytes = 4096;
  auto opened = Wal::Open(options, nullptr);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Wal& wal = **opened;
  std::atomic<int> acknowledged{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 1000000 && !stop.load(); ++i) {  // until the replays are done
      auto pos = AppendSync(wal, Payload(i, 100));
      if (!pos.ok()) break;
      acknowledged = i + 1;
    }
  });
  int replays = 0;
  bool truncated = false;
  int acked_previous = 0;
  for (int round = 0; round < 20; ++round) {
    // Each round after at least one more acknowledgement (a bounded poll).
    for (int w = 0; w < 5000 && acknowledged.load() == acked_previous; ++w) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const int acked_before = acknowledged.load();
    acked_previous = acked_before;
    int first = -1;
    int last = -1;
    bool in_order = true;
    absl::Status s = wal.Replay({}, [&](WalPosition, absl::string_view payload) {
      const int i = std::stoi(std::string(payload.substr(7)));
      if (first < 0) first = i;
      if (last >= 0 && i != last + 1) in_order = false;
      last = i;
      return absl::OkStatus();
    });
    // A segment deleted between the snapshot and its opening is the only allowed failure.
    if (!s.ok()) {
      EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
      continue;
    }
    ++replays;
    EXPECT_TRUE(in_order) << round;
    // Every record acknowledged before the replay is there (unless truncated away).
    if (last >= 0 || !truncated) EXPECT_GE(last + 1, acked_before) << round;
    if (round % 5 == 4 && last > 0) {
      auto deleted = wal.TruncateBefore({wal.Figures().durable_end.segment, 0});
      EXPECT_TRUE(deleted.ok()) << deleted.status();
      truncated = true;
    }
  }
  stop = true;
  writer.join();
  EXPECT_GT(replays, 15);
  EXPECT_GE(acknowledged.load(), 20);
}

TEST(WalTest, OpenRefusesBadOptions) {
  WalOptions options;
  EXPECT_EQ(Wal::Open(options, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  options.dir = MakeTempDir() + "/missing-parent/wal";
  auto wal = Wal::Open(options, nullptr);
  EXPECT_EQ(wal.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(wal.status().message(), HasSubstr("missing-parent/wal: No such file or directory"));
}

}  // namespace
}  // namespace rwexport
