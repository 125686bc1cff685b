// Export ids that name their owner (lib/export/ownership.h) and the registry's owner check.
#include "lib/export/ownership.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/export/export.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

constexpr char kRandom[] = "0123456789abcdef0123456789abcdef";

TEST(ReplicaIdTest, PodNamesAndShortNamesAreValid) {
  for (const char* id : {"r0", "rwexport-0", "rwexport-12.eu_west", "A", "9lives"}) {
    EXPECT_TRUE(ValidateReplicaId(id).ok()) << id;
  }
  EXPECT_TRUE(ValidateReplicaId(std::string(63, 'a')).ok());
}

TEST(ReplicaIdTest, BadIdsAreRefusedNamingWhatIsWrong) {
  EXPECT_EQ(ValidateReplicaId("").message(), "replica id: empty");
  EXPECT_EQ(ValidateReplicaId(std::string(64, 'a')).message(),
            "replica id \"" + std::string(64, 'a') + "\": longer than 63 characters");
  EXPECT_EQ(ValidateReplicaId("-r0").message(),
            "replica id \"-r0\": must start with a letter or a digit");
  EXPECT_EQ(ValidateReplicaId("r 0").message(),
            "replica id \"r 0\": character 2 is not a letter, digit, '.', '_' or '-'");
  EXPECT_EQ(ValidateReplicaId("r0/x").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExportIdTest, AnIdNamesItsReplica) {
  EXPECT_EQ(MakeExportId("r1", kRandom), "r1-0123456789abcdef0123456789abcdef");
  EXPECT_EQ(MakeExportId("", kRandom), kRandom);
  EXPECT_EQ(ExportIdOwner("r1-0123456789abcdef0123456789abcdef"), "r1");
  // The owner is everything before the last dash: pod names have dashes of their own.
  EXPECT_EQ(ExportIdOwner("rwexport-2-0123456789abcdef0123456789abcdef"), "rwexport-2");
  EXPECT_EQ(ExportIdOwner(MakeExportId("a.b_c-d", kRandom)), "a.b_c-d");
}

TEST(ExportIdTest, IdsThatNameNoOwner) {
  EXPECT_EQ(ExportIdOwner(kRandom), "");                                 // a single server's id
  EXPECT_EQ(ExportIdOwner("r1-0123456789abcdef0123456789abcde"), "");    // 31 digits
  EXPECT_EQ(ExportIdOwner("r1-0123456789abcdef0123456789abcdef0"), "");  // 33 digits
  EXPECT_EQ(ExportIdOwner("r1-0123456789ABCDEF0123456789abcdef"), "");   // not lowercase
  EXPECT_EQ(ExportIdOwner("-0123456789abcdef0123456789abcdef"), "");     // empty owner
  EXPECT_EQ(ExportIdOwner("r 1-0123456789abcdef0123456789abcdef"), "");  // invalid owner
  EXPECT_EQ(ExportIdOwner("nope"), "");
  EXPECT_EQ(ExportIdOwner(""), "");
}

TEST(CheckExportOwnerTest, AnotherReplicasIdIsUnavailableNamingTheOwner) {
  const std::string r1 = "r1-0123456789abcdef0123456789abcdef";
  EXPECT_TRUE(CheckExportOwner("r1", r1).ok());
  EXPECT_TRUE(CheckExportOwner("", r1).ok());         // a single process checks nothing
  EXPECT_TRUE(CheckExportOwner("r0", kRandom).ok());  // names no owner: NOT_FOUND later
  EXPECT_TRUE(CheckExportOwner("r0", "nope").ok());
  const absl::Status other = CheckExportOwner("r0", r1);
  EXPECT_EQ(other.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(other.message()),
              StartsWith("export r1-0123456789abcdef0123456789abcdef is owned by replica r1 "
                         "(this is replica r0;"));
  // "r1" is not "r10": owners are compared whole.
  EXPECT_EQ(CheckExportOwner("r10", r1).code(), absl::StatusCode::kUnavailable);
}

// The registry of a replica: its ids name it, and calls for another replica's ids are
// UNAVAILABLE, not NOT_FOUND.
class OwnedRegistryTest : public ::testing::Test {
 protected:
  void MakeRegistry(const std::string& replica_id) {
    ExportOptions options;
    options.replica_id = replica_id;
    registry_ = std::make_unique<ExportRegistry>(&pool_, &sender_, options);
  }

  std::string Start() {
    v1::StartExportRequest request;
    request.set_test_run_id("owned");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    // Nothing is streamed, so nothing is ever sent there.
    target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
    absl::StatusOr<v1::StartExportResponse> started = registry_->Start(request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->export_id() : "";
  }

  WorkerPool pool_{1};
  Sender sender_;
  std::unique_ptr<ExportRegistry> registry_;  // destroyed first
};

TEST_F(OwnedRegistryTest, IdsNameTheReplicaAndLookupChecksTheOwner) {
  MakeRegistry("rwexport-1");
  const std::string id = Start();
  EXPECT_THAT(id, MatchesRegex("rwexport-1-[0-9a-f]{32}"));
  EXPECT_EQ(ExportIdOwner(id), "rwexport-1");
  absl::StatusOr<std::shared_ptr<Export>> found = registry_->Lookup(id);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ((*found)->id(), id);

  const std::string theirs = "rwexport-2-0123456789abcdef0123456789abcdef";
  EXPECT_EQ(registry_->Lookup(theirs).status(),
            absl::UnavailableError("export rwexport-2-0123456789abcdef0123456789abcdef is "
                                   "owned by replica rwexport-2 (this is replica rwexport-1; "
                                   "retry through the router, which sends it to rwexport-2)"));
  absl::StatusOr<v1::StopExportResponse> stopped = registry_->Stop(theirs, absl::Seconds(1));
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(stopped.status().message()), HasSubstr("is owned by replica rwexport-2"));

  // Its own id once stopped, and ids that name nobody: NOT_FOUND as for a single server.
  ASSERT_TRUE(registry_->Stop(id, absl::Seconds(5)).ok());
  EXPECT_EQ(registry_->Lookup(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Lookup(kRandom).status(),
            absl::NotFoundError("no export with id \"0123456789abcdef0123456789abcdef\""));
}

TEST_F(OwnedRegistryTest, WithoutAReplicaIdIdsAreAsBefore) {
  MakeRegistry("");
  const std::string id = Start();
  EXPECT_THAT(id, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(ExportIdOwner(id), "");
  EXPECT_EQ(registry_->Lookup("r1-0123456789abcdef0123456789abcdef").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry_->Stop(id, absl::Seconds(5)).ok());
}

}  // namespace
}  // namespace rwexport
