// The InfluxDB write API (server/influx_endpoint.h) over real HTTP: the protocol as InfluxDB
// 1.x answers it, bad line protocol (acceptance 3), authentication, metric declarations for the
// whole export, auto-started exports, overload; and Debian's python3-influxdb client writing a
// real k6 run into a real Prometheus (acceptance 2).
#include <zlib.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/export/export.h"
#include "rwexport/v1/export.pb.h"
#include "server/influx_endpoint.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/figures.h"
#include "tests/testing/influx_writer.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/reference_aggregation.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_server.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::StartExportRequest Request(const std::string& run, const std::string& url,
                               std::vector<std::string> metrics = {}) {
  v1::StartExportRequest request;
  request.set_test_run_id(run);
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(url);
  target->set_include_test_run_id(true);
  for (const std::string& m : metrics) target->add_metrics()->set_source_metric(m);
  return request;
}

std::string Gzip(const std::string& text) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, text.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = text.size();
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = out.size();
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// "<ns>" a little before now: a timestamp every export takes.
std::string Now() { return absl::StrCat(absl::ToUnixNanos(absl::Now()) - 1000000000); }

class InfluxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
  }

  // A server with the endpoint, and a running export for `run`.
  std::unique_ptr<TestServer> Serve(InfluxEndpointOptions influx = {},
                                    const std::string& token = "") {
    TestServerOptions options;
    options.influx = std::move(influx);
    options.auth_token = token;
    return std::make_unique<TestServer>(std::move(options));
  }

  std::string Start(TestServer& server, const v1::StartExportRequest& request) {
    absl::StatusOr<v1::StartExportResponse> started = server.registry().Start(request);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? started->export_id() : "";
  }

  HttpAnswer Call(const std::string& method, const std::string& url,
                  const std::vector<std::string>& headers = {}, const std::string& body = "") {
    absl::StatusOr<HttpAnswer> answer = HttpCall(method, url, headers, body);
    EXPECT_TRUE(answer.ok()) << answer.status();
    return answer.ok() ? *answer : HttpAnswer();
  }

  std::unique_ptr<FakeReceiver> receiver_;
};

TEST_F(InfluxTest, AnswersAsInfluxDbDoes) {
  InfluxEndpointOptions options;
  options.max_body_bytes = 4000;
  std::unique_ptr<TestServer> server = Serve(options);
  const std::string base = server->influx_url();
  const std::string id = Start(*server, Request("basics", receiver_->Url()));

  HttpAnswer ping = Call("GET", base + "/ping");
  EXPECT_EQ(ping.status, 204);
  EXPECT_EQ(ping.headers["x-influxdb-version"], "1.8.10");
  EXPECT_EQ(Call("HEAD", base + "/ping").status, 204);

  // k6's start-up call (form body as in InfluxDB's docs; k6 puts q in the URL, see fidelity).
  HttpAnswer created =
      Call("POST", base + "/query", {"Content-Type: application/x-www-form-urlencoded"},
           "q=CREATE+DATABASE+%22basics%22");
  EXPECT_EQ(created.status, 200);
  EXPECT_EQ(created.headers["content-type"], "application/json");
  EXPECT_EQ(created.body, "{\"results\":[{\"statement_id\":0}]}");
  EXPECT_EQ(Call("GET", base + "/query?q=SHOW%20DATABASES").body,
            "{\"results\":[{\"statement_id\":0,\"series\":[{\"name\":\"databases\",\"columns\":"
            "[\"name\"],\"values\":[[\"basics\"]]}]}]}");
  HttpAnswer no_q = Call("GET", base + "/query");
  EXPECT_EQ(no_q.status, 400);
  EXPECT_EQ(no_q.body, "{\"error\":\"missing required parameter \\\"q\\\"\"}");

  HttpAnswer no_db = Call("POST", base + "/write", {}, "http_reqs value=1");
  EXPECT_EQ(no_db.status, 400);
  EXPECT_EQ(no_db.body, "{\"error\":\"database is required\"}");
  HttpAnswer unknown = Call("POST", base + "/write?db=nope", {}, "http_reqs value=1");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body, "{\"error\":\"database not found: \\\"nope\\\"\"}");
  EXPECT_EQ(unknown.headers["x-influxdb-error"], "database not found: \"nope\"");
  EXPECT_EQ(Call("POST", base + "/write?db=basics&precision=d", {}, "x").status, 400);
  EXPECT_EQ(Call("GET", base + "/write?db=basics").status, 405);
  EXPECT_EQ(Call("GET", base + "/other").status, 404);

  // By test run id, by export id, gzip, precision s; rp and consistency ignored.
  const std::string line = absl::StrCat("http_reqs,status=200 value=1 ", Now(), "\n");
  EXPECT_EQ(Call("POST", base + "/write?db=basics&rp=autogen&consistency=one", {}, line).status,
            204);
  EXPECT_EQ(Call("POST", base + "/write?db=" + id, {}, line).status, 204);
  EXPECT_EQ(Call("POST", base + "/write?db=basics", {"Content-Encoding: gzip"}, Gzip(line)).status,
            204);
  EXPECT_EQ(Call("POST", base + "/write?db=basics&precision=s", {},
                 absl::StrCat("http_reqs value=1 ", absl::ToUnixSeconds(absl::Now()) - 1))
                .status,
            204);
  HttpAnswer corrupt = Call("POST", base + "/write?db=basics", {"Content-Encoding: gzip"}, line);
  EXPECT_EQ(corrupt.status, 400);
  EXPECT_THAT(corrupt.body, StartsWith("{\"error\":\"gzip: "));

  // Too large, before and after decompression (max_body_bytes 4000).
  HttpAnswer large = Call("POST", base + "/write?db=basics", {}, std::string(5000, '#'));
  EXPECT_EQ(large.status, 413);
  EXPECT_EQ(large.body, "{\"error\":\"Request Entity Too Large\"}");
  EXPECT_EQ(Call("POST", base + "/write?db=basics", {"Content-Encoding: gzip"},
                 Gzip(std::string(5000, '#')))
                .status,
            413);

  absl::StatusOr<v1::StopExportResponse> stopped = server->registry().Stop(id, absl::Seconds(10));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 4u);
  EXPECT_EQ(stopped->samples_rejected(), 0u);
}

