// CheckpointStore: round trip with the log position, replacement, files that cannot be used
// moved to corrupt/ (never an error), temp files of interrupted writes removed, modes.
#include "lib/durable/checkpoint_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

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

class CheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    path_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/checkpoints-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    Reopen();
  }

  // A new store (as after a restart) on the same directory.
  void Reopen() {
    store_.reset();
    dir_.reset();
    absl::StatusOr<std::unique_ptr<DataDir>> dir = DataDir::Open(path_);
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *std::move(dir);
    absl::StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(*dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  static durable::v1::AggregationCheckpoint Checkpoint(const std::string& id, WalPosition at,
                                                       uint64_t accepted) {
    durable::v1::AggregationCheckpoint c;
    c.set_export_id(id);
    SetCheckpointPosition(at, &c);
    c.set_written_unix_ms(1796600000000);
    durable::v1::StreamProgress* stream = c.add_streams();
    stream->set_stream_id("a:s-1");
    stream->set_sequence(41);
    stream->set_accepted(accepted);
    stream->set_rejected(3);
    return c;
  }

  void WriteRaw(const std::string& name, const std::string& bytes) {
    std::ofstream(absl::StrCat(path_, "/checkpoints/", name)) << bytes;
  }

  std::vector<std::string> Files(const std::string& sub) {
    absl::StatusOr<std::vector<std::string>> names = ListFiles(absl::StrCat(path_, "/", sub));
    EXPECT_TRUE(names.ok()) << names.status();
    return names.ok() ? *names : std::vector<std::string>();
  }

  std::string path_;
  std::unique_ptr<DataDir> dir_;
  std::unique_ptr<CheckpointStore> store_;
};

TEST_F(CheckpointStoreTest, WrittenCheckpointsComeBackAfterARestartWithTheirPositions) {
  ASSERT_TRUE(store_->Write(Checkpoint("e1", {3, 4096}, 800)).ok());
  ASSERT_TRUE(store_->Write(Checkpoint("e2", {7, 32}, 12)).ok());
  Reopen();
  absl::StatusOr<LoadedCheckpoints> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(loaded->checkpoints, SizeIs(2));
  EXPECT_EQ(loaded->corrupt, 0u);
  const durable::v1::AggregationCheckpoint& e1 = loaded->checkpoints.at("e1");
  EXPECT_EQ(CheckpointPosition(e1), (WalPosition{3, 4096}));
  ASSERT_THAT(e1.streams(), SizeIs(1));
  EXPECT_EQ(e1.streams(0).accepted(), 800u);
  EXPECT_EQ(e1.streams(0).stream_id(), "a:s-1");
  EXPECT_EQ(e1.streams(0).sequence(), 41u);
  EXPECT_EQ(e1.streams(0).rejected(), 3u);
  EXPECT_EQ(CheckpointPosition(loaded->checkpoints.at("e2")), (WalPosition{7, 32}));
}

TEST_F(CheckpointStoreTest, AWriteReplacesTheExportsCheckpointAndRemoveDeletesIt) {
  ASSERT_TRUE(store_->Write(Checkpoint("e1", {3, 4096}, 800)).ok());
  ASSERT_TRUE(store_->Write(Checkpoint("e1", {5, 64}, 950)).ok());
  absl::StatusOr<LoadedCheckpoints> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(loaded->checkpoints, SizeIs(1));
  EXPECT_EQ(CheckpointPosition(loaded->checkpoints.at("e1")), (WalPosition{5, 64}));
  EXPECT_EQ(loaded->checkpoints.at("e1").streams(0).accepted(), 950u);
  EXPECT_THAT(Files("checkpoints"), ElementsAre("e1.binpb"));

  ASSERT_TRUE(store_->Remove("e1").ok());
  ASSERT_TRUE(store_->Remove("e1").ok());  // none left: not an error
  EXPECT_THAT(Files("checkpoints"), IsEmpty());
}

TEST_F(CheckpointStoreTest, FilesThatCannotBeUsedAreMovedAsideAndCounted) {
  ASSERT_TRUE(store_->Write(Checkpoint("good", {2, 32}, 5)).ok());
  WriteRaw("garbage.binpb", "\xff\xff\xff\xff not a message");
  WriteRaw("other.binpb", Checkpoint("not-other", {2, 32}, 5).SerializeAsString());
  WriteRaw("README", "x");
  WriteRaw("good.binpb.tmp.AbC123", "half a write");
  absl::StatusOr<LoadedCheckpoints> loaded = store_->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(loaded->checkpoints, SizeIs(1));
  EXPECT_EQ(loaded->checkpoints.count("good"), 1u);
  EXPECT_EQ(loaded->corrupt, 3u);
  EXPECT_EQ(loaded->temp_removed, 1u);
  EXPECT_EQ(store_->corrupt_files(), 3);
  EXPECT_THAT(Files("checkpoints"), ElementsAre("good.binpb"));
  const std::vector<std::string> corrupt = Files("corrupt");
  ASSERT_THAT(corrupt, SizeIs(3));
  EXPECT_THAT(corrupt[0], StartsWith("checkpoints-README."));
  EXPECT_THAT(corrupt[1], StartsWith("checkpoints-garbage.binpb."));
  EXPECT_THAT(corrupt[2], StartsWith("checkpoints-other.binpb."));
}

TEST_F(CheckpointStoreTest, SetAsideMovesOneCheckpointToCorrupt) {
  ASSERT_TRUE(store_->Write(Checkpoint("e1", {3, 4096}, 800)).ok());
  store_->SetAside("e1", "covers a position the log no longer has");
  EXPECT_THAT(Files("checkpoints"), IsEmpty());
  ASSERT_THAT(Files("corrupt"), SizeIs(1));
  EXPECT_THAT(Files("corrupt")[0], StartsWith("checkpoints-e1.binpb."));
  EXPECT_EQ(store_->corrupt_files(), 1);
}

TEST_F(CheckpointStoreTest, AnIdThatIsNotPlainIsRefusedAndFilesAreOnlyTheServersUsers) {
  const absl::Status refused = store_->Write(Checkpoint("../e1", {3, 4096}, 800));
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(), "checkpoint: not a plain export id: \"../e1\"");
  ASSERT_TRUE(store_->Write(Checkpoint("e1", {3, 4096}, 800)).ok());
  struct stat st;
  ASSERT_EQ(stat(absl::StrCat(path_, "/checkpoints").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(absl::StrCat(path_, "/checkpoints/e1.binpb").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace rwexport
