// The gRPC listener's security: TLS, mutual TLS, bearer tokens for callers; and no target
// credential ever leaves the server (logs, errors, status, figures).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/channel.h"
#include "lib/client/sample_stream.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/certs.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

class GrpcSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char dir[] = "/tmp/rwexport-certs.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    absl::StatusOr<TestCerts> certs = MakeTestCerts(dir);
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = new TestCerts(*certs);
  }
  static void TearDownTestSuite() {
    if (certs_ != nullptr && std::system(absl::StrCat("rm -rf ", certs_->dir).c_str()) != 0) {
      ADD_FAILURE() << "could not remove " << certs_->dir;
    }
    delete certs_;
    certs_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(certs_, nullptr);
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
  }

  // ListExports through a channel made with `options`: the cheapest authenticated call.
  static grpc::Status Call(const ChannelOptions& options) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
    EXPECT_TRUE(channel.ok()) << channel.status();
    auto stub = v1::ExportService::NewStub(*channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListExportsResponse response;
    return stub->ListExports(&context, v1::ListExportsRequest(), &response);
  }

  static TestCerts* certs_;
  std::unique_ptr<FakeReceiver> receiver_;
};

TestCerts* GrpcSecurityTest::certs_ = nullptr;

TEST_F(GrpcSecurityTest, TlsListener) {
  TestServerOptions options;
  options.security.cert_file = certs_->server_cert;
  options.security.key_file = certs_->server_key;
  TestServer server(options);
  ChannelOptions ok{server.address(), certs_->ca_cert};
  EXPECT_TRUE(Call(ok).ok()) << Call(ok).error_message();
  // Plaintext to a TLS listener, or a CA that did not sign the server: no connection.
  EXPECT_EQ(Call(ChannelOptions{server.address()}).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(ChannelOptions{server.address(), certs_->other_ca_cert}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcSecurityTest, MutualTlsRequiresAClientCertificate) {
  TestServerOptions options;
  options.security.cert_file = certs_->server_cert;
  options.security.key_file = certs_->server_key;
  options.security.client_ca_file = certs_->ca_cert;
  TestServer server(options);
  ChannelOptions with_cert{server.address(), certs_->ca_cert, certs_->client_cert,
                           certs_->client_key};
  EXPECT_TRUE(Call(with_cert).ok()) << Call(with_cert).error_message();
  EXPECT_EQ(Call(ChannelOptions{server.address(), certs_->ca_cert}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcSecurityTest, BearerTokenOnEveryExportServiceCall) {
  TestServerOptions options;
  options.auth_token = "caller-token-5521";
  TestServer server(options);

  ChannelOptions none{server.address()};
  grpc::Status missing = Call(none);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("authorization"));
  ChannelOptions wrong{server.address()};
  wrong.bearer_token = "caller-token-5520";
  grpc::Status refused = Call(wrong);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(refused.error_message(), "invalid bearer token");  // never echoes the token

  // Every RPC, the stream included, is refused without the token and served with it.
  auto unauthenticated = v1::ExportService::NewStub(*MakeChannel(none));
  {
    grpc::ClientContext context;
    v1::StartExportResponse response;
    EXPECT_EQ(
        unauthenticated->StartExport(&context, v1::StartExportRequest(), &response).error_code(),
        grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    v1::StopExportRequest request;
    request.set_export_id("x");
    v1::StopExportResponse response;
    EXPECT_EQ(unauthenticated->StopExport(&context, request, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    v1::ExportStatus response;
    EXPECT_EQ(unauthenticated->GetExport(&context, v1::GetExportRequest(), &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    SampleStream stream(unauthenticated.get(), "x");
    stream.Add("vus", {}, absl::ToUnixNanos(absl::Now()), 1);
    EXPECT_EQ(stream.Finish().status().code(), absl::StatusCode::kUnauthenticated);
  }

  ChannelOptions right{server.address()};
  right.bearer_token = "caller-token-5521";
  auto stub = v1::ExportService::NewStub(*MakeChannel(right));
  v1::StartExportRequest request;
  request.set_test_run_id("authenticated");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(receiver_->Url());
  grpc::ClientContext context;
  v1::StartExportResponse started;
  ASSERT_TRUE(stub->StartExport(&context, request, &started).ok());
  SampleStream stream(stub.get(), started.export_id());
  stream.Add("http_reqs", {}, absl::ToUnixNanos(absl::Now()), 1);
  absl::StatusOr<v1::StreamSamplesResponse> streamed = stream.Finish();
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(streamed->accepted(), 1u);
  grpc::ClientContext stop_context;
  v1::StopExportRequest stop;
  stop.set_export_id(started.export_id());
  v1::StopExportResponse stopped;
  EXPECT_TRUE(stub->StopExport(&stop_context, stop, &stopped).ok());
}

// Target credentials appear nowhere a person or a scraper could read them: not in logs (all
// of stderr, through a successful export, a failing target and a rejected configuration),
// not in errors, not in status or StopExport answers.
TEST_F(GrpcSecurityTest, TargetCredentialsNeverLeak) {
  const std::string token = "leak-token-8c1f";
  const std::string password = "leak-password-2b7e";
  const std::string query_secret = "leak-query-91d0";

  fflush(stderr);
  const std::string log_path = absl::StrCat(certs_->dir, "/stderr.log");
  const int saved = dup(2);
  FILE* log = std::fopen(log_path.c_str(), "w");
  ASSERT_NE(log, nullptr);
  dup2(fileno(log), 2);

  std::string answers;
  {
    ExportOptions exports;
    exports.default_delivery_timeout = absl::Milliseconds(300);
    TestServer server(exports);
    auto stub = server.NewStub();
    receiver_->Push(FakeResponse::WithStatus(401, "bad credentials"));
    v1::StartExportRequest request;
    request.set_test_run_id("leaks");
    v1::Target* bearer = request.add_targets();
    bearer->set_provider("prometheus");
    bearer->set_remote_write_url(absl::StrCat(receiver_->Url(), "?access_token=", query_secret));
    bearer->mutable_credentials()->set_token(token);
    v1::Target* basic = request.add_targets();
    basic->set_provider("prometheus");
    basic->set_remote_write_url("http://127.0.0.1:1/api/v1/write");  // nothing listens
    basic->mutable_credentials()->set_username("u");
    basic->mutable_credentials()->set_password(password);
    grpc::ClientContext context;
    v1::StartExportResponse started;
    ASSERT_TRUE(stub->StartExport(&context, request, &started).ok());
    answers += started.SerializeAsString();
    SampleStream stream(stub.get(), started.export_id());
    stream.Add("http_reqs", {}, absl::ToUnixNanos(absl::Now()), 1);
    ASSERT_TRUE(stream.Finish().ok());
    grpc::ClientContext get_context;
    v1::GetExportRequest get;
    get.set_export_id(started.export_id());
    v1::ExportStatus status;
    ASSERT_TRUE(stub->GetExport(&get_context, get, &status).ok());
    answers += status.SerializeAsString();
    grpc::ClientContext stop_context;
    v1::StopExportRequest stop;
    stop.set_export_id(started.export_id());
    v1::StopExportResponse stopped;
    ASSERT_TRUE(stub->StopExport(&stop_context, stop, &stopped).ok());
    answers += stopped.SerializeAsString();
    // A rejected configuration that carries secrets: the error must not echo them.
    v1::StartExportRequest bad = request;
    bad.mutable_targets(0)->mutable_credentials()->set_username("both");
    grpc::ClientContext bad_context;
    v1::StartExportResponse unused;
    grpc::Status refused = stub->StartExport(&bad_context, bad, &unused);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    answers += refused.error_message();
  }

  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::fclose(log);
  std::ifstream in(log_path);
  std::stringstream logged;
  logged << in.rdbuf();
  ASSERT_THAT(logged.str(), HasSubstr("export stopped"));  // the capture did see the logs
  for (const std::string& secret : {token, password, query_secret}) {
    EXPECT_FALSE(absl::StrContains(logged.str(), secret)) << secret << " in logs:\n"
                                                          << logged.str();
    EXPECT_FALSE(absl::StrContains(answers, secret)) << secret << " in an answer";
  }
}

}  // namespace
}  // namespace rwexport
