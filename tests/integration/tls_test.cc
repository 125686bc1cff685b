// Delivery over TLS to real Prometheus servers started with a --web.config.file: server
// certificates from a test CA, basic auth, and client certificates (mutual TLS). The
// certificates are made at test time with the openssl command.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/sample_stream.h"
#include "lib/remote_write/sender.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/series.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kWait = absl::Seconds(20);
constexpr char kUser[] = "alice";
constexpr char kPassword[] = "correct-horse";
// bcrypt("correct-horse"), cost 4 (made once with python3-bcrypt; checking it stays fast).
constexpr char kPasswordHash[] = "$2b$04$o76fxCoN.gdeJT08UN9UKOUkZ24VO/AWNK5GvfYAcYKxzMe9X0ahK";

// A test CA, a server certificate for 127.0.0.1 and a client certificate signed by it, and an
// unrelated CA. EC P-256 keys: fast to make.
constexpr char kMakeCertificates[] = R"(set -e
cd "$1"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=rwexport-test-ca
openssl req -x509 $ec -keyout wrong-ca.key -out wrong-ca.crt -days 2 -subj /CN=rwexport-wrong-ca
openssl req $ec -keyout server.key -out server.csr -subj /CN=127.0.0.1
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
  -days 2 -extfile server.ext
openssl req $ec -keyout client.key -out client.csr -subj /CN=rwexport-client
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt \
  -days 2 -extfile client.ext
)";

bool WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return static_cast<bool>(out);
}

const Series* MakeSeries(std::string name) { return TestSeries({{"__name__", std::move(name)}}); }

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/tls-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = new std::string(pattern);
    ASSERT_TRUE(WriteFile(Path("make-certificates.sh"), kMakeCertificates));
    const std::string command = absl::StrCat("sh ", Path("make-certificates.sh"), " ", *dir_, " > ",
                                             Path("openssl.log"), " 2>&1");
    ASSERT_EQ(std::system(command.c_str()), 0) << "openssl failed; see " << Path("openssl.log");

    const std::string tls = absl::StrCat("tls_server_config:\n  cert_file: ", Path("server.crt"),
                                         "\n  key_file: ", Path("server.key"), "\n");
    ASSERT_TRUE(WriteFile(Path("web-basic.yml"), absl::StrCat(tls, "basic_auth_users:\n  ", kUser,
                                                              ": ", kPasswordHash, "\n")));
    ASSERT_TRUE(WriteFile(Path("web-mtls.yml"),
                          absl::StrCat(tls, "  client_auth_type: RequireAndVerifyClientCert\n",
                                       "  client_ca_file: ", Path("ca.crt"), "\n")));

    PrometheusServer::Options basic;
    basic.extra_flags = {"--web.config.file=" + Path("web-basic.yml")};
    basic.scheme = "https";
    basic.ca_file = Path("ca.crt");
    basic.username = kUser;
    basic.password = kPassword;
    absl::StatusOr<std::unique_ptr<PrometheusServer>> started = PrometheusServer::Start(basic);
    ASSERT_TRUE(started.ok()) << started.status();
    basic_ = started->release();

    PrometheusServer::Options mtls;
    mtls.extra_flags = {"--web.config.file=" + Path("web-mtls.yml")};
    mtls.scheme = "https";
    mtls.ca_file = Path("ca.crt");
    mtls.client_cert_file = Path("client.crt");
    mtls.client_key_file = Path("client.key");
    started = PrometheusServer::Start(mtls);
    ASSERT_TRUE(started.ok()) << started.status();
    mtls_ = started->release();
  }

  static void TearDownTestSuite() {
    delete basic_;
    delete mtls_;
    basic_ = mtls_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(basic_, nullptr);
    ASSERT_NE(mtls_, nullptr);
  }

  static std::string Path(absl::string_view file) { return absl::StrCat(*dir_, "/", file); }

  static TargetOptions Options(const PrometheusServer& server) {
    TargetOptions options;
    options.url = server.remote_write_url();
    options.ca_file = Path("ca.crt");
    options.min_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(100);
    return options;
  }

  // Three points of `name`, a few seconds old, values 1.5, 2.5, 3.5.
  static SeriesPoints::Points ThreePoints() {
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    return {{now_ms - 3000, 1.5}, {now_ms - 2000, 2.5}, {now_ms - 1000, 3.5}};
  }

  // What `server` stores for `name`, as (timestamp, value) points.
  static std::vector<std::pair<int64_t, double>> Stored(PrometheusServer& server,
                                                        const std::string& name) {
    absl::StatusOr<std::vector<QueryResult>> result =
        server.Query(name + "[10m]", absl::Now() + absl::Seconds(30));
    EXPECT_TRUE(result.ok()) << result.status();
    std::vector<std::pair<int64_t, double>> out;
    if (result.ok()) {
      for (const QueryResult& r : *result) out.emplace_back(r.timestamp_ms, r.value);
    }
    return out;
  }

  static std::vector<std::pair<int64_t, double>> AsPairs(const SeriesPoints::Points& points) {
    std::vector<std::pair<int64_t, double>> out;
    for (const Point& p : points) out.emplace_back(p.timestamp_ms, p.value);
    return out;
  }

  static std::string* dir_;
  static PrometheusServer* basic_;
  static PrometheusServer* mtls_;
};

