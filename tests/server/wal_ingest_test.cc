// Issue 12, ingest through the write-ahead log, in process: with a data dir, StreamSamples is
// answered OK only once its batches are durable, and a batch the log cannot take (a file size
// limit: EFBIG, as a full disk) ends the call with RESOURCE_EXHAUSTED and the cause; once the
// log can be written again, ingest resumes.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/influx_writer.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(base != nullptr ? base : "/tmp", "/walingest.XXXXXX");
  return mkdtemp(templ.data()) != nullptr ? templ : "";
}

class WalIngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.data_dir = MakeTempDir() + "/data";
    options.workers = 1;
    options.exports.default_delivery_timeout = absl::Milliseconds(200);  // the target is down
    data_dir_ = options.data_dir;
    options.influx.emplace();
    options.influx->listen = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = server_->NewStub();
    v1::StartExportRequest request;
    request.set_test_run_id("wal-ingest");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");  // nothing listens
    grpc::ClientContext context;
    v1::StartExportResponse response;
    ASSERT_TRUE(stub_->StartExport(&context, request, &response).ok());
    id_ = response.export_id();
  }

  // One batch of `n` http_reqs samples, as one call; its status (and counts in `response`).
  grpc::Status Stream(int n, v1::StreamSamplesResponse* response) {
    v1::SampleBatch batch;
    batch.set_export_id(id_);
    for (int i = 0; i < n; ++i) {
      v1::Sample* s = batch.add_samples();
      s->set_metric("http_reqs");
      s->set_time_unix_nano(absl::ToUnixNanos(absl::Now()));
      s->set_value(1);
    }
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientWriter<v1::SampleBatch>> writer =
        stub_->StreamSamples(&context, response);
    writer->Write(batch);
    writer->WritesDone();
    return writer->Finish();
  }

  // POST /write?db=<test run id> with one http_reqs line of value `value`.
  HttpAnswer InfluxWrite(int value) {
    absl::StatusOr<HttpAnswer> answer = HttpCall(
        "POST", absl::StrCat("http://127.0.0.1:", server_->influx_port(), "/write?db=wal-ingest"),
        {}, absl::StrCat("http_reqs value=", value, " ", absl::ToUnixNanos(absl::Now()), "\n"));
    EXPECT_TRUE(answer.ok()) << answer.status();
    return answer.ok() ? *answer : HttpAnswer{};
  }

  // Sets RLIMIT_FSIZE to the WAL's newest segment's size (so the next record cannot be
  // written: EFBIG) for the scope of the object.
  class LogCannotGrow {
   public:
    explicit LogCannotGrow(off_t bytes) {
      signal(SIGXFSZ, SIG_IGN);
      getrlimit(RLIMIT_FSIZE, &saved_);
      struct rlimit limit = saved_;
      limit.rlim_cur = static_cast<rlim_t>(bytes);
      ok_ = setrlimit(RLIMIT_FSIZE, &limit) == 0;
    }
    ~LogCannotGrow() {
      if (ok_) setrlimit(RLIMIT_FSIZE, &saved_);
    }
    bool ok() const { return ok_; }

   private:
    struct rlimit saved_;
    bool ok_ = false;
  };

  // The size of the WAL's newest segment (this test writes fewer than 10).
  off_t NewestSegmentBytes() const {
    off_t size = 0;
    for (int n = 1; n < 10; ++n) {
      struct stat st;
      const std::string path = absl::StrFormat("%s/wal/%020d.wal", data_dir_, n);
      if (stat(path.c_str(), &st) == 0) size = st.st_size;
    }
    return size;
  }

  std::string data_dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
  std::string id_;
};

TEST_F(WalIngestTest, AnswersOkOnceDurableAndResourceExhaustedWhenTheLogCannotGrow) {
  v1::StreamSamplesResponse first;
  ASSERT_TRUE(Stream(3, &first).ok());
  EXPECT_EQ(first.accepted(), 3u);
  const off_t written = NewestSegmentBytes();
  ASSERT_GT(written, 32);  // a header and the batch's record
  // Only the server's user can read the log (it holds the samples and their tags).
  struct stat st;
  ASSERT_EQ(stat((data_dir_ + "/wal").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
  ASSERT_EQ(stat(absl::StrFormat("%s/wal/%020d.wal", data_dir_, 1).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);

  // The log cannot grow past what it holds: the next batch's record fails with EFBIG.
  v1::StreamSamplesResponse refused;
  grpc::Status status;
  {
    LogCannotGrow limit(written);
    ASSERT_TRUE(limit.ok());
    status = Stream(2, &refused);
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("batch 0 of this stream cannot be made durable: "));
  EXPECT_THAT(status.error_message(), HasSubstr("File too large"));
  EXPECT_THAT(status.error_message(), HasSubstr("the call acknowledges none of its batches"));
  EXPECT_EQ(refused.accepted(), 0u);  // no answer with counts

  // Space is back: the next call is durable and answered OK.
  v1::StreamSamplesResponse again;
  ASSERT_TRUE(Stream(4, &again).ok());
  EXPECT_EQ(again.accepted(), 4u);
  EXPECT_GT(NewestSegmentBytes(), written);
}

}  // namespace
}  // namespace rwexport

namespace rwexport {
namespace {

TEST_F(WalIngestTest, InfluxAnswers204OnceDurableAnd507WhenTheLogCannotGrow) {
  const HttpAnswer first = InfluxWrite(1);
  EXPECT_EQ(first.status, 204) << first.body;
  const off_t written = NewestSegmentBytes();
  ASSERT_GT(written, 32);
  HttpAnswer refused;
  {
    LogCannotGrow limit(written);
    ASSERT_TRUE(limit.ok());
    refused = InfluxWrite(2);
  }
  EXPECT_EQ(refused.status, 507);
  EXPECT_THAT(refused.body, HasSubstr("{\"error\":\"the write cannot be made durable: "));
  EXPECT_THAT(refused.body, HasSubstr("File too large"));
  const HttpAnswer again = InfluxWrite(4);
  EXPECT_EQ(again.status, 204) << again.body;
  EXPECT_GT(NewestSegmentBytes(), written);
}

}  // namespace
}  // namespace rwexport