// Acceptance (issue 11, 3): every malformation class, a missing `value`, a string value, NaN
// and a 10 MB line: 400 with InfluxDB's partial-write error naming the first bad line, each
// counted by reason in the export's figures; the good lines in the same body are applied.
TEST_F(InfluxTest, BadLinesAreRejectedByReasonAndTheGoodOnesKept) {
  std::unique_ptr<TestServer> server = Serve();
  const std::string id = Start(*server, Request("bad-lines", receiver_->Url(), {}));
  const std::string ts = Now();
  std::string body = absl::StrCat("http_reqs,status=200 value=1 ", ts, "\n");  // 1: good
  absl::StrAppend(&body, "http_reqs,status value=1 ", ts, "\n");               // missing tag value
  absl::StrAppend(&body, ",status=200 value=1 ", ts, "\n");               // missing measurement
  absl::StrAppend(&body, "http_reqs,status=200 ", ts, "\n");              // missing field value
  absl::StrAppend(&body, "http_reqs,status=200 value=\"1 ", ts, "\n");    // unbalanced quotes
  absl::StrAppend(&body, "http_reqs,status=200 value=1 12:00\n");         // bad timestamp
  absl::StrAppend(&body, "http_reqs,status=200 value=NaN ", ts, "\n");    // invalid number
  absl::StrAppend(&body, "http_reqs,status=200 url=\"/\" ", ts, "\n");    // no value field
  absl::StrAppend(&body, "http_reqs,status=200 value=\"1\" ", ts, "\n");  // string value
  absl::StrAppend(&body, "http_reqs,status=200 value=", std::string(10 << 20, '1'), " ", ts,
                  "\n");  // 10 MB
  absl::StrAppend(&body, "# a comment\n\n");
  absl::StrAppend(&body, "http_reqs,status=500 value=2 ", ts, "\n");  // 12: good
  HttpAnswer answer = Call("POST", server->influx_url() + "/write?db=bad-lines", {}, body);
  EXPECT_EQ(answer.status, 400);
  const std::string message =
      absl::StrCat("partial write: unable to parse 'http_reqs,status value=1 ", ts,
                   "': missing tag value (line 2; 9 of 11 lines not samples) dropped=9");
  EXPECT_EQ(answer.body, absl::StrCat("{\"error\":\"", message, "\"}"));
  EXPECT_EQ(answer.headers["x-influxdb-error"], message);

  absl::StatusOr<v1::StopExportResponse> stopped = server->registry().Stop(id, absl::Seconds(10));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 2u);
  EXPECT_EQ(stopped->samples_rejected(), 9u);
  EXPECT_EQ(
      ByReason(stopped->rejections()),
      (std::map<std::string, uint64_t>{
          {"invalid_line", 6}, {"invalid_value", 1}, {"line_too_long", 1}, {"missing_value", 1}}));
  for (const v1::Rejection& r : stopped->rejections()) {
    if (r.reason() == "line_too_long") {
      EXPECT_EQ(r.example(),
                absl::StrCat("line 10: line too long (", 27 + (10 << 20) + 1 + ts.size(),
                             " bytes; at most 65536)"));
    }
  }
  ASSERT_EQ(stopped->targets_size(), 1);
  EXPECT_EQ(stopped->targets(0).points_dropped(), 0u);
  EXPECT_GT(stopped->targets(0).points_sent(), 0u);
}

