// Issue 12, checkpoints of aggregation state through the server, in process
// (lib/durable/checkpoints.md): a checkpoint is taken once the log written since the last one
// exceeds --checkpoint_log_bytes, not only on --checkpoint_interval; a checkpoint that does not
// restore is set aside (moved to corrupt/, counted) and the export replayed in full from the
// log; and an export whose target is down is checkpointed (its points are in the durable target
// queue) and, after a crash, ends with exactly the points and figures of a run without it.
// A crash is what export_recovery_test simulates: the data directory's files copied as they
// are while the server runs, and a new server started on the copy.
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/durable/file_util.h"
#include "rwexport/durable/v1/checkpoint.pb.h"
#include "server/server.h"
#include "tests/testing/fake_receiver.h"

namespace rwexport {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr int kSamplesPerBatch = 10;

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(base != nullptr ? base : "/tmp", "/ckptserver.XXXXXX");
  return mkdtemp(templ.data()) != nullptr ? templ : "";
}

// The total size of the files in `dir`.
int64_t DirBytes(const std::string& dir) {
  int64_t bytes = 0;
  absl::StatusOr<std::vector<std::string>> files = ListFiles(dir);
  EXPECT_TRUE(files.ok()) << files.status();
  for (const std::string& f : files.ok() ? *files : std::vector<std::string>{}) {
    absl::StatusOr<std::string> contents = ReadFileContents(absl::StrCat(dir, "/", f));
    if (contents.ok()) bytes += static_cast<int64_t>(contents->size());
  }
  return bytes;
}

class CheckpointServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    // On a whole second: batch i falls in window i.
    base_ns_ = absl::ToUnixSeconds(absl::Now() - absl::Seconds(40)) * int64_t{1000000000};
  }

  ServerOptions Options(const std::string& data_dir) const {
    ServerOptions options;
    options.data_dir = data_dir;
    options.workers = 1;
    options.exports.aggregator.lateness = absl::Milliseconds(500);
    options.exports.default_delivery_timeout = absl::Seconds(1);
    options.exports.checkpoint_interval = absl::Hours(1);
    options.shutdown_grace = absl::ZeroDuration();
    return options;
  }

  std::unique_ptr<Server> Start(ServerOptions options) {
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  // Starts an export of http_reqs (1 s windows) to the receiver.
  std::string StartExport(Server& server) {
    v1::StartExportRequest request;
    request.set_test_run_id("ckpt");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    target->set_include_default_metrics(false);
    target->add_metrics()->set_source_metric("http_reqs");
    target->set_resample_rate(1);
    absl::StatusOr<v1::StartExportResponse> started = server.registry().Start(request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->export_id() : "";
  }

  // Batch `i`: kSamplesPerBatch http_reqs samples of value 1 in second i after base_ns_, as
  // one StreamSamples call (answered once logged).
  void Stream(Server& server, const std::string& id, int i) {
    v1::SampleBatch batch;
    batch.set_export_id(id);
    for (int n = 0; n < kSamplesPerBatch; ++n) {
      v1::Sample* s = batch.add_samples();
      s->set_metric("http_reqs");
      s->set_time_unix_nano(base_ns_ + int64_t{i} * 1000000000 + 500000000);
      s->set_value(1);
    }
    std::unique_ptr<v1::ExportService::Stub> stub = server.NewStub();
    grpc::ClientContext context;
    v1::StreamSamplesResponse response;
    std::unique_ptr<grpc::ClientWriter<v1::SampleBatch>> writer =
        stub->StreamSamples(&context, &response);
    writer->Write(batch);
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.accepted(), uint64_t{kSamplesPerBatch});
  }

  v1::ExportStatus Status(Server& server, const std::string& id) {
    std::shared_ptr<Export> e = server.registry().Find(id);
    EXPECT_NE(e, nullptr);
    return e != nullptr ? e->Status() : v1::ExportStatus();
  }

  // Waits (bounded) until the export has written `n` checkpoints.
  void AwaitCheckpoints(Server& server, const std::string& id, uint64_t n) {
    for (int i = 0; i < 500 && Status(server, id).checkpoints_written() < n; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_GE(Status(server, id).checkpoints_written(), n);
  }

  // A crash: the data directory's files as they are now, in a new directory.
  std::string CrashCopy(const std::string& data) {
    const std::string copy = absl::StrCat(data, "-crashed");
    EXPECT_EQ(std::system(absl::StrCat("cp -a '", data, "' '", copy, "'").c_str()), 0);
    return copy;
  }

  // The points the receiver stored (answered 2xx) from its `from`th request on: timestamp ->
  // value (one series), and how many in all (a point stored twice counts twice).
  std::map<int64_t, double> Received(size_t from, uint64_t* count) const {
    std::map<int64_t, double> points;
    *count = 0;
    const std::vector<ReceivedRequest> requests = receiver_->Requests();
    for (size_t r = from; r < requests.size(); ++r) {
      if (requests[r].answer.status / 100 != 2) continue;
      for (const auto& ts : requests[r].write_request.timeseries()) {
        for (const auto& sample : ts.samples()) {
          points[sample.timestamp()] = sample.value();
          ++*count;
        }
      }
    }
    return points;
  }

  // What a run without a crash gives, whatever its length: one point per 1 s window from the
  // first batch's on, each the counter's total through that window (batches 0..batches-1,
  // one per second), and no other.
  void ExpectCounterPoints(const std::map<int64_t, double>& points, int batches) const {
    ASSERT_FALSE(points.empty());
    const int64_t first_end = (base_ns_ / 1000000000 + 1) * 1000;
    EXPECT_EQ(points.begin()->first, first_end);
    int64_t expected_ts = first_end;
    for (const auto& [ts, value] : points) {
      EXPECT_EQ(ts, expected_ts) << "a window missing";
      expected_ts = ts + 1000;
      const int64_t windows = (ts - first_end) / 1000 + 1;
      EXPECT_EQ(value, std::min<int64_t>(windows, batches) * kSamplesPerBatch) << ts;
    }
    EXPECT_EQ(points.rbegin()->second, batches * kSamplesPerBatch);
  }

  std::unique_ptr<FakeReceiver> receiver_;
  std::string dir_;
  int64_t base_ns_ = 0;
};

TEST_F(CheckpointServerTest, ACheckpointIsTakenOnceTheLogSinceTheLastOneExceedsTheBytes) {
  constexpr int64_t kLogBytes = 4096;
  for (const bool by_bytes : {false, true}) {
    SCOPED_TRACE(by_bytes ? "--checkpoint_log_bytes=4096" : "--checkpoint_log_bytes=0");
    const std::string data = absl::StrCat(dir_, "/data-", by_bytes);
    ServerOptions options = Options(data);
    options.exports.checkpoint_log_bytes = by_bytes ? kLogBytes : 0;  // the interval: 1 h
    std::unique_ptr<Server> server = Start(options);
    ASSERT_NE(server, nullptr);
    const std::string id = StartExport(*server);
    absl::SleepFor(absl::Milliseconds(300));  // the checkpoint thread has seen the export
    int batches = 0;
    int64_t log_bytes = 0;
    while (batches < 60 && Status(*server, id).checkpoints_written() == 0) {
      Stream(*server, id, batches++);
      // A checkpoint is not taken before the log holds the bytes (ticks of 100 ms).
      log_bytes = DirBytes(data + "/wal");
      if (log_bytes < kLogBytes) {
        EXPECT_EQ(Status(*server, id).checkpoints_written(), 0u) << log_bytes;
      } else if (by_bytes) {
        AwaitCheckpoints(*server, id, 1);
      } else {
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    if (by_bytes) {
      EXPECT_EQ(Status(*server, id).checkpoints_written(), 1u);
      EXPECT_GE(log_bytes, kLogBytes);
      EXPECT_LT(batches, 60);
      absl::StatusOr<std::vector<std::string>> files = ListFiles(data + "/checkpoints");
      ASSERT_TRUE(files.ok());
      EXPECT_THAT(*files, ::testing::ElementsAre(id + ".binpb"));
    } else {
      // 60 batches, far beyond the bytes, and five more ticks: none by the interval (1 h).
      absl::SleepFor(absl::Milliseconds(500));
      EXPECT_EQ(Status(*server, id).checkpoints_written(), 0u);
      EXPECT_GE(log_bytes, 2 * kLogBytes);
    }
    server.reset();
  }
}

TEST_F(CheckpointServerTest, ACheckpointThatDoesNotRestoreIsSetAsideAndTheLogReplayedInFull) {
  const std::string data = dir_ + "/data";
  ServerOptions options = Options(data);
  options.exports.checkpoint_interval = absl::Milliseconds(100);
  std::unique_ptr<Server> server = Start(options);
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport(*server);
  for (int i = 0; i < 5; ++i) Stream(*server, id, i);
  AwaitCheckpoints(*server, id, 1);
  for (int i = 5; i < 10; ++i) Stream(*server, id, i);
  const std::string crashed = CrashCopy(data);
  server.reset();

  // The checkpoint's state no longer parses (the file itself does).
  const std::string file = absl::StrCat(crashed, "/checkpoints/", id, ".binpb");
  absl::StatusOr<std::string> bytes = ReadFileContents(file);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  durable::v1::AggregationCheckpoint checkpoint;
  ASSERT_TRUE(checkpoint.ParseFromString(*bytes));
  ASSERT_FALSE(checkpoint.aggregation_state().empty());
  checkpoint.set_aggregation_state("\xff\xff");
  ASSERT_TRUE(WriteFileAtomically(file, checkpoint.SerializeAsString()).ok());

  ServerOptions restart = Options(crashed);  // no new checkpoint (1 h)
  server = Start(restart);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->checkpoints_set_aside(), 1u);
  EXPECT_EQ(server->checkpoints_restored(), 0u);
  absl::StatusOr<std::vector<std::string>> checkpoints = ListFiles(crashed + "/checkpoints");
  ASSERT_TRUE(checkpoints.ok());
  EXPECT_THAT(*checkpoints, IsEmpty());
  absl::StatusOr<std::vector<std::string>> corrupt = ListFiles(crashed + "/corrupt");
  ASSERT_TRUE(corrupt.ok());
  EXPECT_THAT(*corrupt, SizeIs(1));
  // Replayed in full: the log was not truncated (one segment of 64 MiB).
  const v1::ExportStatus status = Status(*server, id);
  EXPECT_EQ(status.checkpoint_unix_ms(), 0);
  EXPECT_EQ(status.replayed_batches(), 10u);
  EXPECT_EQ(status.replayed_samples(), 10u * kSamplesPerBatch);
  const size_t before = receiver_->Requests().size();
  absl::StatusOr<v1::StopExportResponse> stopped = server->registry().Stop(id, absl::Seconds(5));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 10u * kSamplesPerBatch);
  uint64_t count = 0;
  const std::map<int64_t, double> points = Received(before, &count);
  ASSERT_FALSE(points.empty());
  EXPECT_EQ(points.rbegin()->second, 10 * kSamplesPerBatch);  // the counter's exact total
}

// Issue 12, checkpoints while a target is down (lib/durable/checkpoints.md): the first windows
// are delivered, then the target answers 503, so the later windows wait in its durable queue
// (<data_dir>/queue); the export is checkpointed anyway and its log truncated behind the
// checkpoint; more batches follow; a crash. The restart (target back) delivers the queue files
// (windows before and after the checkpoint), rebuilds the windows after the checkpoint without
// sending them again, and the target ends with every window exactly once, with the counter's
// totals; points_sent is exactly what the target stored (the delivered windows, those of the
// queue files and the rest).
TEST_F(CheckpointServerTest, AnExportWhoseTargetIsDownIsCheckpointedAndEndsExact) {
  const std::string data = dir_ + "/data";
  ServerOptions options = Options(data);
  options.exports.checkpoint_interval = absl::Milliseconds(100);
  options.wal_segment_bytes = 1024;  // a few batches per segment
  std::unique_ptr<Server> server = Start(options);
  ASSERT_NE(server, nullptr);
  const std::string id = StartExport(*server);
  for (int i = 0; i < 5; ++i) Stream(*server, id, i);
  v1::ExportStatus status;
  for (int i = 0; i < 500; ++i) {  // windows delivered, none pending
    status = Status(*server, id);
    if (status.figures(0).points_sent() >= 4 && status.figures(0).points_pending() == 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(status.figures(0).points_sent(), 4u);
  receiver_->SetDefault(FakeResponse::WithStatus(503));
  for (int i = 5; i < 15; ++i) Stream(*server, id, i);
  const uint64_t written = Status(*server, id).checkpoints_written();
  AwaitCheckpoints(*server, id, written + 1);  // one after the 15 batches
  status = Status(*server, id);
  ASSERT_EQ(status.figures_size(), 1);
  EXPECT_GT(status.figures(0).points_pending(), 0u);  // the target is down
  for (int i = 15; i < 20; ++i) Stream(*server, id, i);
  // The log was truncated behind a checkpoint: its first segment is gone.
  absl::StatusOr<std::vector<std::string>> segments = ListFiles(data + "/wal");
  ASSERT_TRUE(segments.ok()) << segments.status();
  EXPECT_THAT(*segments, ::testing::Not(::testing::Contains("00000000000000000001.wal")));
  const std::string crashed = CrashCopy(data);
  server.reset();  // the target is still down: nothing more was delivered

  receiver_->SetDefault(FakeResponse{});
  server = Start(Options(crashed));
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->checkpoints_restored(), 1u);
  EXPECT_EQ(server->checkpoints_set_aside(), 0u);
  status = Status(*server, id);
  EXPECT_GT(status.checkpoint_unix_ms(), 0);
  EXPECT_LT(status.checkpoint_replayed_batches(), 20u);
  absl::StatusOr<v1::StopExportResponse> stopped = server->registry().Stop(id, absl::Seconds(5));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 20u * kSamplesPerBatch);
  EXPECT_EQ(stopped->samples_rejected(), 0u);
  uint64_t count = 0;
  const std::map<int64_t, double> points = Received(0, &count);
  ExpectCounterPoints(points, 20);
  EXPECT_EQ(count, points.size()) << "a point stored twice";
  ASSERT_EQ(stopped->targets_size(), 1);
  EXPECT_EQ(stopped->targets(0).points_sent(), count);
  EXPECT_EQ(stopped->targets(0).points_dropped(), 0u);
}

}  // namespace
}  // namespace rwexport
