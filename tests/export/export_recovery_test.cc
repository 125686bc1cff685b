// ExportRegistry with an ExportStore (rwexport_server --data_dir): records written before
// Start answers, final figures recorded at Stop and answered again to a retry, and Recover()
// bringing back what a crash left in the data directory.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/substitute.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/durable/checkpoint_store.h"
#include "lib/durable/data_dir.h"
#include "lib/durable/export_journal.h"
#include "lib/durable/export_store.h"
#include "lib/durable/file_util.h"
#include "lib/export/export.h"
#include "lib/export/journal_replay.h"
#include "lib/ingest/stream_ingester.h"
#include "lib/remote_write/sender.h"
#include "rwexport/durable/v1/export_record.pb.h"
#include "rwexport/v1/export.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/ingest.h"

namespace rwexport {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(10);

std::string TestDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "-", getpid(), "-",
                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
}

// Feeds `samples` (counter http_reqs, value 1 each, at `ts_ns`) to the export and waits until
// they are applied.
void IngestCounter(Export& e, int samples, int64_t ts_ns) {
  v1::SampleBatch batch;
  for (int i = 0; i < samples; ++i) {
    v1::Sample* s = batch.add_samples();
    s->set_metric("http_reqs");
    s->set_time_unix_nano(ts_ns);
    s->set_value(1);
  }
  StreamIngester ingester(e.aggregator());
  ASSERT_TRUE(IngestAndWait(ingester, batch).ok());
}

// The points of `requests` from the `from`th on, by timestamp (one series), into `points`.
void AddPoints(const std::vector<ReceivedRequest>& requests, size_t from,
               std::map<int64_t, double>* points) {
  for (size_t r = from; r < requests.size(); ++r) {
    for (const auto& ts : requests[r].write_request.timeseries()) {
      for (const auto& sample : ts.samples()) (*points)[sample.timestamp()] = sample.value();
    }
  }
}

// Every point of requests [from, to), floats and native histograms, by series (its labels) and
// timestamp, into `points` (a histogram as its count and sum).
void AddSeriesPoints(const std::vector<ReceivedRequest>& requests, size_t from, size_t to,
                     std::map<std::string, std::map<int64_t, std::string>>* points) {
  for (size_t r = from; r < to && r < requests.size(); ++r) {
    for (const auto& ts : requests[r].write_request.timeseries()) {
      std::string series;
      for (const auto& label : ts.labels()) {
        absl::StrAppend(&series, label.name(), "=", label.value(), ",");
      }
      for (const auto& sample : ts.samples()) {
        (*points)[series][sample.timestamp()] = absl::StrCat(sample.value());
      }
      for (const auto& h : ts.histograms()) {
        (*points)[series][h.timestamp()] =
            absl::StrCat("count=", h.count_int(), " sum=", h.sum(), " schema=", h.schema());
      }
    }
  }
}

// The write-ahead log of data directory `data`, in segments of `segment_bytes`.
WalOptions WalIn(const std::string& data, uint64_t segment_bytes) {
  WalOptions options;
  options.segment_bytes = segment_bytes;
  options.dir = data + "/wal";
  return options;
}

absl::Status NoReplay(const JournalRecord&) { return absl::OkStatus(); }

// Export::WriteCheckpoint, tried again while not allowed (points on their way to the target,
// which answers at once), for at most 5 s.
absl::Status CheckpointWhenAllowed(Export& e, ExportJournal* journal, CheckpointStore* store) {
  absl::Status written = absl::AbortedError("not tried");
  for (int attempt = 0; attempt < 500 && absl::IsAborted(written); ++attempt) {
    written = e.WriteCheckpoint(journal, store);
    if (absl::IsAborted(written)) absl::SleepFor(absl::Milliseconds(10));
  }
  return written;
}