TEST_F(InfluxTest, TheTokenIsAcceptedWhereverInfluxClientsPutIt) {
  std::unique_ptr<TestServer> server = Serve({}, "s3cret");
  const std::string base = server->influx_url();
  Start(*server, Request("auth", receiver_->Url()));
  const std::string write = base + "/write?db=auth";
  const std::string line = absl::StrCat("http_reqs value=1 ", Now());
  EXPECT_EQ(Call("POST", write, {"Authorization: Bearer s3cret"}, line).status, 204);
  EXPECT_EQ(Call("POST", write, {"Authorization: Token s3cret"}, line).status, 204);
  EXPECT_EQ(Call("POST", write, {"Authorization: Token k6:s3cret"}, line).status, 204);
  EXPECT_EQ(
      Call("POST", write, {"Authorization: Basic " + absl::Base64Escape("k6:s3cret")}, line).status,
      204);
  EXPECT_EQ(Call("POST", write + "&u=k6&p=s3cret", {}, line).status, 204);
  HttpAnswer none = Call("POST", write, {}, line);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.body, "{\"error\":\"unable to parse authentication credentials\"}");
  HttpAnswer wrong = Call("POST", write, {"Authorization: Bearer s3cre"}, line);
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.body, "{\"error\":\"authorization failed\"}");
  EXPECT_EQ(Call("POST", base + "/query?q=CREATE+DATABASE+auth").status, 401);
  EXPECT_EQ(Call("GET", base + "/ping").status, 204);  // as InfluxDB: no credentials needed
}

// Item 2: metrics declared at StartExport apply to the endpoint's samples; an undeclared custom
// metric is still rejected, by name.
TEST_F(InfluxTest, DeclaredCustomMetricsAreAcceptedAndUnknownOnesNamed) {
  std::unique_ptr<TestServer> server = Serve();
  v1::StartExportRequest request = Request("declared", receiver_->Url(), {"checkout_time"});
  v1::MetricDeclaration* declared = request.add_metric_declarations();
  declared->set_name("checkout_time");
  declared->set_type(v1::TREND);
  declared->set_kind(v1::TIME);
  const std::string id = Start(*server, request);
  const std::string ts = Now();
  HttpAnswer answer =
      Call("POST", server->influx_url() + "/write?db=declared", {},
           absl::StrCat("checkout_time,flow=a value=1500 ", ts, "\nmystery value=1 ", ts, "\n"));
  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(answer.body,
            "{\"error\":\"partial write: 1 of 2 samples rejected: unknown_metric 1 (e.g. mystery) "
            "dropped=1\"}");
  absl::StatusOr<v1::StopExportResponse> stopped = server->registry().Stop(id, absl::Seconds(10));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 1u);
  ASSERT_EQ(stopped->rejections_size(), 1);
  EXPECT_EQ(stopped->rejections(0).reason(), "unknown_metric");
  EXPECT_EQ(stopped->rejections(0).example(), "mystery");
  // The trend's statistics went out in seconds (time kind): max 1.5.
  bool found = false;
  for (const ReceivedRequest& r : receiver_->Requests()) {
    for (const prometheus::TimeSeries& series : r.write_request.timeseries()) {
      for (const prometheus::Label& l : series.labels()) {
        if (l.name() == "__name__" && l.value() == "k6_checkout_time_max") {
          found = true;
          EXPECT_EQ(series.samples(0).value(), 1.5);
        }
      }
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(InfluxTest, AWriteToAnUnknownDbStartsAnExportThatStopsWhenIdle) {
  InfluxEndpointOptions options;
  options.auto_export = Request("", receiver_->Url());
  options.idle_stop = absl::Milliseconds(300);
  std::unique_ptr<TestServer> server = Serve(options);
  EXPECT_EQ(Call("POST", server->influx_url() + "/write?db=auto-run", {},
                 absl::StrCat("http_reqs value=3 ", Now()))
                .status,
            204);
  std::vector<v1::ExportStatus> running = server->registry().List();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].test_run_id(), "auto-run");
  EXPECT_EQ(running[0].samples_accepted(), 1u);
  // Stopped (flushed, delivered) once idle: bounded wait.
  for (int i = 0; i < 200 && server->registry().size() > 0; ++i)
    absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(server->registry().size(), 0u);
  ASSERT_TRUE(receiver_->WaitForRequests(1, absl::Seconds(10)));
  double total = 0;
  for (const ReceivedRequest& r : receiver_->Requests()) {
    for (const prometheus::TimeSeries& series : r.write_request.timeseries()) {
      for (const prometheus::Label& l : series.labels()) {
        if (l.name() == "__name__" && l.value() == "k6_http_reqs_total") {
          total = series.samples(series.samples_size() - 1).value();
        }
      }
    }
  }
  EXPECT_EQ(total, 3);
}