std::string* TlsTest::dir_ = nullptr;
PrometheusServer* TlsTest::basic_ = nullptr;
PrometheusServer* TlsTest::mtls_ = nullptr;

TEST_F(TlsTest, RightCaAndPasswordDeliver) {
  Sender sender;
  TargetOptions options = Options(*basic_);
  options.username = kUser;
  options.password = kPassword;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  const SeriesPoints::Points points = ThreePoints();
  PointBatch batch;
  batch.series.push_back({MakeSeries("tls_basic_ok"), points});
  sender.Enqueue(*id, batch);
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(figures.points_sent, 3u);
  EXPECT_EQ(figures.requests, 1u);
  EXPECT_EQ(figures.failures, 0u);
  EXPECT_EQ(figures.last_error, "");
  EXPECT_EQ(Stored(*basic_, "tls_basic_ok"), AsPairs(points));
}

TEST_F(TlsTest, WrongPasswordIsDroppedWithoutRetry) {
  Sender sender;
  TargetOptions options = Options(*basic_);
  options.username = kUser;
  options.password = "wrong-horse";
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  const SeriesPoints::Points points = ThreePoints();
  for (int b = 0; b < 2; ++b) {
    PointBatch batch;
    batch.series.push_back({MakeSeries("tls_wrong_password"), {points[b]}});
    sender.Enqueue(*id, batch);
  }
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(figures.points_sent, 0u);
  EXPECT_EQ(figures.requests, 2u);  // one per batch: a 401 is not retried
  EXPECT_EQ(figures.retries, 0u);
  EXPECT_EQ(figures.failures, 2u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("http_401", 2u)));
  EXPECT_THAT(figures.last_error, StartsWith("HTTP 401"));
  EXPECT_THAT(figures.last_error, ::testing::Not(HasSubstr("wrong-horse")));
  EXPECT_TRUE(Stored(*basic_, "tls_wrong_password").empty());
}

TEST_F(TlsTest, WrongCaIsRetriedAndDroppedAtTheDeadline) {
  Sender sender;
  TargetOptions options = Options(*basic_);
  options.ca_file = Path("wrong-ca.crt");
  options.username = kUser;
  options.password = kPassword;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  PointBatch batch;
  batch.series.push_back({MakeSeries("tls_wrong_ca"), ThreePoints()});
  sender.Enqueue(*id, batch);
  const absl::Time give_up = absl::Now() + kWait;
  while (sender.Figures(*id).failures < 3 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));  // nothing signals a failed attempt
  }
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now());

  EXPECT_EQ(figures.points_sent, 0u);
  EXPECT_GE(figures.failures, 3u);
  EXPECT_GE(figures.retries, 2u);
  EXPECT_THAT(figures.dropped_by_reason, UnorderedElementsAre(Pair("shutdown_timeout", 3u)));
  EXPECT_THAT(figures.last_error, StartsWith("curl: SSL certificate problem"));
}

TEST_F(TlsTest, InsecureSkipVerifyDeliversDespiteTheWrongCa) {
  Sender sender;
  TargetOptions options = Options(*basic_);
  options.ca_file = Path("wrong-ca.crt");
  options.insecure_skip_verify = true;
  options.username = kUser;
  options.password = kPassword;
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();
  const SeriesPoints::Points points = ThreePoints();
  PointBatch batch;
  batch.series.push_back({MakeSeries("tls_insecure"), points});
  sender.Enqueue(*id, batch);
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + kWait);

  EXPECT_EQ(figures.points_sent, 3u);
  EXPECT_EQ(figures.failures, 0u);
  EXPECT_EQ(Stored(*basic_, "tls_insecure"), AsPairs(points));
}

