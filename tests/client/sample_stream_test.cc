// SampleStream against the gRPC server in-process, its export delivering to the fake
// remote-write receiver.
#include "lib/client/sample_stream.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/client/export_calls.h"
#include "prometheus/remote.pb.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

class SampleStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    stub_ = server_.NewStub();
  }

  // An export to the fake receiver of `metrics` only, in 1 s windows.
  std::string StartExport(const std::vector<std::string>& metrics) {
    v1::StartExportRequest request;
    request.set_test_run_id("sample-stream");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    target->set_include_default_metrics(false);
    target->set_resample_rate(1);
    for (const std::string& m : metrics) target->add_metrics()->set_source_metric(m);
    absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub_, request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->export_id() : "";
  }

  v1::StopExportResponse StopExport(const std::string& id) {
    absl::StatusOr<v1::StopExportResponse> stopped = StopExportRpc(*stub_, id);
    EXPECT_TRUE(stopped.ok()) << stopped.status();
    return stopped.ok() ? *stopped : v1::StopExportResponse();
  }

  // The value of the newest point of each series the receiver got.
  std::map<std::string, double> LastValues() const {
    std::map<std::string, std::pair<int64_t, double>> last;
    for (const ReceivedRequest& r : receiver_->Requests()) {
      for (const prometheus::TimeSeries& ts : r.write_request.timeseries()) {
        std::string name;
        for (const prometheus::Label& l : ts.labels()) {
          if (l.name() == "__name__") name = l.value();
        }
        for (const prometheus::Sample& s : ts.samples()) {
          auto it = last.find(name);
          if (it == last.end() || s.timestamp() > it->second.first) {
            last[name] = {s.timestamp(), s.value()};
          }
        }
      }
    }
    std::map<std::string, double> out;
    for (const auto& [name, point] : last) out[name] = point.second;
    return out;
  }

  std::unique_ptr<FakeReceiver> receiver_;
  TestServer server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
};

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

TEST_F(SampleStreamTest, BatchesSamplesAndTheServerAcceptsThemAll) {
  const std::string id = StartExport({"http_reqs"});
  const int64_t t = NowNs() - 5'000'000'000;
  SampleStream stream(stub_.get(), id, /*batch_size=*/2);
  // A batch leaves when it holds batch_size samples; samples_sent counts what left.
  const std::vector<uint64_t> sent_after_each = {0, 2, 2, 4, 4};
  for (int i = 0; i < 5; ++i) {
    stream.Add("http_reqs", {{"status", "200"}}, t + i, 1);
    EXPECT_EQ(stream.samples_sent(), sent_after_each[i]) << "after sample " << i + 1;
  }
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(stream.samples_sent(), 5u);
  EXPECT_EQ(response->accepted(), 5u);
  EXPECT_EQ(response->rejected(), 0u);

  const v1::StopExportResponse stopped = StopExport(id);
  EXPECT_EQ(stopped.samples_accepted(), 5u);
  EXPECT_EQ(LastValues(), (std::map<std::string, double>{{"k6_http_reqs_total", 5}}));
}

TEST_F(SampleStreamTest, FlushSendsAPartialBatch) {
  const std::string id = StartExport({"http_reqs"});
  SampleStream stream(stub_.get(), id, /*batch_size=*/100);
  stream.Add("http_reqs", {}, NowNs() - 1'000'000'000, 1);
  EXPECT_EQ(stream.samples_sent(), 0u);
  ASSERT_TRUE(stream.Flush().ok());
  EXPECT_EQ(stream.samples_sent(), 1u);
  // Nothing batched: a second flush sends nothing.
  ASSERT_TRUE(stream.Flush().ok());
  EXPECT_EQ(stream.samples_sent(), 1u);
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->accepted(), 1u);
  StopExport(id);
}

TEST_F(SampleStreamTest, AnEmptyStreamStillNamesItsExport) {
  const std::string id = StartExport({"http_reqs"});
  SampleStream stream(stub_.get(), id);
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->accepted(), 0u);
  EXPECT_EQ(response->rejected(), 0u);
  StopExport(id);
}

TEST_F(SampleStreamTest, DeclaredCustomMetricsAreExported) {
  const std::string id = StartExport({"checkout_step_duration", "cart_items", "vus"});
  const int64_t t = NowNs() - 5'000'000'000;
  SampleStream stream(stub_.get(), id);
  stream.Declare("checkout_step_duration", MetricType::kTrend, ValueKind::kTime);
  stream.Declare("cart_items", MetricType::kCounter, ValueKind::kDefault);
  // A built-in declared with its own type is fine, with another it is refused.
  stream.Declare("vus", MetricType::kGauge, ValueKind::kDefault);
  stream.Declare("http_reqs", MetricType::kGauge, ValueKind::kDefault);
  stream.Add("checkout_step_duration", {{"step", "payment"}}, t, 250);
  stream.Add("checkout_step_duration", {{"step", "payment"}}, t + 1, 750);
  stream.Add("cart_items", {}, t, 3);
  stream.Add("cart_items", {}, t + 1, 4);
  stream.Add("vus", {}, t, 10);
  // Never declared, not built in.
  stream.Add("undeclared_metric", {}, t, 1);
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->accepted(), 5u);
  EXPECT_EQ(response->rejected(), 1u);
  ASSERT_EQ(response->rejections_size(), 1);
  EXPECT_EQ(response->rejections(0).reason(), "unknown_metric");
  EXPECT_EQ(response->rejections(0).count(), 1u);
  EXPECT_EQ(response->rejections(0).example(), "undeclared_metric");
  ASSERT_EQ(response->declaration_errors_size(), 1);
  EXPECT_EQ(response->declaration_errors(0).reason(), "type_conflict");
  EXPECT_THAT(response->declaration_errors(0).example(), HasSubstr("http_reqs"));

  StopExport(id);
  const std::map<std::string, double> last = LastValues();
  // Time values arrive in seconds.
  EXPECT_EQ(last.at("k6_checkout_step_duration_min"), 0.25);
  EXPECT_EQ(last.at("k6_checkout_step_duration_max"), 0.75);
  EXPECT_EQ(last.at("k6_checkout_step_duration_avg"), 0.5);
  EXPECT_EQ(last.at("k6_checkout_step_duration_count"), 2);
  EXPECT_EQ(last.at("k6_cart_items_total"), 7);
  EXPECT_EQ(last.at("k6_vus"), 10);
}

TEST_F(SampleStreamTest, UnknownExportIsNotFoundFromFinish) {
  SampleStream stream(stub_.get(), "no-such-export", /*batch_size=*/1);
  stream.Add("vus", {}, NowNs(), 1);
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  EXPECT_EQ(response.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(response.status().message(), HasSubstr("no-such-export"));
}

TEST_F(SampleStreamTest, AfterTheServerEndedTheCallFlushReturnsItsStatus) {
  SampleStream stream(stub_.get(), "no-such-export", /*batch_size=*/1);
  // The first write may still succeed (the server answers asynchronously); keep writing until
  // the stream reports the server's status, bounded.
  absl::Status status;
  for (int i = 0; i < 10000 && status.ok(); ++i) {
    stream.Add("vus", {}, NowNs(), 1);
    status = stream.Flush();
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  // It stays failed.
  EXPECT_EQ(stream.Flush().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(stream.Finish().status().code(), absl::StatusCode::kNotFound);
}

TEST(FromGrpcStatusTest, KeepsCodeAndMessage) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  const absl::Status s =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many exports"));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "too many exports");
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "x")).code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rwexport
