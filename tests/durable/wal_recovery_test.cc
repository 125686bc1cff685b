// Recovery of damaged logs: what Wal::Open cuts, moves and reports, with exact counts.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/durable/crc32c.h"
#include "lib/durable/wal.h"
#include "tests/durable/wal_segment_bytes.h"
#include "tests/durable/wal_testing.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using testing_wal::AppendSync;
using testing_wal::Crc32cReference;
using testing_wal::FileExists;
using testing_wal::FileSize;
using testing_wal::MakeTempDir;
using testing_wal::Payload;
using testing_wal::ReplayAll;
using testing_wal::SegmentBytes;
using testing_wal::ZlibCrc;

constexpr int kRecordBytes = 100;
constexpr int kFrame = kRecordBytes + 8;  // 108 bytes on disk per record

// Writes `segments` segments of 10 records of 100 bytes each (record i holds Payload(i)).
WalOptions WriteLog(int segments) {
  WalOptions options;
  options.dir = MakeTempDir();
  options.segment_bytes = 32 + 10 * kFrame;  // rotation after exactly 10 records
  auto wal = Wal::Open(options, nullptr);
  EXPECT_TRUE(wal.ok()) << wal.status();
  for (int i = 0; i < 10 * segments; ++i) {
    auto pos = AppendSync(**wal, Payload(i, kRecordBytes));
    EXPECT_TRUE(pos.ok()) << pos.status();
    EXPECT_EQ(*pos, (WalPosition{static_cast<uint64_t>(i / 10 + 1),
                                 static_cast<uint64_t>(32 + (i % 10) * kFrame)}));
  }
  return options;
}

std::string SegmentFile(const WalOptions& options, uint64_t n) {
  return absl::StrFormat("%s/%020d.wal", options.dir, n);
}

void FlipByte(const std::string& path, int64_t offset) {
  const int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  char c;
  ASSERT_EQ(pread(fd, &c, 1, offset), 1);
  c ^= 0x20;
  ASSERT_EQ(pwrite(fd, &c, 1, offset), 1);
  close(fd);
}

void AppendBytes(const std::string& path, const std::string& bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Replays `wal`: `count` records, the last one Payload(last); then a new append lands at `next`.
void ExpectReplayAndNextAppend(Wal& wal, size_t count, int last, WalPosition next) {
  auto records = ReplayAll(wal);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), count);
  EXPECT_EQ(records->back().payload, Payload(last, kRecordBytes));
  auto pos = AppendSync(wal, "new");
  ASSERT_TRUE(pos.ok()) << pos.status();
  EXPECT_EQ(*pos, next);
}

// The bytes of a one-segment log of 5 records of 20 bytes (28 on disk each).
std::string FiveRecordSegment() {
  WalOptions options;
  options.dir = MakeTempDir();
  {
    auto wal = Wal::Open(options, nullptr);
    EXPECT_TRUE(wal.ok()) << wal.status();
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(AppendSync(**wal, Payload(i, 20)).ok());
  }
  std::string bytes;
  EXPECT_TRUE(ReadFile(SegmentFile(options, 1), &bytes));
  EXPECT_EQ(bytes.size(), 32u + 5 * 28);
  return bytes;
}

// Opens the log again and expects it clean with `records` records.
void ExpectCleanReopen(const WalOptions& options, int records) {
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_TRUE(report.clean()) << report.Summary();
  EXPECT_EQ(report.records, records);
}