// A data directory, a store on it and a registry using the store; Restart() drops the
// registry (without stopping its exports: what a SIGKILL leaves is the directory as it was)
// and builds new ones on a copy of the directory.
class ExportRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    Open(TestDir("data"));
  }

  void Open(const std::string& path) {
    path_ = path;
    absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(path);
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    absl::StatusOr<std::unique_ptr<ExportStore>> store = ExportStore::Open(*dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    ExportOptions options;
    options.store = store_.get();
    options.default_delivery_timeout = absl::Seconds(5);
    registry_ = std::make_unique<ExportRegistry>(&pool_, &sender_, options);
  }

  // What a crash leaves: the data directory's files as they are now, in a new directory
  // (the old registry would record its exports as stopped when destroyed), opened by a new
  // store and registry, recovered.
  RecoveryReport CrashAndRestart() {
    const std::string copy = absl::StrCat(path_, "-restarted");
    EXPECT_EQ(std::system(absl::StrCat("cp -a '", path_, "' '", copy, "'").c_str()), 0);
    old_registries_.push_back(std::move(registry_));
    old_stores_.push_back(std::move(store_));
    old_dirs_.push_back(std::move(dir_));
    Open(copy);
    absl::StatusOr<RecoveryReport> report = registry_->Recover();
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : RecoveryReport{};
  }

  // What a crash leaves, twice: the data directory's files as they are now, in `a` and `b`.
  bool CopyTwice(const std::string& a, const std::string& b) const {
    return std::system(absl::StrCat("cp -a '", path_, "' '", a, "' && cp -a '", a, "' '", b, "'")
                           .c_str()) == 0;
  }

  // What RecoverAndStop found.
  struct Recovered {
    v1::StopExportResponse stopped;
    // What the target holds: the points delivered before the crash and those sent since the
    // restart (timestamp -> value).
    std::map<int64_t, double> points;
    ReplayTotals totals;
    // Batches the checkpoint's state holds, by its streams' sequences (numbered from 0).
    uint64_t in_state = 0;
    // The receiver's requests sent since the restart: [first_request, end_request).
    size_t first_request = 0;
    size_t end_request = 0;
  };

  // What a restart of the server does with the data dir `data` (its log in `wal`): recovers
  // the registry, restores the export's checkpoint (with `use_checkpoints`), replays the log,
  // truncates it behind the checkpoint; then stops export `id`.
  Recovered RecoverAndStop(const std::string& data, const std::string& id, const WalOptions& wal,
                           bool use_checkpoints, const std::map<int64_t, double>& delivered) {
    Recovered out;
    old_registries_.push_back(std::move(registry_));
    old_stores_.push_back(std::move(store_));
    old_dirs_.push_back(std::move(dir_));
    Open(data);
    EXPECT_TRUE(registry_->Recover().ok());
    std::shared_ptr<Export> e = registry_->Find(id);
    EXPECT_NE(e, nullptr);
    if (e == nullptr) return out;
    JournalReplayer replayer(registry_.get());
    std::vector<std::pair<std::string, WalPosition>> used;
    if (use_checkpoints) {
      absl::StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(*dir_);
      EXPECT_TRUE(store.ok()) << store.status();
      absl::StatusOr<LoadedCheckpoints> loaded = (*store)->Load();
      EXPECT_TRUE(loaded.ok()) << loaded.status();
      EXPECT_THAT(loaded->checkpoints, SizeIs(1));
      for (const auto& [export_id, c] : loaded->checkpoints) {
        EXPECT_TRUE(e->aggregator()->RestoreState(c.aggregation_state()).ok());
        e->MarkRestoredFromCheckpoint(c);
        replayer.UseCheckpoint(c);
        used.emplace_back(export_id, CheckpointPosition(c));
        for (const durable::v1::StreamProgress& p : c.streams()) out.in_state += p.sequence() + 1;
      }
    }
    absl::StatusOr<std::unique_ptr<ExportJournal>> journal = ExportJournal::Open(
        wal, nullptr, [&replayer](const JournalRecord& r) { return replayer.Apply(r); });
    EXPECT_TRUE(journal.ok()) << journal.status();
    out.totals = replayer.Finish();
    for (const auto& [export_id, position] : used) {
      EXPECT_TRUE((*journal)->CheckpointCovered(export_id, position).ok());
    }
    const size_t before = receiver_->Requests().size();
    absl::StatusOr<v1::StopExportResponse> stopped = registry_->Stop(id, absl::Seconds(5));
    EXPECT_TRUE(stopped.ok()) << stopped.status();
    if (stopped.ok()) out.stopped = *stopped;
    out.points = delivered;
    AddPoints(receiver_->Requests(), before, &out.points);
    out.first_request = before;
    out.end_request = receiver_->Requests().size();
    return out;
  }

  // One target on the fake receiver, with a bearer token (kept on disk, redacted in status):
  // 1 s windows, http_reqs only, labelled with the test run id.
  v1::StartExportRequest Request(const std::string& run) const {
    v1::StartExportRequest request;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
        absl::Substitute(R"pb(
                           test_run_id: "$0"
                           targets {
                             provider: "prometheus"
                             remote_write_url: "$1"
                             credentials { token: "recovery-token" }
                             metrics { source_metric: "http_reqs" }
                             include_default_metrics: false
                             resample_rate: 1
                             include_test_run_id: true
                           }
                         )pb",
                         run, receiver_->Url()),
        &request));
    return request;
  }

  std::unique_ptr<FakeReceiver> receiver_;
  WorkerPool pool_{2};
  Sender sender_;
  std::string path_;
  // Destroyed registries first, then stores, then directories (members go bottom-up).
  std::vector<std::unique_ptr<DataDir>> old_dirs_;
  std::vector<std::unique_ptr<ExportStore>> old_stores_;
  std::vector<std::unique_ptr<ExportRegistry>> old_registries_;
  std::unique_ptr<DataDir> dir_;
  std::unique_ptr<ExportStore> store_;
  std::unique_ptr<ExportRegistry> registry_;
};

