#include "lib/prometheus/query_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/remote.pb.h"
#include "tests/testing/prometheus.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Labels = std::map<std::string, std::string>;

// --- ParseQueryResponse on literal bodies ---------------------------------------------------

TEST(ParseQueryResponseTest, VectorWithLabels) {
  absl::StatusOr<std::vector<InstantSample>> parsed = ParseQueryResponse(R"({
    "status": "success",
    "data": {
      "resultType": "vector",
      "result": [
        {"metric": {"__name__": "k6_http_reqs_total", "test_run_id": "run-1", "name": "a b"},
         "value": [1730305224.5, "60"]},
        {"metric": {"test_run_id": "run-2"}, "value": [1730305224.5, "0.125"]}
      ]
    }
  })");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ(
      (*parsed)[0].labels,
      (Labels{{"__name__", "k6_http_reqs_total"}, {"name", "a b"}, {"test_run_id", "run-1"}}));
  EXPECT_EQ((*parsed)[0].value, 60);
  EXPECT_EQ((*parsed)[0].timestamp, absl::FromUnixMillis(1730305224500));
  EXPECT_EQ((*parsed)[1].labels, (Labels{{"test_run_id", "run-2"}}));
  EXPECT_EQ((*parsed)[1].value, 0.125);
}

TEST(ParseQueryResponseTest, EmptyVector) {
  absl::StatusOr<std::vector<InstantSample>> parsed =
      ParseQueryResponse(R"({"status":"success","data":{"resultType":"vector","result":[]}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed, IsEmpty());
}

TEST(ParseQueryResponseTest, Scalar) {
  absl::StatusOr<std::vector<InstantSample>> parsed = ParseQueryResponse(
      R"({"status":"success","data":{"resultType":"scalar","result":[1730305221.123,"42.5"]}})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_THAT((*parsed)[0].labels, IsEmpty());
  EXPECT_EQ((*parsed)[0].value, 42.5);
  // 1730305221.123 is not exact in binary: the milliseconds must still come out exact.
  EXPECT_EQ((*parsed)[0].timestamp, absl::FromUnixMillis(1730305221123));
}

TEST(ParseQueryResponseTest, SpecialValues) {
  absl::StatusOr<std::vector<InstantSample>> parsed = ParseQueryResponse(R"({
    "status": "success",
    "data": {"resultType": "vector", "result": [
      {"metric": {"v": "nan"}, "value": [1, "NaN"]},
      {"metric": {"v": "inf"}, "value": [1, "+Inf"]},
      {"metric": {"v": "-inf"}, "value": [1, "-Inf"]},
      {"metric": {"v": "exp"}, "value": [1, "1e-3"]}
    ]}
  })");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 4u);
  EXPECT_TRUE(std::isnan((*parsed)[0].value));
  EXPECT_TRUE(std::isinf((*parsed)[1].value));
  EXPECT_GT((*parsed)[1].value, 0);
  EXPECT_TRUE(std::isinf((*parsed)[2].value));
  EXPECT_LT((*parsed)[2].value, 0);
  EXPECT_EQ((*parsed)[3].value, 0.001);
  EXPECT_EQ((*parsed)[0].timestamp, absl::FromUnixSeconds(1));
}

TEST(ParseQueryResponseTest, ErrorBodyIsInvalidArgumentWithPrometheusMessage) {
  absl::StatusOr<std::vector<InstantSample>> parsed = ParseQueryResponse(
      R"({"status":"error","errorType":"bad_data",)"
      R"("error":"invalid parameter \"query\": 1:10: parse error: unexpected end of input"})");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("bad_data"));
  EXPECT_THAT(parsed.status().message(),
              HasSubstr("invalid parameter \"query\": 1:10: parse error: unexpected end of input"));
}

TEST(ParseQueryResponseTest, MatrixIsNotAnInstantResult) {
  absl::StatusOr<std::vector<InstantSample>> parsed =
      ParseQueryResponse(R"({"status":"success","data":{"resultType":"matrix","result":[]}})");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("matrix"));
}

