// ExportRegistry with an ExportStore (rwexport_server --data_dir): records written before
// Start answers, final figures recorded at Stop and answered again to a retry, and Recover()
// bringing back what a crash left in the data directory.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
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
#include "lib/durable/data_dir.h"
#include "lib/durable/export_store.h"
#include "lib/durable/file_util.h"
#include "lib/export/export.h"
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

}  // namespace
}  // namespace rwexport