TEST_F(ExportRecoveryTest, KeepAllLeavesTheExportsRecordedForTheNextStart) {
  const std::string id = registry_->Start(Request("kept"))->export_id();
  IngestCounter(*registry_->Find(id), 5, absl::ToUnixNanos(absl::Now() - absl::Seconds(10)));
  EXPECT_EQ(registry_->KeepAll(absl::Now() + kWait), 1u);
  // A graceful stop refuses new starts and stops: the exports belong to the next start.
  absl::StatusOr<v1::StartExportResponse> started = registry_->Start(Request("late"));
  EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(started.status().message()),
              HasSubstr("keeps its exports for its next start"));
  EXPECT_EQ(registry_->Stop(id, absl::Seconds(1)).status().code(), absl::StatusCode::kUnavailable);
  registry_.reset();  // ends the exports without stopping them
  EXPECT_THAT(*ListFiles(path_ + "/exports"), ElementsAre(id + ".binpb"));
  EXPECT_THAT(*ListFiles(path_ + "/stopped"), IsEmpty());

  store_.reset();
  dir_.reset();
  Open(path_);
  absl::StatusOr<RecoveryReport> report = registry_->Recover();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->recovered, 1u);
  ASSERT_NE(registry_->Find(id), nullptr);
  EXPECT_TRUE(registry_->Stop(id, absl::Seconds(5)).ok());
}

TEST_F(ExportRecoveryTest, TheRecordExistsWhenStartAnswers) {
  const v1::StartExportRequest request = Request("recorded");
  absl::StatusOr<v1::StartExportResponse> started = registry_->Start(request);
  ASSERT_TRUE(started.ok()) << started.status();
  const std::string file = absl::StrCat(path_, "/exports/", started->export_id(), ".binpb");
  absl::StatusOr<std::string> bytes = ReadFileContents(file);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  durable::v1::ExportRecord record;
  ASSERT_TRUE(record.ParseFromString(*bytes));
  EXPECT_EQ(record.export_id(), started->export_id());
  EXPECT_EQ(record.sequence(), 1u);
  EXPECT_TRUE(MessageDifferencer::Equals(record.request(), request));  // credentials included
  EXPECT_EQ(record.started_unix_ms(), registry_->List()[0].started_unix_ms());
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ExportRecoveryTest, AnExportThatCannotBeRecordedIsNotCreated) {
  // exports/ replaced by a file: every record write fails (root ignores permission bits).
  ASSERT_EQ(
      std::system(
          absl::StrCat("rm -rf '", path_, "/exports' && touch '", path_, "/exports'").c_str()),
      0);
  absl::StatusOr<v1::StartExportResponse> started = registry_->Start(Request("unrecorded"));
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(started.status().message()),
              StartsWith("the export cannot be recorded in the data dir: cannot create a temp "
                         "file for " +
                         path_ + "/exports/"));
  EXPECT_THAT(std::string(started.status().message()), HasSubstr("Not a directory"));
  EXPECT_EQ(registry_->size(), 0u);
  EXPECT_THAT(registry_->List(), IsEmpty());
}

