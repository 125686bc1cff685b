// ExportStore: round trip of running and stopped records, corrupt files moved aside, retention
// pruning with an injected clock.
#include "lib/durable/export_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/durable/file_util.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

const absl::Time kT0 = absl::FromUnixSeconds(1796600000);

class ExportStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/store-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    Reopen();
  }

  // A new store (as after a restart) on the same directory, with the test's clock.
  void Reopen() {
    store_.reset();
    dir_.reset();
    absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(path_);
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    ExportStoreOptions options;
    options.stopped_retention = absl::Minutes(15);
    options.now = [this] { return kT0 + absl::Seconds(now_s_.load()); };
    absl::StatusOr<std::unique_ptr<ExportStore>> store = ExportStore::Open(*dir_, options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  static durable::v1::ExportRecord Running(const std::string& id, uint64_t sequence) {
    durable::v1::ExportRecord r;
    r.set_export_id(id);
    r.set_sequence(sequence);
    r.mutable_request()->set_test_run_id("run-" + id);
    v1::Target* target = r.mutable_request()->add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
    target->mutable_credentials()->set_token("secret-token");
    r.set_started_unix_ms(1796600000123);
    return r;
  }

  static durable::v1::StoppedExportRecord Stopped(const std::string& id, uint64_t sequence,
                                                  uint64_t accepted) {
    durable::v1::StoppedExportRecord r;
    r.set_export_id(id);
    r.set_sequence(sequence);
    r.set_test_run_id("run-" + id);
    r.mutable_response()->set_samples_accepted(accepted);
    r.mutable_response()->add_targets()->set_points_sent(accepted * 2);
    return r;
  }

  std::string path_;
  std::atomic<int64_t> now_s_{0};
  std::unique_ptr<DataDir> dir_;
  std::unique_ptr<ExportStore> store_;
};

TEST_F(ExportStoreTest, RunningRecordsComeBackInSequenceOrderWithCredentials) {
  ASSERT_TRUE(store_->PutRunning(Running("bbb", 7)).ok());
  ASSERT_TRUE(store_->PutRunning(Running("aaa", 9)).ok());
  ASSERT_TRUE(store_->PutRunning(Running("ccc", 3)).ok());
  struct stat st;
  ASSERT_EQ(stat((path_ + "/exports/bbb.binpb").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((path_ + "/exports").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  Reopen();
  absl::StatusOr<LoadedExports> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(loaded->running, SizeIs(3));
  EXPECT_EQ(loaded->running[0].export_id(), "ccc");
  EXPECT_EQ(loaded->running[1].export_id(), "bbb");
  EXPECT_EQ(loaded->running[2].export_id(), "aaa");
  EXPECT_EQ(loaded->running[1].request().test_run_id(), "run-bbb");
  EXPECT_EQ(loaded->running[1].request().targets(0).credentials().token(), "secret-token");
  EXPECT_EQ(loaded->running[1].started_unix_ms(), 1796600000123);
  EXPECT_EQ(loaded->max_sequence, 9u);
  EXPECT_EQ(loaded->corrupt, 0u);
}

TEST_F(ExportStoreTest, StoppingRecordsTheFiguresThenRemovesTheRunningRecord) {
  ASSERT_TRUE(store_->PutRunning(Running("aaa", 1)).ok());
  now_s_ = 60;
  ASSERT_TRUE(store_->RecordStopped(Stopped("aaa", 1, 42)).ok());
  EXPECT_TRUE(ListFiles(path_ + "/exports")->empty());
  EXPECT_THAT(*ListFiles(path_ + "/stopped"), ElementsAre("aaa.binpb"));
  std::optional<durable::v1::StoppedExportRecord> found = store_->FindStopped("aaa");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->response().samples_accepted(), 42u);
  EXPECT_EQ(found->stopped_unix_ms(), absl::ToUnixMillis(kT0 + absl::Seconds(60)));
  EXPECT_FALSE(store_->FindStopped("bbb").has_value());

  Reopen();  // a restart: the stopped record is found again, nothing runs
  absl::StatusOr<LoadedExports> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(loaded->running, IsEmpty());
  EXPECT_EQ(loaded->stopped_kept, 1u);
  EXPECT_EQ(loaded->max_sequence, 1u);
  found = store_->FindStopped("aaa");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->response().targets(0).points_sent(), 84u);
}

// A crash between writing the stopped record and removing the running one.
TEST_F(ExportStoreTest, AnExportWithBothRecordsHasStopped) {
  ASSERT_TRUE(store_->PutRunning(Running("both", 4)).ok());
  durable::v1::StoppedExportRecord stopped = Stopped("both", 4, 7);
  stopped.set_stopped_unix_ms(absl::ToUnixMillis(kT0));
  ASSERT_TRUE(WriteFileAtomically(path_ + "/stopped/both.binpb", stopped.SerializeAsString()).ok());
  Reopen();
  absl::StatusOr<LoadedExports> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(loaded->running, IsEmpty());
  EXPECT_EQ(loaded->stopped_kept, 1u);
  EXPECT_EQ(loaded->max_sequence, 4u);
  EXPECT_TRUE(ListFiles(path_ + "/exports")->empty());
  ASSERT_TRUE(store_->FindStopped("both").has_value());
  EXPECT_EQ(store_->FindStopped("both")->response().samples_accepted(), 7u);
}

TEST_F(ExportStoreTest, CorruptFilesAreMovedAsideAndCounted) {
  ASSERT_TRUE(store_->PutRunning(Running("good", 1)).ok());
  std::ofstream(path_ + "/exports/garbage.binpb") << "\xff\xff\xff not a record";
  // Parses, but names another export than its file.
  ASSERT_TRUE(
      WriteFileAtomically(path_ + "/exports/other.binpb", Running("good", 2).SerializeAsString())
          .ok());
  std::ofstream(path_ + "/stopped/README") << "not a record";
  std::ofstream(path_ + "/exports/x.binpb.tmp.ABCDEF") << "half a write";
  Reopen();
  absl::StatusOr<LoadedExports> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(loaded->running, SizeIs(1));
  EXPECT_EQ(loaded->running[0].export_id(), "good");
  EXPECT_EQ(loaded->corrupt, 3u);
  EXPECT_EQ(store_->corrupt_files(), 3u);
  EXPECT_THAT(*ListFiles(path_ + "/exports"), ElementsAre("good.binpb"));  // temp file removed
  EXPECT_TRUE(ListFiles(path_ + "/stopped")->empty());
  absl::StatusOr<std::vector<std::string>> corrupt = ListFiles(path_ + "/corrupt");
  ASSERT_TRUE(corrupt.ok());
  ASSERT_THAT(*corrupt, SizeIs(3));
  EXPECT_THAT((*corrupt)[0], StartsWith("exports-garbage.binpb."));
  EXPECT_THAT((*corrupt)[1], StartsWith("exports-other.binpb."));
  EXPECT_THAT((*corrupt)[2], StartsWith("stopped-README."));
  // A second start finds nothing more to move.
  Reopen();
  loaded = store_->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->corrupt, 0u);
  EXPECT_THAT(loaded->running, SizeIs(1));
}

TEST_F(ExportStoreTest, StoppedRecordsArePrunedAfterTheRetention) {
  now_s_ = 0;
  ASSERT_TRUE(store_->RecordStopped(Stopped("old", 1, 1)).ok());
  now_s_ = 600;
  ASSERT_TRUE(store_->RecordStopped(Stopped("new", 2, 2)).ok());
  now_s_ = 15 * 60;  // "old" is exactly 15 min old: still kept
  EXPECT_EQ(store_->PruneStopped(), 0u);
  EXPECT_TRUE(store_->FindStopped("old").has_value());
  now_s_ = 15 * 60 + 1;
  EXPECT_FALSE(store_->FindStopped("old").has_value());  // past the retention: not answered
  EXPECT_EQ(store_->PruneStopped(), 1u);
  EXPECT_THAT(*ListFiles(path_ + "/stopped"), ElementsAre("new.binpb"));
  // Pruned at load too.
  now_s_ = 600 + 15 * 60 + 1;
  Reopen();
  absl::StatusOr<LoadedExports> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->stopped_pruned, 1u);
  EXPECT_EQ(loaded->stopped_kept, 0u);
  EXPECT_EQ(loaded->max_sequence, 2u);  // seen before it was pruned
  EXPECT_TRUE(ListFiles(path_ + "/stopped")->empty());
  EXPECT_FALSE(store_->FindStopped("new").has_value());
}

TEST_F(ExportStoreTest, AnIdThatCouldLeaveTheDirectoryIsRefused) {
  absl::Status s = store_->PutRunning(Running("../escape", 1));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ListFiles(path_)->size() == 1);  // LOCK only
}

}  // namespace
}  // namespace rwexport
