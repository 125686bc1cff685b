// JournalReplayer: the log's batches handed back to a running export, in order, with each
// acknowledged (IngestSamples) stream's sequence applied once and restored afterwards; a
// StreamSamples stream's batches all applied; records of unknown exports skipped.
#include "lib/export/journal_replay.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/durable/export_journal.h"
#include "lib/durable/wal_ingest_journal.h"
#include "lib/export/export.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace {

// `samples` http_reqs samples of value 1, serialized.
std::string CounterBatch(int samples) {
  v1::SampleBatch batch;
  const int64_t ts = absl::ToUnixNanos(absl::Now() - absl::Seconds(30));
  for (int i = 0; i < samples; ++i) {
    v1::Sample* s = batch.add_samples();
    s->set_metric("http_reqs");
    s->set_time_unix_nano(ts);
    s->set_value(1);
  }
  return batch.SerializeAsString();
}

JournalRecord Batch(absl::string_view export_id, absl::string_view stream, uint64_t sequence,
                    const std::string& bytes, WalPosition position = {}) {
  JournalRecord record;
  record.position = position;
  record.type = JournalRecordType::kBatch;
  record.export_id = export_id;
  record.stream_id = stream;
  record.sequence = sequence;
  record.batch = bytes;
  return record;
}

// A running export of http_reqs whose target is not there.
std::string StartExport(ExportRegistry* registry) {
  v1::StartExportRequest request;
  request.set_test_run_id("replay");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url("http://127.0.0.1:1/api/v1/write");
  target->add_metrics()->set_source_metric("http_reqs");
  absl::StatusOr<v1::StartExportResponse> started = registry->Start(request);
  EXPECT_TRUE(started.ok()) << started.status();
  return started.ok() ? started->export_id() : "";
}

ExportOptions QuickOptions() {
  ExportOptions options;
  options.default_delivery_timeout = absl::Milliseconds(10);  // the target is not there
  return options;
}

TEST(JournalReplayTest, EachAcknowledgedSequenceIsAppliedOnceAndRestored) {
  WorkerPool pool(1);
  Sender sender;
  ExportRegistry registry(&pool, &sender, QuickOptions());
  const std::string id = StartExport(&registry);
  ASSERT_FALSE(id.empty());

  const std::string one = CounterBatch(1), two = CounterBatch(2), three = CounterBatch(3);
  const std::string acked = absl::StrCat(kAckedStreamPrefix, "agent-7");
  JournalReplayer replayer(&registry);
  // Acknowledged stream: 1, 2, then 2 again (journaled again after a failed fsync), then 3.
  ASSERT_TRUE(replayer.Apply(Batch(id, acked, 1, one)).ok());
  ASSERT_TRUE(replayer.Apply(Batch(id, acked, 2, two)).ok());
  ASSERT_TRUE(replayer.Apply(Batch(id, acked, 2, two)).ok());
  ASSERT_TRUE(replayer.Apply(Batch(id, acked, 3, three)).ok());
  // A StreamSamples stream numbers its batches from 0: both applied.
  ASSERT_TRUE(replayer.Apply(Batch(id, "1700000000-4", 0, one)).ok());
  ASSERT_TRUE(replayer.Apply(Batch(id, "1700000000-4", 1, one)).ok());
  // An export that is not running: skipped.
  ASSERT_TRUE(replayer.Apply(Batch("gone", acked, 1, three)).ok());
  const ReplayTotals totals = replayer.Finish();

  EXPECT_EQ(totals.batches, 5u);
  EXPECT_EQ(totals.samples, 8u);  // 1 + 2 + 3 + 1 + 1
  EXPECT_EQ(totals.duplicate_batches, 1u);
  EXPECT_EQ(totals.skipped_batches, 1u);
  EXPECT_EQ(totals.exports, 1u);
  std::shared_ptr<Export> e = registry.Find(id);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->Status().samples_accepted(), 8u);
  // The client that resumes "agent-7" finds it through sequence 3: its resent 1..3 are
  // duplicates, 4 is next.
  absl::StatusOr<Export::IngestStreamState> state = e->AttachIngestStream("agent-7");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->applied_through, 3u);
  EXPECT_EQ(state->durable_through, 3u);
  // And with the stream's counts (1 + 2 + 3, the duplicate once): the acks of the resumed
  // call carry them, so the client's totals include batches whose ack the crash lost.
  EXPECT_EQ(state->accepted, 6u);
  EXPECT_EQ(state->rejected, 0u);
  e->DetachIngestStream("agent-7", *state);
  // The StreamSamples stream is no IngestSamples stream.
  EXPECT_EQ(e->Status().ingest_streams(), 1u);
}