TEST_F(ExportRecoveryTest, StopRecordsTheFiguresAndARetryGetsTheSameAnswer) {
  const std::string id = registry_->Start(Request("stopped"))->export_id();
  IngestCounter(*registry_->Find(id), 5, absl::ToUnixNanos(absl::Now() - absl::Seconds(10)));
  absl::StatusOr<v1::StopExportResponse> first = registry_->Stop(id, absl::Seconds(5));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->samples_accepted(), 5u);
  ASSERT_EQ(first->targets_size(), 1);
  EXPECT_EQ(first->targets(0).points_sent(), 1u);  // one window of http_reqs_total
  EXPECT_THAT(*ListFiles(path_ + "/exports"), IsEmpty());
  EXPECT_THAT(*ListFiles(path_ + "/stopped"), ElementsAre(id + ".binpb"));
  EXPECT_EQ(registry_->Find(id), nullptr);

  absl::StatusOr<v1::StopExportResponse> retry = registry_->Stop(id, absl::Seconds(5));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*retry, *first));

  // And after a restart too.
  CrashAndRestart();
  EXPECT_THAT(registry_->List(), IsEmpty());
  absl::StatusOr<v1::StopExportResponse> after = registry_->Stop(id, absl::Seconds(5));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*after, *first));
  EXPECT_EQ(registry_->Stop("never-started", absl::Seconds(1)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ExportRecoveryTest, FiguresThatCannotBeRecordedKeepTheExportUntilARetryRecordsThem) {
  const std::string id = registry_->Start(Request("unrecorded-stop"))->export_id();
  IngestCounter(*registry_->Find(id), 2, absl::ToUnixNanos(absl::Now() - absl::Seconds(10)));
  // stopped/ replaced by a file: the stopped record cannot be written.
  ASSERT_EQ(
      std::system(
          absl::StrCat("rm -rf '", path_, "/stopped' && touch '", path_, "/stopped'").c_str()),
      0);
  absl::StatusOr<v1::StopExportResponse> failed = registry_->Stop(id, absl::Seconds(5));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(failed.status().message()),
              HasSubstr("the export stopped, but its final figures cannot be recorded in the "
                        "data dir"));
  EXPECT_THAT(std::string(failed.status().message()), HasSubstr("call StopExport again"));
  ASSERT_THAT(registry_->List(), SizeIs(1));
  EXPECT_EQ(registry_->List()[0].state(), v1::ExportStatus::STOPPING);
  EXPECT_THAT(*ListFiles(path_ + "/exports"), ElementsAre(id + ".binpb"));

  ASSERT_EQ(
      std::system(absl::StrCat("rm -f '", path_, "/stopped' && mkdir -m 0700 '", path_, "/stopped'")
                      .c_str()),
      0);
  absl::StatusOr<v1::StopExportResponse> retry = registry_->Stop(id, absl::Seconds(5));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->samples_accepted(), 2u);
  EXPECT_THAT(registry_->List(), IsEmpty());
  EXPECT_THAT(*ListFiles(path_ + "/exports"), IsEmpty());
  EXPECT_THAT(*ListFiles(path_ + "/stopped"), ElementsAre(id + ".binpb"));
}

TEST_F(ExportRecoveryTest, RecoverBringsBackIdConfigurationAndTestRunIdMarkedRecovered) {
  const std::string a = registry_->Start(Request("run-a"))->export_id();
  const std::string b = registry_->Start(Request("run-b"))->export_id();
  const std::vector<v1::ExportStatus> before = registry_->List();
  ASSERT_THAT(before, SizeIs(2));
  EXPECT_EQ(before[0].recovered_unix_ms(), 0);

  const absl::Time restart = absl::Now();
  const RecoveryReport report = CrashAndRestart();
  EXPECT_EQ(report.recovered, 2u);
  EXPECT_EQ(report.unrecoverable, 0u);
  EXPECT_EQ(report.corrupt, 0u);
  EXPECT_EQ(registry_->recovery().recovered, 2u);
  const std::vector<v1::ExportStatus> after = registry_->List();
  ASSERT_THAT(after, SizeIs(2));
  EXPECT_EQ(after[0].export_id(), a);
  EXPECT_EQ(after[1].export_id(), b);
  EXPECT_EQ(after[0].test_run_id(), "run-a");
  EXPECT_EQ(after[1].test_run_id(), "run-b");
  EXPECT_EQ(after[0].started_unix_ms(), before[0].started_unix_ms());
  EXPECT_GE(after[0].recovered_unix_ms(), absl::ToUnixMillis(restart));
  EXPECT_LE(after[0].recovered_unix_ms(), absl::ToUnixMillis(absl::Now()));
  // The configuration, as redacted for status: the same as before the crash.
  ASSERT_EQ(after[0].targets_size(), 1);
  EXPECT_TRUE(MessageDifferencer::Equals(after[0].targets(0), before[0].targets(0)));
  EXPECT_EQ(after[0].targets(0).credentials().token(), "REDACTED");
  EXPECT_EQ(registry_->Find(a)->sequence(), 1u);
  EXPECT_EQ(registry_->Find(b)->sequence(), 2u);
  // Registry-level recovery alone (no journal replayed here): figures start from zero.
  EXPECT_EQ(after[0].samples_accepted(), 0u);

  // A new export comes after the recovered ones, with a new id.
  const std::string c = registry_->Start(Request("run-c"))->export_id();
  EXPECT_NE(c, a);
  EXPECT_NE(c, b);
  EXPECT_EQ(registry_->Find(c)->sequence(), 3u);
  EXPECT_EQ(registry_->List()[2].recovered_unix_ms(), 0);

  // The recovered export works: its samples reach the target with its test run id, using the
  // recorded credentials.
  IngestCounter(*registry_->Find(a), 3, absl::ToUnixNanos(absl::Now() - absl::Seconds(10)));
  absl::StatusOr<v1::StopExportResponse> stopped = registry_->Stop(a, absl::Seconds(5));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 3u);
  EXPECT_EQ(stopped->targets(0).points_sent(), 1u);
  const std::vector<ReceivedRequest> requests = receiver_->Requests();
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_EQ(requests[0].Header("authorization").value_or(""), "Bearer recovery-token");
  ASSERT_EQ(requests[0].write_request.timeseries_size(), 1);
  const auto& labels = requests[0].write_request.timeseries(0).labels();
  bool run_label = false;
  for (const auto& l : labels) run_label |= l.name() == "test_run_id" && l.value() == "run-a";
  EXPECT_TRUE(run_label);
  EXPECT_EQ(requests[0].write_request.timeseries(0).samples(0).value(), 3.0);
}

