// GetExport and ListExports: configuration with credentials redacted, state, live figures.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

constexpr char kToken[] = "tok-3f9a1c";
constexpr char kPassword[] = "pw-77d2e0";
constexpr char kQuerySecret[] = "qs-0b5e44";

class StatusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    stub_ = server_.NewStub();
  }

  std::string Start(const std::string& run) {
    v1::StartExportRequest request;
    request.set_test_run_id(run);
    v1::Target* bearer = request.add_targets();
    bearer->set_provider("prometheus");
    bearer->set_remote_write_url(receiver_->Url() + "?api_key=" + kQuerySecret + "&tenant=a");
    bearer->mutable_credentials()->set_token(kToken);
    (*bearer->mutable_headers())["X-Scope-OrgID"] = "tenant-a";
    (*bearer->mutable_headers())["X-Api-Key"] = kToken;
    v1::Target* basic = request.add_targets();
    basic->set_provider("prometheus");
    basic->set_remote_write_url(receiver_->Url());
    basic->mutable_credentials()->set_username("loader");
    basic->mutable_credentials()->set_password(kPassword);
    basic->set_resample_rate(1);
    grpc::ClientContext context;
    v1::StartExportResponse response;
    grpc::Status status = stub_->StartExport(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.export_id();
  }

  v1::ExportStatus Get(const std::string& id, grpc::Status* status) {
    grpc::ClientContext context;
    v1::GetExportRequest request;
    request.set_export_id(id);
    v1::ExportStatus response;
    *status = stub_->GetExport(&context, request, &response);
    return response;
  }

  // Declared first, destroyed last: the server's exports deliver to it while stopping.
  std::unique_ptr<FakeReceiver> receiver_;
  TestServer server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

TEST_F(StatusTest, GetExportShowsRedactedConfigurationAndLiveFigures) {
  const std::string id = Start("status-run");
  SampleStream stream(stub_.get(), id, 10);
  const int64_t now = absl::ToUnixNanos(absl::Now());
  for (int i = 0; i < 25; ++i) stream.Add("http_reqs", {{"status", "200"}}, now, 1);
  stream.Add("no_such_metric", {}, now, 1);
  ASSERT_TRUE(stream.Flush().ok());

  // The stream stays open: the server counts it while its batches are applied.
  grpc::Status rpc;
  v1::ExportStatus status;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    status = Get(id, &rpc);
    ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  } while (status.samples_accepted() + status.samples_rejected() < 26 && absl::Now() < deadline);
  EXPECT_EQ(status.export_id(), id);
  EXPECT_EQ(status.test_run_id(), "status-run");
  EXPECT_EQ(status.state(), v1::ExportStatus::RUNNING);
  EXPECT_EQ(status.active_streams(), 1u);
  EXPECT_EQ(status.samples_accepted(), 25u);
  EXPECT_EQ(status.samples_rejected(), 1u);
  ASSERT_EQ(status.rejections_size(), 1);
  EXPECT_EQ(status.rejections(0).reason(), "unknown_metric");
  EXPECT_EQ(status.rejections(0).example(), "no_such_metric");
  ASSERT_EQ(status.targets_size(), 2);
  ASSERT_EQ(status.figures_size(), 2);
  EXPECT_EQ(status.targets(0).credentials().token(), "REDACTED");
  EXPECT_EQ(status.targets(0).remote_write_url(),
            receiver_->Url() + "?api_key=REDACTED&tenant=REDACTED");
  EXPECT_EQ(status.targets(0).headers().at("X-Scope-OrgID"), "tenant-a");
  EXPECT_EQ(status.targets(0).headers().at("X-Api-Key"), "REDACTED");
  EXPECT_EQ(status.targets(1).credentials().username(), "loader");
  EXPECT_EQ(status.targets(1).credentials().password(), "REDACTED");
  EXPECT_EQ(status.targets(1).resample_rate(), 1u);
  EXPECT_EQ(status.figures(0).series(), 1u);  // http_reqs, no kept tags

  // No secret anywhere in the answer, whatever field it might hide in.
  const std::string bytes = status.SerializeAsString();
  for (const char* secret : {kToken, kPassword, kQuerySecret}) {
    EXPECT_FALSE(absl::StrContains(bytes, secret)) << secret;
  }
  ASSERT_TRUE(stream.Finish().ok());
}

TEST_F(StatusTest, ListExportsOldestFirstAndUnknownIsNotFound) {
  const std::string first = Start("run-a");
  const std::string second = Start("run-b");
  grpc::ClientContext context;
  v1::ListExportsResponse list;
  ASSERT_TRUE(stub_->ListExports(&context, v1::ListExportsRequest(), &list).ok());
  ASSERT_EQ(list.exports_size(), 2);
  EXPECT_EQ(list.exports(0).export_id(), first);
  EXPECT_EQ(list.exports(1).export_id(), second);
  EXPECT_EQ(list.exports(1).test_run_id(), "run-b");
  for (const v1::ExportStatus& e : list.exports()) {
    EXPECT_FALSE(absl::StrContains(e.SerializeAsString(), kToken));
  }

  grpc::Status rpc;
  Get("no-such-export", &rpc);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(rpc.error_message(), ::testing::HasSubstr("no-such-export"));
}

}  // namespace
}  // namespace rwexport