// With a checkpoint: records before its position are in its state, and so are batches after
// it whose stream's sequence it covers; the rest is applied. An acknowledged stream's
// sequence comes back from the checkpoint even when none of its records follows.
TEST(JournalReplayTest, ACheckpointSkipsWhatItCoversAndRestoresItsStreams) {
  WorkerPool pool(1);
  Sender sender;
  ExportRegistry registry(&pool, &sender, QuickOptions());
  const std::string id = StartExport(&registry);
  ASSERT_FALSE(id.empty());
  const std::string one = CounterBatch(1), two = CounterBatch(2), four = CounterBatch(4);
  const std::string acked = absl::StrCat(kAckedStreamPrefix, "agent-7");
  const std::string quiet = absl::StrCat(kAckedStreamPrefix, "agent-9");
  const std::string streamed = "1700000000-4";

  JournalReplayer replayer(&registry);
  const WalPosition covers{3, 32};
  replayer.UseCheckpoint(id, covers, {{acked, 2}, {quiet, 5}, {streamed, 0}});
  replayer.UseCheckpoint("gone", covers, {{acked, 9}});  // not running: ignored
  // Before the checkpoint: in its state.
  ASSERT_TRUE(replayer.Apply(Batch(id, acked, 1, four, {2, 32})).ok());
  ASSERT_TRUE(replayer.Apply(Batch(id, streamed, 0, four, {2, 100})).ok());
  JournalRecord mark;
  mark.type = JournalRecordType::kCheckpoint;
  mark.export_id = id;
  mark.position = covers;
  ASSERT_TRUE(replayer.Apply(mark).ok());
  // After it: agent-7's 2 and the stream's 0 were applied before the checkpoint and appended
  // after it; agent-7's 3 and the stream's 1 are new.
  ASSERT_TRUE(replayer.Apply(Batch(id, acked, 2, four, {3, 43})).ok());
  ASSERT_TRUE(replayer.Apply(Batch(id, streamed, 0, four, {3, 200})).ok());
  ASSERT_TRUE(replayer.Apply(Batch(id, acked, 3, two, {3, 300})).ok());
  ASSERT_TRUE(replayer.Apply(Batch(id, streamed, 1, one, {4, 32})).ok());
  const ReplayTotals totals = replayer.Finish();

  EXPECT_EQ(totals.checkpoints_used, 1u);
  EXPECT_EQ(totals.checkpointed_batches, 4u);
  EXPECT_EQ(totals.checkpoint_records_missing, 0u);
  EXPECT_EQ(totals.batches, 2u);
  EXPECT_EQ(totals.samples, 3u);
  EXPECT_EQ(totals.duplicate_batches, 0u);
  std::shared_ptr<Export> e = registry.Find(id);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->Status().samples_accepted(), 3u);  // the state itself is the caller's to restore
  absl::StatusOr<Export::IngestStreamState> state = e->AttachIngestStream("agent-7");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->applied_through, 3u);
  e->DetachIngestStream("agent-7", *state);
  absl::StatusOr<Export::IngestStreamState> restored = e->AttachIngestStream("agent-9");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->applied_through, 5u);
  e->DetachIngestStream("agent-9", *restored);
}

// A checkpoint whose record the log no longer has: what follows is applied, and it is counted.
TEST(JournalReplayTest, ACheckpointWhoseRecordIsMissingIsCounted) {
  WorkerPool pool(1);
  Sender sender;
  ExportRegistry registry(&pool, &sender, QuickOptions());
  const std::string id = StartExport(&registry);
  ASSERT_FALSE(id.empty());
  JournalReplayer replayer(&registry);
  replayer.UseCheckpoint(id, WalPosition{3, 32}, {});
  ASSERT_TRUE(replayer.Apply(Batch(id, "1700000000-4", 0, CounterBatch(2), {5, 32})).ok());
  const ReplayTotals totals = replayer.Finish();
  EXPECT_EQ(totals.checkpoint_records_missing, 1u);
  EXPECT_EQ(totals.batches, 1u);
  EXPECT_EQ(totals.samples, 2u);
}

}  // namespace
}  // namespace rwexport