TEST(ParseQueryResponseTest, MalformedBodiesAreErrorsNotCrashes) {
  for (const char* body : {
           "",
           "not json",
           "[1, 2]",
           R"({"status":"success"})",
           R"({"status":"success","data":null})",
           R"({"status":"success","data":{"resultType":"vector"}})",
           R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}})",
           R"({"status":"success","data":{"resultType":"vector","result":7}})",
           R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]}]}})",
           R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},)"
           R"("value":[1,"1"]}]}})",
           R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},)"
           R"("value":["x","1"]}]}})",
           R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},)"
           R"("value":[1,"one"]}]}})",
           R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},)"
           R"("value":[1,2]}]}})",
           R"({"status":"success","data":{"resultType":"scalar","result":["x","1"]}})",
           R"({"status":7})",
       }) {
    absl::StatusOr<std::vector<InstantSample>> parsed = ParseQueryResponse(body);
    EXPECT_FALSE(parsed.ok()) << body;
  }
}

// --- QueryClient against a real Prometheus ---------------------------------------------------

prometheus::WriteRequest OneSample(const std::string& name, const std::string& run, double value,
                                   int64_t timestamp_ms) {
  prometheus::WriteRequest request;
  prometheus::TimeSeries* series = request.add_timeseries();
  for (const auto& [label, label_value] :
       std::vector<std::pair<std::string, std::string>>{{"__name__", name}, {"test_run_id", run}}) {
    prometheus::Label* l = series->add_labels();
    l->set_name(label);
    l->set_value(label_value);
  }
  prometheus::Sample* sample = series->add_samples();
  sample->set_value(value);
  sample->set_timestamp(timestamp_ms);
  return request;
}

class QueryClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<PrometheusServer*> server = PrometheusServer::Shared();
    ASSERT_TRUE(server.ok()) << server.status();
    prometheus_ = *server;
  }
  void SetUp() override { ASSERT_NE(prometheus_, nullptr); }

  static PrometheusServer* prometheus_;
};

PrometheusServer* QueryClientTest::prometheus_ = nullptr;

TEST_F(QueryClientTest, ReadsBackWhatWasRemoteWritten) {
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  absl::StatusOr<HttpResponse> written =
      prometheus_->RemoteWrite(OneSample("qc_pushed_total", "qc-run", 1234.5, now_ms));
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_EQ(written->status, 204) << written->body;

  QueryClient client(prometheus_->base_url());
  const absl::Time at = absl::FromUnixMillis(now_ms + 1000);
  absl::StatusOr<std::vector<InstantSample>> result =
      client.Query("qc_pushed_total{test_run_id=\"qc-run\"}", at);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 1u);
  EXPECT_EQ((*result)[0].labels,
            (Labels{{"__name__", "qc_pushed_total"}, {"test_run_id", "qc-run"}}));
  EXPECT_EQ((*result)[0].value, 1234.5);
  // An instant vector carries the evaluation time.
  EXPECT_EQ((*result)[0].timestamp, at);

  // A function of it drops the name; a scalar comes back as one sample without labels.
  result = client.Query("sum(qc_pushed_total) * 2", at);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 1u);
  EXPECT_THAT((*result)[0].labels, IsEmpty());
  EXPECT_EQ((*result)[0].value, 2469);
  result = client.Query("scalar(qc_pushed_total)", at);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), 1u);
  EXPECT_EQ((*result)[0].value, 1234.5);

  // Nothing before the sample was written.
  result = client.Query("qc_pushed_total", absl::FromUnixMillis(now_ms - 1000));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*result, IsEmpty());
}

TEST_F(QueryClientTest, BadPromQLIsInvalidArgumentWithPrometheusMessage) {
  QueryClient client(prometheus_->base_url());
  absl::StatusOr<std::vector<InstantSample>> result = client.Query("sum(", absl::Now());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("HTTP 400"));
  EXPECT_THAT(result.status().message(), HasSubstr("bad_data"));
  EXPECT_THAT(result.status().message(), HasSubstr("parse error"));
}

TEST(QueryClientTransportTest, NobodyListeningIsUnavailable) {
  // A port that was free a moment ago.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  const std::string base = absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port));

  QueryClient client(base, absl::Seconds(5));
  absl::StatusOr<std::vector<InstantSample>> result = client.Query("up", absl::Now());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(result.status().message(), HasSubstr(base));
}

}  // namespace
}  // namespace rwexport