TEST(WalRecoveryTest, FlippedByteInTheLastRecordCutsIt) {
  const WalOptions options = WriteLog(1);
  const std::string path = SegmentFile(options, 1);
  ASSERT_EQ(FileSize(path), 32 + 10 * kFrame);
  FlipByte(path, 32 + 9 * kFrame + 8 + 50);  // inside the 10th record's payload

  {
    WalRecoveryReport report;
    auto wal = Wal::Open(options, &report);
    ASSERT_TRUE(wal.ok()) << wal.status();
    EXPECT_EQ(report.records, 9);
    EXPECT_EQ(report.bytes_cut, kFrame);
    ASSERT_EQ(report.cuts.size(), 1u);
    EXPECT_EQ(report.cuts[0].segment, 1u);
    EXPECT_EQ(report.cuts[0].offset, static_cast<uint64_t>(32 + 9 * kFrame));
    EXPECT_EQ(report.cuts[0].bytes, static_cast<uint64_t>(kFrame));
    EXPECT_TRUE(report.cuts[0].last_segment);
    EXPECT_THAT(report.cuts[0].reason, HasSubstr("crc mismatch in the record at offset 1004"));
    ASSERT_EQ(report.messages.size(), 1u);
    EXPECT_THAT(report.messages[0], HasSubstr(absl::StrCat("cut 108 bytes of ", path)));
    EXPECT_EQ(report.end, (WalPosition{1, 32 + 9 * kFrame}));
    EXPECT_EQ(FileSize(path), 32 + 9 * kFrame);
    // New appends go to a fresh segment.
    ExpectReplayAndNextAppend(**wal, 9, 8, {2, 32});
  }
  ExpectCleanReopen(options, 10);
}

// Opens the log with a damaged last segment and expects one cut in it: `records` kept,
// `bytes` cut for `reason`, the segment ending after the last record kept.
void ExpectOneTailCut(const WalOptions& options, int records, int64_t bytes,
                      const std::string& reason) {
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_EQ(report.records, records);
  EXPECT_EQ(report.bytes_cut, bytes);
  ASSERT_EQ(report.cuts.size(), 1u);
  EXPECT_TRUE(report.cuts[0].last_segment);
  EXPECT_THAT(report.cuts[0].reason, HasSubstr(reason));
  EXPECT_EQ(FileSize(SegmentFile(options, 1)), 32 + records * kFrame);
}

TEST(WalRecoveryTest, RecordTruncatedMidWayIsCut) {
  const WalOptions options = WriteLog(1);
  ASSERT_EQ(truncate(SegmentFile(options, 1).c_str(), 32 + 10 * kFrame - 5), 0);
  ExpectOneTailCut(options, 9, kFrame - 5,
                   "truncated record at offset 1004: 100-byte payload, 95 bytes present");
  ExpectCleanReopen(options, 9);
}

TEST(WalRecoveryTest, TruncatedFrameHeaderIsCut) {
  const WalOptions options = WriteLog(1);
  // 3 bytes of the 10th frame.
  ASSERT_EQ(truncate(SegmentFile(options, 1).c_str(), 32 + 9 * kFrame + 3), 0);
  ExpectOneTailCut(options, 9, 3, "truncated record frame (3 bytes) at offset 1004");
}

TEST(WalRecoveryTest, GarbageAfterTheLastRecordIsCut) {
  const WalOptions options = WriteLog(1);
  const std::string path = SegmentFile(options, 1);
  AppendBytes(path, std::string(100, '\xab'));  // length 0xabababab: over the maximum
  ExpectOneTailCut(options, 10, 100, "record length 2880154539 over the maximum");
  // Zeros (a file extended but never written, as after a crash on some file systems): a record
  // of length 0 is corrupt, so they never replay as empty records.
  AppendBytes(path, std::string(4096, '\0'));
  ExpectOneTailCut(options, 10, 4096, "record of length 0 at offset 1112");
  ExpectCleanReopen(options, 10);
}

