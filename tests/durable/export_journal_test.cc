// The export journal's records (lib/durable/export_journal.h): encoding, replay at open, and
// truncation once the exports whose records a segment holds have stopped.
#include "lib/durable/export_journal.h"

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/durable/wal_testing.h"

namespace rwexport {
namespace {

TEST(JournalRecordTest, BatchAndStoppedRecordsRoundTrip) {
  const std::string batch(
      "\x0a\x03"
      "abc",
      5);
  // The record's views point into its bytes: keep them.
  const std::string bytes = EncodeBatchRecord("export-1", "stream-7", 300, batch);
  absl::StatusOr<JournalRecord> r = DecodeJournalRecord(bytes);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->type, JournalRecordType::kBatch);
  EXPECT_EQ(r->export_id, "export-1");
  EXPECT_EQ(r->stream_id, "stream-7");
  EXPECT_EQ(r->sequence, 300u);
  EXPECT_EQ(r->batch, batch);
  // type 1, len 8 "export-1", len 8 "stream-7", varint 300 (0xac 0x02), the batch.
  EXPECT_EQ(EncodeBatchRecord("export-1", "stream-7", 300, batch).size(), 1 + 9 + 9 + 2 + 5u);

  const std::string stop = EncodeStoppedRecord("export-1");
  absl::StatusOr<JournalRecord> stopped = DecodeJournalRecord(stop);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->type, JournalRecordType::kStopped);
  EXPECT_EQ(stopped->export_id, "export-1");
  const std::string checkpoint = EncodeCheckpointRecord("export-1");
  EXPECT_EQ(checkpoint, std::string("\x03\x08"
                                    "export-1",
                                    10));
  absl::StatusOr<JournalRecord> marked = DecodeJournalRecord(checkpoint);
  ASSERT_TRUE(marked.ok()) << marked.status();
  EXPECT_EQ(marked->type, JournalRecordType::kCheckpoint);
  EXPECT_EQ(marked->export_id, "export-1");
}

TEST(JournalRecordTest, MalformedRecordsAreDataLoss) {
  EXPECT_EQ(DecodeJournalRecord("").status().message(), "journal record: empty");
  EXPECT_EQ(DecodeJournalRecord(std::string("\x09\x01x", 3)).status().message(),
            "journal record: unknown type 9");
  EXPECT_EQ(DecodeJournalRecord(std::string("\x01\x05x", 3)).status().message(),
            "journal record: bad export id");
  EXPECT_EQ(DecodeJournalRecord(std::string("\x02\x01xy", 4)).status().message(),
            "journal record: bytes after a stop");
  EXPECT_EQ(DecodeJournalRecord(std::string("\x03\x01xy", 4)).status().message(),
            "journal record: bytes after a checkpoint");
}

