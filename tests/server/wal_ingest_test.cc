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

  // The log cannot grow past what it holds: the next batch's record fails with EFBIG.
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit limit = saved;
  limit.rlim_cur = static_cast<rlim_t>(written);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  v1::StreamSamplesResponse refused;
  const grpc::Status status = Stream(2, &refused);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &saved), 0);
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