// A corrupt record in a segment that is not the last: the rest of that segment is cut, the
// later segments are still read.
TEST(WalRecoveryTest, CorruptRecordInTheMiddleOfAnEarlierSegment) {
  const WalOptions options = WriteLog(3);
  const std::string path = SegmentFile(options, 2);
  FlipByte(path, 32 + 3 * kFrame + 8 + 10);  // the 4th record of segment 2 (record 13)
  {
    WalRecoveryReport report;
    auto wal = Wal::Open(options, &report);
    ASSERT_TRUE(wal.ok()) << wal.status();
    EXPECT_EQ(report.segments, 3);
    EXPECT_EQ(report.records, 23);
    EXPECT_EQ(report.bytes_cut, 7 * kFrame);
    ASSERT_EQ(report.cuts.size(), 1u);
    EXPECT_EQ(report.cuts[0].segment, 2u);
    EXPECT_EQ(report.cuts[0].offset, static_cast<uint64_t>(32 + 3 * kFrame));
    EXPECT_FALSE(report.cuts[0].last_segment);
    ASSERT_EQ(report.messages.size(), 1u);
    EXPECT_THAT(report.messages[0], HasSubstr("NOT the last segment"));
    EXPECT_EQ(report.lost_segments, 0);
    EXPECT_EQ(FileSize(path), 32 + 3 * kFrame);
    auto records = ReplayAll(**wal);
    ASSERT_TRUE(records.ok()) << records.status();
    ASSERT_EQ(records->size(), 23u);
    std::vector<int> expected;
    for (int i = 0; i < 13; ++i) expected.push_back(i);
    for (int i = 20; i < 30; ++i) expected.push_back(i);
    for (size_t r = 0; r < records->size(); ++r) {
      EXPECT_EQ((*records)[r].payload, Payload(expected[r], kRecordBytes)) << r;
    }
    EXPECT_EQ(records->back().position, (WalPosition{3, 32 + 9 * kFrame}));
  }
  ExpectCleanReopen(options, 23);
}

// Open with a replay callback hands over, in the same pass, exactly what Replay returns after
// a plain Open, also when recovery cuts and sets aside.
TEST(WalRecoveryTest, OpenWithReplayGivesWhatReplayGives) {
  const WalOptions options = WriteLog(5);
  FlipByte(SegmentFile(options, 2), 32 + 3 * kFrame + 8 + 10);  // cuts segment 2 after 3
  ASSERT_EQ(unlink(SegmentFile(options, 4).c_str()), 0);        // a gap: 5 is set aside
  std::vector<testing_wal::Record> during;
  WalRecoveryReport report;
  const WalPosition from{1, 32 + 5 * kFrame};  // the 6th record
  auto wal = Wal::Open(options, &report, from, [&](WalPosition p, absl::string_view payload) {
    during.push_back({p, std::string(payload)});
    return absl::OkStatus();
  });
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_EQ(report.records, 23);
  EXPECT_EQ(report.lost_segments, 1);
  auto after = ReplayAll(**wal, from);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(during.size(), 18u);  // 5 + 3 + 10
  ASSERT_EQ(after->size(), during.size());
  for (size_t i = 0; i < during.size(); ++i) {
    EXPECT_EQ(during[i].position, (*after)[i].position) << i;
    EXPECT_EQ(during[i].payload, (*after)[i].payload) << i;
  }
  EXPECT_EQ(during.front().payload, Payload(5, kRecordBytes));
  EXPECT_EQ(during.back().payload, Payload(29, kRecordBytes));
  wal->reset();

  // An error of the callback fails Open with it.
  auto failed = Wal::Open(options, nullptr, {}, [](WalPosition, absl::string_view) {
    return absl::InternalError("aggregation refused");
  });
  EXPECT_EQ(failed.status(), absl::InternalError("aggregation refused"));
}

// A missing segment: records up to the gap, the segments after it set aside in lost/.
TEST(WalRecoveryTest, MissingSegmentMovesTheLaterOnesToLost) {
  const WalOptions options = WriteLog(4);
  ASSERT_EQ(unlink(SegmentFile(options, 2).c_str()), 0);
  {
    WalRecoveryReport report;
    auto wal = Wal::Open(options, &report);
    ASSERT_TRUE(wal.ok()) << wal.status();
    EXPECT_EQ(report.segments, 1);
    EXPECT_EQ(report.records, 10);
    EXPECT_EQ(report.bytes_cut, 0);
    EXPECT_EQ(report.lost_segments, 2);
    EXPECT_EQ(report.lost_bytes, 2 * (32 + 10 * kFrame));
    EXPECT_EQ(report.lost_files,
              (std::vector<std::string>{absl::StrFormat("%s/lost/%020d.wal", options.dir, 3),
                                        absl::StrFormat("%s/lost/%020d.wal", options.dir, 4)}));
    EXPECT_FALSE(report.clean());
    ASSERT_EQ(report.messages.size(), 3u);
    EXPECT_THAT(report.messages[0],
                HasSubstr("wal gap: segment 3 follows segment 2 but the log before it ends at "
                          "segment 1"));
    EXPECT_THAT(report.Summary(), HasSubstr("2 segments (2224 bytes) moved to lost/"));
    EXPECT_FALSE(FileExists(SegmentFile(options, 3)));
    EXPECT_TRUE(FileExists(report.lost_files[1]));
    EXPECT_EQ(report.next_segment, 5u);  // above every segment seen: positions only grow
    ExpectReplayAndNextAppend(**wal, 10, 9, {5, 32});
  }
  // Segment 5 names segment 1 as the one before it: the log is contiguous again.
  ExpectCleanReopen(options, 11);
}