TEST_F(ExportRecoveryTest, ARecordThisVersionRefusesIsSetAsideNotACrash) {
  durable::v1::ExportRecord bad;
  bad.set_export_id("0123456789abcdef");
  bad.set_sequence(4);
  bad.mutable_request()->set_test_run_id("no-targets");  // INVALID_ARGUMENT: no target
  ASSERT_TRUE(store_->PutRunning(bad).ok());
  ASSERT_TRUE(WriteFileAtomically(path_ + "/exports/fedcba9876543210.binpb", "\x08garbage").ok());
  const RecoveryReport report = CrashAndRestart();
  EXPECT_EQ(report.recovered, 0u);
  EXPECT_EQ(report.unrecoverable, 1u);
  EXPECT_EQ(report.corrupt, 1u);
  EXPECT_EQ(registry_->recovery().unrecoverable, 1u);
  EXPECT_EQ(registry_->recovery().corrupt, 1u);
  EXPECT_THAT(registry_->List(), IsEmpty());
  EXPECT_THAT(*ListFiles(path_ + "/exports"), IsEmpty());
  EXPECT_THAT(*ListFiles(path_ + "/corrupt"), SizeIs(2));
  // Sequences still continue after the set-aside record's.
  const std::string id = registry_->Start(Request("after"))->export_id();
  EXPECT_EQ(registry_->Find(id)->sequence(), 5u);
}

// Issue 12, checkpoints (lib/durable/checkpoints.md), through the real pieces: an export gets 20
// batches, logged in a write-ahead log, with a checkpoint (its aggregation state, the log
// position of its checkpoint record, its stream's sequence) after the 10th. From the same
// files, one recovery truncates the log behind the checkpoint and replays only what follows
// it into the restored state; another replays the whole log. Both end with the same figures,
// and the target ends with the same points (what the first server delivered and what each
// recovery sent: the full replay also re-sends the windows after the delivery mark that were
// delivered before the crash, the mark being written up to a tick late; the restored state
// knows them flushed).
TEST_F(ExportRecoveryTest, ACheckpointedTruncatedAndReplayedExportEndsAsOneFullyReplayed) {
  const std::string id = registry_->Start(Request("run-ckpt"))->export_id();
  const uint64_t segment_bytes = 256;  // a few batches per segment
  auto wal_in = [segment_bytes](const std::string& data) { return WalIn(data, segment_bytes); };
  {
    absl::StatusOr<std::unique_ptr<ExportJournal>> journal =
        ExportJournal::Open(wal_in(path_), nullptr, NoReplay);
    ASSERT_TRUE(journal.ok()) << journal.status();
    std::shared_ptr<Export> e = registry_->Find(id);
    StreamIngester ingester(e->aggregator());
    const int64_t base = absl::ToUnixNanos(absl::Now() - absl::Seconds(50));
    auto feed = [&](int i) {
      v1::SampleBatch batch;
      for (int n = 0; n <= i % 4; ++n) {
        v1::Sample* s = batch.add_samples();
        s->set_metric("http_reqs");
        s->set_time_unix_nano(base + int64_t{i} * 1000000000);
        s->set_value(1 + n);
      }
      ASSERT_TRUE(IngestAndWait(ingester, batch).ok());
      std::promise<absl::Status> durable;
      (*journal)->Append(id, "s-1", static_cast<uint64_t>(i), batch.SerializeAsString(),
                         [&durable](absl::Status st) { durable.set_value(std::move(st)); });
      ASSERT_TRUE(durable.get_future().get().ok());
    };
    for (int i = 0; i < 10; ++i) feed(i);
    // The checkpoint: ingest is paused here (no batch in flight), flushes awaited.
    e->aggregator()->AwaitFlushes();
    absl::StatusOr<std::string> state = e->aggregator()->SaveState();
    ASSERT_TRUE(state.ok()) << state.status();
    absl::StatusOr<WalPosition> covers = (*journal)->MarkCheckpoint(id);
    ASSERT_TRUE(covers.ok()) << covers.status();
    durable::v1::AggregationCheckpoint checkpoint;
    checkpoint.set_export_id(id);
    SetCheckpointPosition(*covers, &checkpoint);
    durable::v1::StreamProgress* stream = checkpoint.add_streams();
    stream->set_stream_id("s-1");
    stream->set_sequence(9);
    checkpoint.set_aggregation_state(*state);
    absl::StatusOr<std::unique_ptr<CheckpointStore>> checkpoints = CheckpointStore::Open(*dir_);
    ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
    ASSERT_TRUE((*checkpoints)->Write(checkpoint).ok());
    for (int i = 10; i < 20; ++i) feed(i);
  }
  // What the first server delivered (every window it flushed, the receiver answers at once).
  std::map<int64_t, double> delivered;
  // What a crash leaves, twice.
  const std::string snapshot = absl::StrCat(path_, "-snapshot");
  const std::string full = absl::StrCat(path_, "-full");
  ASSERT_TRUE(CopyTwice(snapshot, full));

  registry_->Find(id)->aggregator()->AwaitFlushes();
  AddPoints(receiver_->Requests(), 0, &delivered);
  const Recovered from_snapshot = RecoverAndStop(snapshot, id, wal_in(snapshot), true, delivered);
  const ReplayTotals& from_checkpoint = from_snapshot.totals;
  const v1::StopExportResponse& checkpointed = from_snapshot.stopped;
  const std::map<int64_t, double>& checkpointed_points = from_snapshot.points;
  EXPECT_EQ(from_checkpoint.checkpoints_used, 1u);
  EXPECT_EQ(from_checkpoint.checkpointed_batches, 10u);
  EXPECT_EQ(from_checkpoint.batches, 10u);
  EXPECT_EQ(from_checkpoint.checkpoint_records_missing, 0u);
  const Recovered from_full = RecoverAndStop(full, id, wal_in(full), false, delivered);
  const ReplayTotals& from_start = from_full.totals;
  const v1::StopExportResponse& replayed = from_full.stopped;
  const std::map<int64_t, double>& replayed_points = from_full.points;
  EXPECT_EQ(from_start.batches, 20u);

  // 20 batches of 1-4 samples: 5 x (1 + 2 + 3 + 4) = 50 samples, total 5 x (1+3+6+10) = 100.
  EXPECT_EQ(replayed.samples_accepted(), 50u);
  EXPECT_EQ(checkpointed.samples_accepted(), replayed.samples_accepted());
  EXPECT_EQ(checkpointed.samples_rejected(), replayed.samples_rejected());
  ASSERT_EQ(checkpointed.targets_size(), 1);
  ASSERT_EQ(replayed.targets_size(), 1);
  EXPECT_EQ(checkpointed_points, replayed_points);
  ASSERT_FALSE(replayed_points.empty());
  EXPECT_EQ(replayed_points.rbegin()->second, 100.0);  // the counter's exact total

  // The checkpointed recovery truncated its log behind the checkpoint: fewer segments.
  absl::StatusOr<std::vector<std::string>> kept = ListFiles(absl::StrCat(snapshot, "/wal"));
  absl::StatusOr<std::vector<std::string>> all = ListFiles(absl::StrCat(full, "/wal"));
  ASSERT_TRUE(kept.ok() && all.ok());
  EXPECT_LT(kept->size(), all->size());
}

