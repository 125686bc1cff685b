// StreamSamples on batches that are not valid SampleBatch messages: INVALID_ARGUMENT naming
// the batch and the place in it, the earlier batches' samples kept, the server unharmed.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

class InvalidBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    server_ = std::make_unique<TestServer>();
    stub_ = server_->NewStub();
    v1::StartExportRequest request;
    request.set_test_run_id("run-1");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url(receiver_->Url());
    grpc::ClientContext context;
    v1::StartExportResponse response;
    ASSERT_TRUE(stub_->StartExport(&context, request, &response).ok());
    id_ = response.export_id();
  }

  // `n` valid http_reqs samples.
  v1::SampleBatch Good(int n) {
    v1::SampleBatch batch;
    const int64_t now = absl::ToUnixNanos(absl::Now());
    for (int i = 0; i < n; ++i) {
      v1::Sample* s = batch.add_samples();
      s->set_metric("http_reqs");
      v1::Tag* t = s->add_tags();
      t->set_key("status");
      t->set_value("200");
      s->set_time_unix_nano(now);
      s->set_value(1);
    }
    return batch;
  }

  // Streams `first` (export id added) and `second`; the call's status.
  grpc::Status Stream(v1::SampleBatch first, const v1::SampleBatch& second) {
    first.set_export_id(id_);
    grpc::ClientContext context;
    v1::StreamSamplesResponse response;
    std::unique_ptr<grpc::ClientWriter<v1::SampleBatch>> writer =
        stub_->StreamSamples(&context, &response);
    writer->Write(first);
    writer->Write(second);  // may fail once the server has ended the call
    writer->WritesDone();
    return writer->Finish();
  }

  uint64_t Accepted() {
    grpc::ClientContext context;
    v1::GetExportRequest request;
    request.set_export_id(id_);
    v1::ExportStatus status;
    EXPECT_TRUE(stub_->GetExport(&context, request, &status).ok());
    return status.samples_accepted();
  }

  std::unique_ptr<FakeReceiver> receiver_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
  std::string id_;
};

TEST_F(InvalidBatchTest, InvalidUtf8InATagEndsTheStreamAfterTheGoodBatches) {
  v1::SampleBatch bad = Good(3);
  // Generated code writes it (logging an error), as a broken client would.
  bad.mutable_samples(1)->mutable_tags(0)->set_value("2\xff");
  grpc::Status status = Stream(Good(5), bad);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "batch 1: sample 1: tags: tag 0: value: invalid UTF-8 (5 samples of this stream were "
            "accepted before)");
  EXPECT_EQ(Accepted(), 5u);  // none of the bad batch
}

TEST_F(InvalidBatchTest, TruncatedAndMistypedFieldsAreNamed) {
  v1::SampleBatch truncated = Good(2);
  // Field 3 (samples) holding a sample whose tags field claims 5 bytes but has 2.
  truncated.GetReflection()
      ->MutableUnknownFields(&truncated)
      ->AddLengthDelimited(3,
                           "\x12\x05"
                           "ab");
  grpc::Status status = Stream(Good(4), truncated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "batch 1: sample 2: field 2 (tags): truncated (4 samples of this stream were accepted "
            "before)");

  v1::SampleBatch mistyped = Good(1);
  mistyped.GetReflection()->MutableUnknownFields(&mistyped)->AddVarint(3, 7);
  status = Stream(mistyped, Good(1));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "batch 0: sample 1: field 3 (samples): wire type 0 (varint), expected "
            "length-delimited (0 samples of this stream were accepted before)");
  EXPECT_EQ(Accepted(), 4u);

  // The server goes on: a valid stream still works.
  EXPECT_TRUE(Stream(Good(2), Good(3)).ok());
  EXPECT_EQ(Accepted(), 9u);
}

}  // namespace
}  // namespace rwexport