// A last segment shorter than a header: a creation interrupted by the crash. It is deleted.
TEST(WalRecoveryTest, InterruptedSegmentCreationIsDeleted) {
  const WalOptions options = WriteLog(2);
  const std::string partial = SegmentFile(options, 3);
  {
    const int fd = open(partial.c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "RWEXWAL", 7), 7);
    close(fd);
  }
  ASSERT_TRUE(FileExists(options.dir + "/notes.txt") == false);
  AppendBytes(options.dir + "/notes.txt", "not a segment");  // ignored
  {
    WalRecoveryReport report;
    auto wal = Wal::Open(options, &report);
    ASSERT_TRUE(wal.ok()) << wal.status();
    EXPECT_EQ(report.records, 20);
    EXPECT_EQ(report.bytes_cut, 7);
    ASSERT_EQ(report.cuts.size(), 1u);
    EXPECT_EQ(report.cuts[0].segment, 3u);
    EXPECT_THAT(report.cuts[0].reason, HasSubstr("interrupted segment creation"));
    EXPECT_EQ(report.lost_segments, 0);
    EXPECT_FALSE(FileExists(partial));
    EXPECT_EQ(report.next_segment, 4u);
    ExpectReplayAndNextAppend(**wal, 20, 19, {4, 32});
  }
  ExpectCleanReopen(options, 21);
  EXPECT_TRUE(FileExists(options.dir + "/notes.txt"));
}

// An earlier segment whose header is damaged: the log ends before it.
TEST(WalRecoveryTest, DamagedHeaderOfAnEarlierSegmentIsAGap) {
  const WalOptions options = WriteLog(3);
  FlipByte(SegmentFile(options, 2), 2);  // in the magic
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_EQ(report.records, 10);
  EXPECT_EQ(report.lost_segments, 2);
  ASSERT_EQ(report.messages.size(), 2u);
  EXPECT_THAT(report.messages[0], HasSubstr("its header is unreadable: not a WAL segment header"));
  EXPECT_EQ(report.next_segment, 4u);
}

// Segments of format version 1 (zlib's CRC-32, written before version 2) are still read;
// appends go to a new version-2 segment after them, and the mixed log reopens cleanly.
TEST(WalRecoveryTest, Version1SegmentsAreStillRead) {
  WalOptions options;
  options.dir = MakeTempDir();
  std::vector<std::string> first, second;
  for (int i = 0; i < 3; ++i) first.push_back(Payload(i, kRecordBytes));
  for (int i = 3; i < 5; ++i) second.push_back(Payload(i, kRecordBytes));
  WriteFile(SegmentFile(options, 1), SegmentBytes(1, 1, 0, first, &ZlibCrc));
  WriteFile(SegmentFile(options, 2), SegmentBytes(1, 2, 1, second, &ZlibCrc));
  {
    WalRecoveryReport report;
    auto wal = Wal::Open(options, &report);
    ASSERT_TRUE(wal.ok()) << wal.status();
    EXPECT_TRUE(report.clean()) << report.Summary();
    EXPECT_EQ(report.records, 5);
    ExpectReplayAndNextAppend(**wal, 5, 4, {3, 32});
  }
  std::string bytes;
  ASSERT_TRUE(ReadFile(SegmentFile(options, 3), &bytes));
  ASSERT_GE(bytes.size(), 32u);
  EXPECT_EQ(bytes[8], 2) << "new segments are written in version 2";
  EXPECT_EQ(bytes.substr(32 + 8), "new");
  ExpectCleanReopen(options, 6);
  // A version-1 segment whose record was damaged is still checked (with its own CRC).
  FlipByte(SegmentFile(options, 2), 32 + 8 + 5);
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_EQ(report.records, 4);  // segment 1, none of segment 2, "new" in segment 3
  ASSERT_EQ(report.cuts.size(), 1u);
  EXPECT_EQ(report.cuts[0].segment, 2u);
  EXPECT_THAT(report.cuts[0].reason, HasSubstr("crc mismatch in the record at offset 32"));
}

