// A StartExport whose answer cannot reach the client leaves no export behind, and every answer
// stays bounded whatever the configurations hold (issue 13, item 3).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

constexpr int kServerMaxMessage = 64 << 20;      // rwexport_server's default --max_message_bytes
constexpr size_t kClientReceiveLimit = 4 << 20;  // gRPC's default on the client

class AnswerBoundsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    server_ = std::make_unique<TestServer>(ExportOptions(), 2, kServerMaxMessage);
    stub_ = server_->NewStub();
  }

  v1::StartExportRequest Request(const std::string& run) const {
    v1::StartExportRequest request;
    request.set_test_run_id(run);
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    return request;
  }

  // Polls (bounded) until the server has started `started` exports and holds none.
  bool AwaitStartedAndGone(uint64_t started) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (;;) {
      std::vector<v1::ExportStatus> live;
      RetiredTotals retired;
      uint64_t exports_started = 0;
      server_->registry().Snapshot(&live, &retired, &exports_started);
      if (exports_started == started && live.empty()) return true;
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::unique_ptr<FakeReceiver> receiver_;  // outlives the server, which delivers to it
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

// The hostile test's case: a 5,000,000-character metric name was accepted, its answer was too
// large for the client, and the export stayed, making every later ListExports fail.
TEST_F(AnswerBoundsTest, HugeMetricNameIsRefusedAndLeavesNothing) {
  v1::StartExportRequest request = Request("huge");
  request.mutable_targets(0)->add_metrics()->set_source_metric(std::string(5'000'000, 'm'));
  absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument) << started.status();
  EXPECT_LT(started.status().message().size(), 200u);
  EXPECT_EQ(server_->registry().size(), 0u);
  absl::StatusOr<v1::ListExportsResponse> listed = ListExportsRpc(*stub_);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->exports_size(), 0);
}

// A client that gives up before the answer comes (its deadline passes while the server is
// still validating) gets DEADLINE_EXCEEDED, and the export its call created does not stay
// running unseen. The server is held in validation deterministically: the target's caFile is
// a FIFO, whose open for reading blocks until this test opens it for writing.
TEST_F(AnswerBoundsTest, ExportWhoseAnswerWasNotReceivedIsRemoved) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string fifo = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/ca.fifo");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  v1::StartExportRequest request = Request("lost");
  request.mutable_targets(0)->mutable_tls()->set_ca_file(fifo);
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    v1::StartExportResponse response;
    grpc::Status status = stub_->StartExport(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  }
  // The server's copy of the deadline counts from when the request reached it, a little after
  // the client's: let it pass too (the server then removes the export however late it sees the
  // cancellation), then let validation go on (opening for writing waits for the reader).
  absl::SleepFor(absl::Milliseconds(500));
  const int fd = ::open(fifo.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ::close(fd);
  // The export is created after the client left, then removed.
  EXPECT_TRUE(AwaitStartedAndGone(1)) << server_->registry().size() << " exports left";
  // A client that takes the answer keeps its export.
  ASSERT_TRUE(StartExportRpc(*stub_, Request("kept")).ok());
  EXPECT_EQ(server_->registry().size(), 1u);
}

// Seven exports with large (valid) configurations: ~5 MB of status in all, more than a client
// takes in one answer. ListExports answers in pages under the limit; ListExportsRpc gets all.
TEST_F(AnswerBoundsTest, ListExportsPagesStayUnderTheClientsReceiveLimit) {
  constexpr int kExports = 7;
  for (int e = 0; e < kExports; ++e) {
    v1::StartExportRequest request = Request(absl::StrCat("big-", e));
    for (int t = 0; t < 2; ++t) {
      v1::Target* target = t == 0 ? request.mutable_targets(0) : request.add_targets();
      *target = request.targets(0);
      target->clear_headers();
      for (int h = 0; h < 60; ++h) {
        (*target->mutable_headers())[absl::StrCat("X-Pad-", h)] = std::string(6000, 'a' + h % 26);
      }
    }
    absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
    ASSERT_TRUE(started.ok()) << started.status();
  }

  v1::ListExportsRequest request;
  std::vector<std::string> runs;
  for (int pages = 0; pages < kExports + 1; ++pages) {
    grpc::ClientContext context;
    v1::ListExportsResponse page;
    grpc::Status status = stub_->ListExports(&context, request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LT(page.ByteSizeLong(), kClientReceiveLimit);
    ASSERT_GT(page.exports_size(), 0);
    for (const v1::ExportStatus& e : page.exports()) runs.push_back(e.test_run_id());
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  std::vector<std::string> want;
  for (int e = 0; e < kExports; ++e) want.push_back(absl::StrCat("big-", e));
  EXPECT_EQ(runs, want);  // oldest first, each once

  absl::StatusOr<v1::ListExportsResponse> all = ListExportsRpc(*stub_);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->exports_size(), kExports);

  // Page size, and a token that is not one.
  grpc::ClientContext context;
  v1::ListExportsResponse page;
  request.Clear();
  request.set_page_size(3);
  ASSERT_TRUE(stub_->ListExports(&context, request, &page).ok());
  EXPECT_LE(page.exports_size(), 3);
  grpc::ClientContext bad_context;
  request.set_page_token("x");
  grpc::Status bad = stub_->ListExports(&bad_context, request, &page);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("page_token"));
}

}  // namespace
}  // namespace rwexport