TEST_F(TlsTest, MutualTlsNeedsTheClientCertificate) {
  Sender sender;
  TargetOptions with_cert = Options(*mtls_);
  with_cert.cert_file = Path("client.crt");
  with_cert.key_file = Path("client.key");
  absl::StatusOr<Sender::TargetId> with_id = sender.AddTarget(with_cert);
  ASSERT_TRUE(with_id.ok()) << with_id.status();
  absl::StatusOr<Sender::TargetId> without_id = sender.AddTarget(Options(*mtls_));
  ASSERT_TRUE(without_id.ok()) << without_id.status();
  const SeriesPoints::Points points = ThreePoints();
  PointBatch with_batch, without_batch;
  with_batch.series.push_back({MakeSeries("tls_client_cert"), points});
  without_batch.series.push_back({MakeSeries("tls_no_client_cert"), points});
  sender.Enqueue(*with_id, with_batch);
  sender.Enqueue(*without_id, without_batch);

  const TargetFigures with = sender.RemoveTarget(*with_id, absl::Now() + kWait);
  EXPECT_EQ(with.points_sent, 3u);
  EXPECT_EQ(with.failures, 0u);
  EXPECT_EQ(Stored(*mtls_, "tls_client_cert"), AsPairs(points));

  const absl::Time give_up = absl::Now() + kWait;
  while (sender.Figures(*without_id).failures < 1 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));  // nothing signals a failed attempt
  }
  const TargetFigures without = sender.RemoveTarget(*without_id, absl::Now());
  EXPECT_EQ(without.points_sent, 0u);
  EXPECT_GE(without.failures, 1u);
  EXPECT_THAT(without.dropped_by_reason, UnorderedElementsAre(Pair("shutdown_timeout", 3u)));
  EXPECT_THAT(without.last_error, StartsWith("curl: "));
  EXPECT_TRUE(Stored(*mtls_, "tls_no_client_cert").empty());
}

// The export configuration's credentials and tls block, through the whole server: `tls`
// and `credentials` are applied to `target` (a remote-write target of `server`), 7 requests
// are streamed, and the counter read back.
void ExportSevenRequests(PrometheusServer& prometheus, const std::string& run,
                         const std::function<void(v1::Target*)>& configure) {
  TestServer server;
  std::unique_ptr<v1::ExportService::Stub> stub = server.NewStub();
  v1::StartExportRequest request;
  request.set_test_run_id(run);
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(prometheus.remote_write_url());
  target->set_include_default_metrics(false);
  target->set_include_test_run_id(true);
  target->add_metrics()->set_source_metric("http_reqs");
  configure(target);
  grpc::ClientContext start_context;
  v1::StartExportResponse started;
  const grpc::Status start_status = stub->StartExport(&start_context, request, &started);
  ASSERT_TRUE(start_status.ok()) << start_status.error_message();

  SampleStream stream(stub.get(), started.export_id());
  const int64_t now_ns = absl::ToUnixNanos(absl::Now());
  for (int i = 0; i < 7; ++i) stream.Add("http_reqs", {}, now_ns, 1);
  ASSERT_TRUE(stream.Finish().ok());
  grpc::ClientContext stop_context;
  v1::StopExportRequest stop;
  stop.set_export_id(started.export_id());
  v1::StopExportResponse stopped;
  ASSERT_TRUE(stub->StopExport(&stop_context, stop, &stopped).ok());

  ASSERT_EQ(stopped.targets_size(), 1);
  EXPECT_EQ(stopped.targets(0).points_dropped(), 0u) << stopped.targets(0).last_error();
  EXPECT_EQ(stopped.targets(0).failures(), 0u);
  EXPECT_EQ(stopped.targets(0).points_sent(), 1u);  // one window, one counter point
  absl::StatusOr<std::vector<QueryResult>> stored =
      prometheus.Query(absl::StrCat("k6_http_reqs_total{test_run_id=\"", run, "\"}[10m]"),
                       absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->front().value, 7);
}

TEST_F(TlsTest, ExportConfigurationWithCaAndBasicAuth) {
  ExportSevenRequests(*basic_, "tls-basic-export", [](v1::Target* target) {
    target->mutable_tls()->set_ca_file(Path("ca.crt"));
    target->mutable_credentials()->set_username(kUser);
    target->mutable_credentials()->set_password(kPassword);
  });
}

TEST_F(TlsTest, ExportConfigurationWithClientCertificate) {
  ExportSevenRequests(*mtls_, "tls-mtls-export", [](v1::Target* target) {
    target->mutable_tls()->set_ca_file(Path("ca.crt"));
    target->mutable_tls()->set_cert_file(Path("client.crt"));
    target->mutable_tls()->set_key_file(Path("client.key"));
  });
}

}  // namespace
}  // namespace rwexport