// Issue 12, the snapshot barrier (lib/durable/checkpoints.md "Snapshotting"): four streams
// ingest at once, each batch applied and then logged as the server does, while an export's
// checkpoint is taken (Export::WriteCheckpoint: the cut, its record, the file, the log
// truncated behind it). Restoring that checkpoint and replaying the log after it ends with
// exactly the figures and points of a full replay (every sample once: the exact counter
// total at every window), and the batches in the state (by the checkpoint's per-stream
// sequences) plus those replayed are all of them.
TEST_F(ExportRecoveryTest, ACheckpointTakenWhileStreamsIngestRestoresAsAFullReplay) {
  const std::string id = registry_->Start(Request("run-busy"))->export_id();
  constexpr int kStreams = 4;
  constexpr int kBatches = 30;
  const uint64_t segment_bytes = 1024;
  auto wal_in = [segment_bytes](const std::string& data) { return WalIn(data, segment_bytes); };
  const int64_t base_ns = absl::ToUnixNanos(absl::Now() - absl::Seconds(50));
  {
    absl::StatusOr<std::unique_ptr<ExportJournal>> journal =
        ExportJournal::Open(wal_in(path_), nullptr, NoReplay);
    ASSERT_TRUE(journal.ok()) << journal.status();
    absl::StatusOr<std::unique_ptr<CheckpointStore>> checkpoints = CheckpointStore::Open(*dir_);
    ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
    std::shared_ptr<Export> e = registry_->Find(id);
    const int64_t base = base_ns;
    Mutex mu;
    CondVar cv;
    int at_ten = 0;             // streams that logged 10 batches
    bool checkpointed = false;  // the checkpoint is written
    auto stream = [&](int t) {
      const std::string stream_id = absl::StrCat("s-", t);
      StreamIngester ingester(e->aggregator());
      for (int i = 0; i < kBatches; ++i) {
        v1::SampleBatch batch;
        for (int n = 0; n <= (i + t) % 3; ++n) {
          v1::Sample* s = batch.add_samples();
          s->set_metric("http_reqs");
          s->set_time_unix_nano(base + int64_t{i} * 200000000);
          s->set_value(1 + n);
        }
        std::promise<void> applied;
        DispatchTag tag{stream_id, static_cast<uint64_t>(i)};
        ASSERT_TRUE(ingester
                        .Ingest(
                            batch, [&applied] { applied.set_value(); }, &tag)
                        .ok());
        std::promise<absl::Status> durable;
        (*journal)->Append(id, stream_id, static_cast<uint64_t>(i), batch.SerializeAsString(),
                           [&durable](absl::Status st) { durable.set_value(std::move(st)); });
        applied.get_future().wait();
        ASSERT_TRUE(durable.get_future().get().ok());
        MutexLock lock(&mu);
        if (i == 9 && ++at_ten == kStreams) cv.SignalAll();
        // The last third only after the checkpoint: some batches surely follow it.
        while (i == 19 && !checkpointed) cv.Wait(&mu);
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kStreams; ++t) threads.emplace_back(stream, t);
    {
      MutexLock lock(&mu);
      while (at_ten < kStreams) cv.Wait(&mu);
    }
    const absl::Status written = CheckpointWhenAllowed(*e, journal->get(), checkpoints->get());
    ASSERT_TRUE(written.ok()) << written;
    {
      MutexLock lock(&mu);
      checkpointed = true;
      cv.SignalAll();
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(e->Status().checkpoints_written(), 1u);
  }
  // What the first process delivered; then a crash (the files as they are), a recovery from
  // the checkpoint, a stop.
  const std::string crashed = absl::StrCat(path_, "-crashed");
  ASSERT_EQ(std::system(absl::StrCat("cp -a '", path_, "' '", crashed, "'").c_str()), 0);
  std::map<int64_t, double> delivered;
  registry_->Find(id)->aggregator()->AwaitFlushes();
  AddPoints(receiver_->Requests(), 0, &delivered);

  const Recovered recovered = RecoverAndStop(crashed, id, wal_in(crashed), true, delivered);
  const ReplayTotals& from_checkpoint = recovered.totals;
  const uint64_t in_state = recovered.in_state;
  const v1::StopExportResponse& checkpointed = recovered.stopped;
  const std::map<int64_t, double>& checkpointed_points = recovered.points;
  EXPECT_EQ(from_checkpoint.checkpoints_used, 1u);
  EXPECT_EQ(from_checkpoint.checkpoint_records_missing, 0u);
  // Every batch is in the state or replayed, none in both.
  EXPECT_EQ(in_state + from_checkpoint.batches, uint64_t{kStreams} * kBatches);
  EXPECT_GE(from_checkpoint.batches, uint64_t{kStreams} * 10);
  EXPECT_GE(in_state, uint64_t{kStreams} * 10);

  // What a full replay gives: every sample once. Counter http_reqs, one series, 1 s windows:
  // each window's point (at its end) is the total through it.
  uint64_t samples = 0;
  std::map<int64_t, double> per_window;  // window end (ms) -> values in the window
  for (int t = 0; t < kStreams; ++t) {
    for (int i = 0; i < kBatches; ++i) {
      for (int n = 0; n <= (i + t) % 3; ++n) {
        ++samples;
        per_window[(base_ns + int64_t{i} * 200000000) / 1000000000 * 1000 + 1000] += 1 + n;
      }
    }
  }
  std::map<int64_t, double> expected;
  double total = 0;
  for (const auto& [end_ms, sum] : per_window) expected[end_ms] = total += sum;
  EXPECT_EQ(checkpointed.samples_accepted(), samples);
  EXPECT_EQ(checkpointed.samples_rejected(), 0u);
  EXPECT_EQ(checkpointed_points, expected);
  EXPECT_EQ(checkpointed_points.rbegin()->second, total);
}

// Issue 12, checkpoints of every kind of export (lib/durable/checkpoints.md): a native-histogram
// trend and the outputs of a "*" entry (a counter first seen before the checkpoint, a trend
// only after it). An export of 20 logged batches is checkpointed after the 10th
// (Export::WriteCheckpoint); from the same files, a recovery from the checkpoint (replaying the
// 10 batches after it) and a full replay end with the same figures and the target with the
// same points of every series, histograms included.
TEST_F(ExportRecoveryTest, ANativeHistogramAndAllMetricsExportRestoresAsAFullReplay) {
  v1::StartExportRequest request = Request("run-ckpt-all");
  request.mutable_targets(0)->set_native_histograms(true);
  request.mutable_targets(0)->add_metrics()->set_source_metric("*");
  const std::string id = registry_->Start(request)->export_id();
  const uint64_t segment_bytes = 1 << 20;  // one segment: the full replay has every batch
  auto wal_in = [segment_bytes](const std::string& data) { return WalIn(data, segment_bytes); };
  {
    absl::StatusOr<std::unique_ptr<ExportJournal>> journal =
        ExportJournal::Open(wal_in(path_), nullptr, NoReplay);
    ASSERT_TRUE(journal.ok()) << journal.status();
    absl::StatusOr<std::unique_ptr<CheckpointStore>> checkpoints = CheckpointStore::Open(*dir_);
    ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
    std::shared_ptr<Export> e = registry_->Find(id);
    StreamIngester ingester(e->aggregator());
    const int64_t base = absl::ToUnixNanos(absl::Now() - absl::Seconds(50));
    auto feed = [&](int i) {
      v1::SampleBatch batch;
      auto add = [&](const char* metric, double value) {
        v1::Sample* s = batch.add_samples();
        s->set_metric(metric);
        s->set_time_unix_nano(base + int64_t{i} * 1000000000);
        s->set_value(value);
      };
      add("http_reqs", 1);
      add("iterations", 1 + i % 3);  // "*": k6_iterations_total
      add("http_req_duration", 10 + 7 * i);
      add("http_req_duration", 200 + i);
      if (i >= 12) add("iteration_duration", 1000 + i);  // "*", after the checkpoint
      DispatchTag tag{"s-1", static_cast<uint64_t>(i)};
      std::promise<void> applied;
      ASSERT_TRUE(ingester
                      .Ingest(
                          batch, [&applied] { applied.set_value(); }, &tag)
                      .ok());
      applied.get_future().wait();
      std::promise<absl::Status> durable;
      (*journal)->Append(id, "s-1", static_cast<uint64_t>(i), batch.SerializeAsString(),
                         [&durable](absl::Status st) { durable.set_value(std::move(st)); });
      ASSERT_TRUE(durable.get_future().get().ok());
    };
    for (int i = 0; i < 10; ++i) feed(i);
    const absl::Status written = CheckpointWhenAllowed(*e, journal->get(), checkpoints->get());
    ASSERT_TRUE(written.ok()) << written;
    for (int i = 10; i < 20; ++i) feed(i);
  }
  const std::string snapshot = absl::StrCat(path_, "-snapshot");
  const std::string full = absl::StrCat(path_, "-full");
  ASSERT_TRUE(CopyTwice(snapshot, full));
  registry_->Find(id)->aggregator()->AwaitFlushes();
  const size_t delivered = receiver_->Requests().size();
  const Recovered from_checkpoint = RecoverAndStop(snapshot, id, wal_in(snapshot), true, {});
  const Recovered from_start = RecoverAndStop(full, id, wal_in(full), false, {});
  EXPECT_EQ(from_checkpoint.totals.checkpoints_used, 1u);
  EXPECT_EQ(from_checkpoint.totals.batches, 10u);
  EXPECT_EQ(from_start.totals.batches, 20u);
  // 20 x (http_reqs, iterations, 2 durations) + 8 iteration_duration samples.
  EXPECT_EQ(from_start.stopped.samples_accepted(), 20u * 4 + 8);
  EXPECT_EQ(from_checkpoint.stopped.samples_accepted(), from_start.stopped.samples_accepted());
  ASSERT_EQ(from_checkpoint.stopped.targets_size(), 1);
  EXPECT_EQ(from_checkpoint.stopped.targets(0).series(), from_start.stopped.targets(0).series());
  EXPECT_EQ(from_checkpoint.stopped.targets(0).series(), 4u);

  const std::vector<ReceivedRequest> requests = receiver_->Requests();
  std::map<std::string, std::map<int64_t, std::string>> got, want;
  AddSeriesPoints(requests, 0, delivered, &got);
  AddSeriesPoints(requests, 0, delivered, &want);
  AddSeriesPoints(requests, from_checkpoint.first_request, from_checkpoint.end_request, &got);
  AddSeriesPoints(requests, from_start.first_request, from_start.end_request, &want);
  EXPECT_EQ(got, want);
  ASSERT_EQ(want.size(), 4u) << ::testing::PrintToString(want);
  // The cumulative histogram's last point counts all 40 durations.
  bool histogram = false;
  for (const auto& [series, points] : want) {
    if (series.find("k6_http_req_duration_seconds") == std::string::npos) continue;
    histogram = true;
    std::string last;
    for (const auto& [ts, value] : points) {
      if (value.find("count=0 ") == std::string::npos) last = value;  // not the stale marker
    }
    EXPECT_EQ(last.substr(0, last.find(' ')), "count=40");
  }
  EXPECT_TRUE(histogram);
}
}  // namespace
}  // namespace rwexport