TEST_F(InfluxTest, OverloadIsRefusedWith503AndAPortInUseWithAClearError) {
  InfluxEndpointOptions options;
  options.max_applying = 0;  // every write finds the server "full"
  std::unique_ptr<TestServer> server = Serve(options);
  Start(*server, Request("busy", receiver_->Url()));
  HttpAnswer busy = Call("POST", server->influx_url() + "/write?db=busy", {},
                         absl::StrCat("http_reqs value=1 ", Now()));
  EXPECT_EQ(busy.status, 503);
  EXPECT_EQ(busy.headers["retry-after"], "1");
  EXPECT_THAT(busy.body, HasSubstr("overloaded"));
  EXPECT_EQ(server->registry().List()[0].samples_accepted(), 0u);

  InfluxEndpointOptions taken;
  taken.listen = server->influx_url().substr(std::string("http://").size());
  absl::StatusOr<std::unique_ptr<InfluxEndpoint>> second =
      InfluxEndpoint::Start(&server->registry(), taken);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("Address already in use"));
}

// Acceptance (issue 11, 2): a client no one here wrote, Debian's python3-influxdb, with the
// token as its basic-auth password, writes the real k6 run into a real Prometheus.
TEST_F(InfluxTest, PythonInfluxdbClientLandsARealRunInPrometheus) {
  absl::StatusOr<PrometheusServer*> prometheus = PrometheusServer::Shared();
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  std::unique_ptr<TestServer> server = Serve({}, "py-t0ken");
  const std::string run = absl::StrCat("influx-python-", absl::ToUnixNanos(absl::Now()));
  const std::string id = Start(*server, Request(run, (*prometheus)->remote_write_url()));
  const std::string file = K6TestdataFile("finance-run.json");
  absl::StatusOr<reference::RefRun> recorded = reference::ReadK6JsonFile(file);
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  const int64_t shift = absl::ToUnixNanos(absl::Now()) - 1000000000 - recorded->LastTimestampNs();

  absl::StatusOr<std::unique_ptr<Subprocess>> client = Subprocess::Start(
      "/usr/bin/python3", {RunfilePath("tests/integration/influx_python_client.py"), "127.0.0.1",
                           server->influx_url().substr(server->influx_url().rfind(':') + 1), run,
                           "py-t0ken", file, absl::StrCat(shift)});
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<int> exit_code = (*client)->Wait(absl::Seconds(120));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  ASSERT_EQ(*exit_code, 0) << (*client)->stderr_text();
  EXPECT_THAT((*client)->stdout_text(), StartsWith("points 802 writes "));

  absl::StatusOr<v1::StopExportResponse> stopped = server->registry().Stop(id, absl::Seconds(30));
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->samples_accepted(), 802u);
  EXPECT_EQ(stopped->samples_rejected(), 0u);
  ASSERT_EQ(stopped->targets_size(), 1);
  EXPECT_EQ(stopped->targets(0).points_dropped(), 0u);
  ExpectFinanceRunTotals(**prometheus, run);
}

}  // namespace
}  // namespace rwexport