// Version 2's checksum is CRC-32C: a segment written by hand with it reads back.
TEST(WalRecoveryTest, Version2IsCrc32c) {
  WalOptions options;
  options.dir = MakeTempDir();
  const std::vector<std::string> records = {"a", Payload(1, 5000)};
  WriteFile(SegmentFile(options, 1), SegmentBytes(2, 1, 0, records, &Crc32cReference));
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_TRUE(report.clean()) << report.Summary();
  auto replayed = ReplayAll(**wal);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  ASSERT_EQ(replayed->size(), 2u);
  EXPECT_EQ((*replayed)[1].payload, records[1]);
}

// A segment of a format this build does not know (a newer build's) is never misread: it is set
// aside like a damaged header, and the message names the version.
TEST(WalRecoveryTest, UnknownVersionIsSetAsideNamingIt) {
  WalOptions options;
  options.dir = MakeTempDir();
  WriteFile(SegmentFile(options, 1), SegmentBytes(1, 1, 0, {"old"}, &ZlibCrc));
  WriteFile(SegmentFile(options, 2), SegmentBytes(3, 2, 1, {"future"}, &ZlibCrc));
  WalRecoveryReport report;
  auto wal = Wal::Open(options, &report);
  ASSERT_TRUE(wal.ok()) << wal.status();
  EXPECT_EQ(report.records, 1);
  EXPECT_EQ(report.lost_segments, 1);
  ASSERT_FALSE(report.messages.empty());
  EXPECT_THAT(report.messages.back(),
              HasSubstr("unknown segment format version 3 (this build reads 1 and 2)"));
}

// Every possible torn write: the log cut at each byte offset recovers exactly the records that
// lie wholly before the cut, and cuts the rest.
TEST(WalRecoveryTest, CutAtEveryOffsetKeepsExactlyTheWholeRecords) {
  const std::string bytes = FiveRecordSegment();
  for (size_t cut = 32; cut <= bytes.size(); ++cut) {
    WalOptions options;
    options.dir = MakeTempDir();
    WriteFile(SegmentFile(options, 1), bytes.substr(0, cut));
    WalRecoveryReport report;
    auto wal = Wal::Open(options, &report);
    ASSERT_TRUE(wal.ok()) << cut << ": " << wal.status();
    const int whole = static_cast<int>((cut - 32) / 28);
    EXPECT_EQ(report.records, whole) << cut;
    EXPECT_EQ(report.bytes_cut, static_cast<int64_t>(cut - 32 - 28 * whole)) << cut;
    EXPECT_EQ(FileSize(SegmentFile(options, 1)), static_cast<int64_t>(32 + 28 * whole)) << cut;
  }
}

// Every possible single-byte corruption is detected: a flip in record k keeps records 0..k-1;
// a flip in the header sets the segment aside.
TEST(WalRecoveryTest, FlipAtEveryOffsetIsDetected) {
  const std::string bytes = FiveRecordSegment();
  for (size_t at = 0; at < bytes.size(); ++at) {
    WalOptions options;
    options.dir = MakeTempDir();
    std::string damaged = bytes;
    damaged[at] ^= 0x01;
    WriteFile(SegmentFile(options, 1), damaged);
    WalRecoveryReport report;
    auto wal = Wal::Open(options, &report);
    ASSERT_TRUE(wal.ok()) << at << ": " << wal.status();
    if (at < 32) {
      EXPECT_EQ(report.records, 0) << at;
      EXPECT_EQ(report.lost_segments, 1) << at;
      continue;
    }
    const int k = static_cast<int>((at - 32) / 28);
    EXPECT_EQ(report.records, k) << at;
    EXPECT_EQ(report.bytes_cut, static_cast<int64_t>(28 * (5 - k))) << at;
  }
}

}  // namespace
}  // namespace rwexport