absl::Status AppendSync(ExportJournal& journal, const std::string& id, const std::string& batch) {
  std::promise<absl::Status> done;
  journal.Append(id, "s", 0, batch, [&done](absl::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

TEST(ExportJournalTest, ReplaysEveryRecordInOrderAndTruncatesBehindRunningExports) {
  WalOptions options;
  options.dir = testing_wal::MakeTempDir();
  options.segment_bytes = 64;  // about one record per segment
  {
    absl::StatusOr<std::unique_ptr<ExportJournal>> journal = ExportJournal::Open(
        options, nullptr, [](const JournalRecord&) { return absl::OkStatus(); });
    ASSERT_TRUE(journal.ok()) << journal.status();
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(AppendSync(**journal, "a", std::string(60, 'a' + i)).ok());
    }
    ASSERT_TRUE(AppendSync(**journal, "b", std::string(60, 'x')).ok());
    ASSERT_TRUE(AppendSync(**journal, "a", std::string(60, 'd')).ok());
    const int64_t segments = (*journal)->Figures().segments;
    EXPECT_GE(segments, 5);
    // "a" stops: the segments before b's first record go.
    ASSERT_TRUE((*journal)->ExportStopped("a").ok());
    EXPECT_EQ((*journal)->segments_truncated(), 3);
  }
  std::vector<std::string> replayed;
  absl::StatusOr<std::unique_ptr<ExportJournal>> journal =
      ExportJournal::Open(options, nullptr, [&replayed](const JournalRecord& r) {
        replayed.push_back(absl::StrCat(r.type == JournalRecordType::kBatch ? "batch " : "stop ",
                                        r.export_id, r.batch.empty() ? "" : " ",
                                        r.batch.substr(0, 1)));
        return absl::OkStatus();
      });
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_EQ(replayed, (std::vector<std::string>{"batch b x", "batch a d", "stop a"}));
  // b is still running: its record stays; once it stops, everything before the last segment.
  ASSERT_TRUE((*journal)->ExportStopped("b").ok());
  EXPECT_GE((*journal)->segments_truncated(), 2);
}

// A checkpoint lets the log be truncated behind a running export: the segments before the
// checkpoint's record go (not those of another running export's oldest record), and a
// reopened log replays from there with each record's position.
TEST(ExportJournalTest, ACoveredCheckpointTruncatesBehindARunningExport) {
  WalOptions options;
  options.dir = testing_wal::MakeTempDir();
  options.segment_bytes = 64;  // about one record per segment
  WalPosition covers;
  {
    absl::StatusOr<std::unique_ptr<ExportJournal>> journal = ExportJournal::Open(
        options, nullptr, [](const JournalRecord&) { return absl::OkStatus(); });
    ASSERT_TRUE(journal.ok()) << journal.status();
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(AppendSync(**journal, "a", std::string(60, 'a' + i)).ok());
    }
    absl::StatusOr<WalPosition> marked = (*journal)->MarkCheckpoint("a");
    ASSERT_TRUE(marked.ok()) << marked.status();
    covers = *marked;
    ASSERT_TRUE(AppendSync(**journal, "a", std::string(60, 'e')).ok());
    // Written, not yet covered (the checkpoint file is not durable): nothing goes.
    EXPECT_EQ((*journal)->segments_truncated(), 0);
    ASSERT_TRUE((*journal)->CheckpointCovered("a", covers).ok());
    EXPECT_EQ((*journal)->segments_truncated(), 4);  // the four segments of a..d
  }
  std::vector<std::string> replayed;
  std::vector<WalPosition> positions;
  absl::StatusOr<std::unique_ptr<ExportJournal>> journal =
      ExportJournal::Open(options, nullptr, [&](const JournalRecord& r) {
        replayed.push_back(
            absl::StrCat(r.type == JournalRecordType::kCheckpoint ? "checkpoint " : "batch ",
                         r.export_id, r.batch.empty() ? "" : " ", r.batch.substr(0, 1)));
        positions.push_back(r.position);
        return absl::OkStatus();
      });
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_EQ(replayed, (std::vector<std::string>{"checkpoint a", "batch a e"}));
  ASSERT_EQ(positions.size(), 2u);
  EXPECT_EQ(positions[0], covers);
  EXPECT_GT(positions[1], covers);

  // Another running export's oldest record holds the log back.
  ASSERT_TRUE(AppendSync(**journal, "b", std::string(60, 'x')).ok());
  const int64_t before = (*journal)->segments_truncated();
  absl::StatusOr<WalPosition> later = (*journal)->MarkCheckpoint("a");
  ASSERT_TRUE(later.ok()) << later.status();
  ASSERT_TRUE((*journal)->CheckpointCovered("a", *later).ok());
  // The segment of a's first checkpoint record and "e" (a 3-byte record leaves room for the
  // next one) goes; b's segment and after stay.
  EXPECT_EQ((*journal)->segments_truncated() - before, 1);
}

// A batch appended with its owner is written from the caller's bytes (not copied) and reads
// back as the same record as a copied one; the journal lets go of the owner once written.
TEST(ExportJournalTest, ABatchWithItsOwnerIsLoggedAsACopiedOneIs) {
  EXPECT_EQ(EncodeBatchRecordHead("export-1", "stream-7", 300) + "batch",
            EncodeBatchRecord("export-1", "stream-7", 300, "batch"));
  WalOptions options;
  options.dir = testing_wal::MakeTempDir();
  std::weak_ptr<const std::string> released;
  {
    absl::StatusOr<std::unique_ptr<ExportJournal>> journal = ExportJournal::Open(
        options, nullptr, [](const JournalRecord&) { return absl::OkStatus(); });
    ASSERT_TRUE(journal.ok()) << journal.status();
    auto owner = std::make_shared<const std::string>("<prefix>the batch bytes");
    released = owner;
    const absl::string_view batch = absl::string_view(*owner).substr(8);
    std::promise<absl::Status> done;
    (*journal)->Append("export-1", "a:stream", 7, batch, std::move(owner),
                       [&done](absl::Status s) { done.set_value(std::move(s)); });
    ASSERT_TRUE(done.get_future().get().ok());
    EXPECT_TRUE(released.expired());
    ASSERT_TRUE(AppendSync(**journal, "export-1", "copied").ok());
  }
  std::vector<std::string> replayed;
  absl::StatusOr<std::unique_ptr<ExportJournal>> journal =
      ExportJournal::Open(options, nullptr, [&replayed](const JournalRecord& r) {
        replayed.push_back(
            absl::StrCat(r.export_id, " ", r.stream_id, " ", r.sequence, " ", r.batch));
        return absl::OkStatus();
      });
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_EQ(replayed, (std::vector<std::string>{"export-1 a:stream 7 the batch bytes",
                                                "export-1 s 0 copied"}));
}

}  // namespace
}  // namespace rwexport
