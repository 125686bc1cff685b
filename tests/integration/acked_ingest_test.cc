// IngestSamples against the real server in-process: acknowledgements, dedupe of resent
// batches, gaps, the window, compact mode across calls, a connection cut mid-stream (the
// client library resumes) and a stopping server.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/acked_stream.h"
#include "lib/common/mutex.h"
#include "lib/ingest/ingest_journal.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "tests/testing/fake_receiver.h"
#include "tests/testing/tcp_proxy.h"
#include "tests/testing/test_server.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using Stream = grpc::ClientReaderWriter<v1::IngestRequest, v1::IngestAck>;

// Holds every record until Release(): durability on demand.
class HoldingJournal final : public IngestJournal {
 public:
  void Append(const IngestRecord&, std::function<void(absl::Status)> on_durable) override {
    {
      MutexLock lock(&mu_);
      ++appended_;
      cv_.SignalAll();
      if (!released_) {
        held_.push_back(std::move(on_durable));
        return;
      }
    }
    on_durable(absl::OkStatus());
  }
  // Waits (bounded) until `n` records were appended; false on timeout.
  bool WaitAppended(int n) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (appended_ < n && absl::Now() < deadline)
      cv_.WaitFor(&mu_, std::chrono::milliseconds(50));
    return appended_ >= n;
  }
  int appended() {
    MutexLock lock(&mu_);
    return appended_;
  }
  // Makes every record durable, from now on at once.
  void Release() {
    std::vector<std::function<void(absl::Status)>> held;
    {
      MutexLock lock(&mu_);
      released_ = true;
      held.swap(held_);
    }
    for (auto& f : held) f(absl::OkStatus());
  }

 private:
  Mutex mu_;
  CondVar cv_;
  int appended_ = 0;
  bool released_ = false;
  std::vector<std::function<void(absl::Status)>> held_;
};

// Fails the first record of sequence 2 ("disk full"); records every append as (sequence,
// resent).
class FailingJournal final : public IngestJournal {
 public:
  void Append(const IngestRecord& record, std::function<void(absl::Status)> on_durable) override {
    bool fail;
    {
      MutexLock lock(&mu_);
      records_.emplace_back(record.sequence, record.resent);
      fail = record.sequence == 2 && !failed_;
      failed_ = failed_ || fail;
    }
    on_durable(fail ? absl::UnavailableError("disk full") : absl::OkStatus());
  }
  std::vector<std::pair<uint64_t, bool>> records() {
    MutexLock lock(&mu_);
    return records_;
  }

 private:
  Mutex mu_;
  bool failed_ = false;
  std::vector<std::pair<uint64_t, bool>> records_;
};

class AckedIngestTest : public ::testing::Test {
 protected:
  void Start(IngestOptions ingest = {}) {
    absl::StatusOr<std::unique_ptr<FakeReceiver>> receiver = FakeReceiver::Start();
    ASSERT_TRUE(receiver.ok()) << receiver.status();
    receiver_ = *std::move(receiver);
    TestServerOptions options;
    options.ingest = ingest;
    server_ = std::make_unique<TestServer>(options);
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

  // Batch `seq` of stream `stream`: three http_reqs samples of value 1 (the first request of
  // a call carries the ids).
  v1::IngestRequest Request(uint64_t seq, bool first, const std::string& stream = "agent-1") {
    v1::IngestRequest r;
    if (first) {
      r.set_export_id(id_);
      r.set_stream_id(stream);
    }
    r.set_sequence(seq);
    const int64_t now = absl::ToUnixNanos(absl::Now());
    for (int i = 0; i < 3; ++i) {
      v1::Sample* s = r.mutable_batch()->add_samples();
      s->set_metric("http_reqs");
      s->set_time_unix_nano(now);
      s->set_value(1);
    }
    return r;
  }

  // One call sending batches `from`..`to`; returns its status and every ack's acked_through
  // (and the last ack in `*last` if not null).
  grpc::Status Send(uint64_t from, uint64_t to, std::vector<uint64_t>* acks,
                    v1::IngestAck* last = nullptr) {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->IngestSamples(&context);
    for (uint64_t seq = from; seq <= to; ++seq) stream->Write(Request(seq, seq == from));
    stream->WritesDone();
    v1::IngestAck ack;
    while (stream->Read(&ack)) {
      acks->push_back(ack.acked_through());
      if (last != nullptr) *last = ack;
    }
    return stream->Finish();
  }

  v1::ExportStatus Status() {
    grpc::ClientContext context;
    v1::GetExportRequest request;
    request.set_export_id(id_);
    v1::ExportStatus status;
    EXPECT_TRUE(stub_->GetExport(&context, request, &status).ok());
    return status;
  }

  std::unique_ptr<FakeReceiver> receiver_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::ExportService::Stub> stub_;
  std::string id_;
};

TEST_F(AckedIngestTest, AcksIncreaseAndAResentRangeIsNotAppliedTwice) {
  Start();
  std::vector<uint64_t> acks;
  ASSERT_TRUE(Send(1, 10, &acks).ok());
  ASSERT_FALSE(acks.empty());
  EXPECT_LE(acks.front(), 1u);  // the first ack: where the stream is (or batch 1 already)
  for (size_t i = 1; i < acks.size(); ++i) EXPECT_LE(acks[i - 1], acks[i]);
  EXPECT_EQ(acks.back(), 10u);
  EXPECT_EQ(Status().samples_accepted(), 30u);

  acks.clear();
  v1::IngestAck last;
  ASSERT_TRUE(Send(6, 15, &acks, &last).ok());
  EXPECT_EQ(acks.front(), 10u);
  EXPECT_EQ(acks.back(), 15u);
  // This call's counts (batches 11..15), and the stream's (1..15, across both calls).
  EXPECT_TRUE(last.last());
  EXPECT_EQ(last.accepted(), 15u);
  EXPECT_EQ(last.duplicate_batches(), 5u);
  EXPECT_EQ(last.stream_accepted(), 45u);
  EXPECT_EQ(last.stream_rejected(), 0u);
  const v1::ExportStatus status = Status();
  EXPECT_EQ(status.samples_accepted(), 45u);  // 15 batches of 3, as one send of 1..15
  EXPECT_EQ(status.duplicate_batches(), 5u);
  EXPECT_EQ(status.ingest_streams(), 1u);
}

TEST_F(AckedIngestTest, AGapEndsTheCallNamingStreamAndSequences) {
  Start();
  std::vector<uint64_t> acks;
  ASSERT_TRUE(Send(1, 2, &acks).ok());
  const grpc::Status gap = Send(4, 4, &acks);
  EXPECT_EQ(gap.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(gap.error_message(),
              HasSubstr("stream \"agent-1\": expected sequence 3, received 4"));
  EXPECT_EQ(Status().samples_accepted(), 6u);
}

TEST_F(AckedIngestTest, SequenceZeroAndBadStreamIdsAreInvalid) {
  Start();
  std::vector<uint64_t> acks;
  grpc::Status zero = Send(0, 0, &acks);
  EXPECT_EQ(zero.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(zero.error_message(), HasSubstr("sequence"));
  for (const std::string bad : {std::string(""), std::string("has space"), std::string(129, 'x')}) {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->IngestSamples(&context);
    stream->Write(Request(1, true, bad));
    stream->WritesDone();
    v1::IngestAck ack;
    while (stream->Read(&ack)) {
    }
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(status.error_message(), HasSubstr("stream_id")) << bad;
  }
  EXPECT_EQ(Status().samples_accepted(), 0u);
}

TEST_F(AckedIngestTest, TheServerReadsAtMostTheWindowBeyondTheLastAck) {
  HoldingJournal journal;
  Start(IngestOptions{&journal, 2});
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->IngestSamples(&context);
  for (uint64_t seq = 1; seq <= 5; ++seq) ASSERT_TRUE(stream->Write(Request(seq, seq == 1)));
  ASSERT_TRUE(journal.WaitAppended(2));
  v1::IngestAck ack;
  ASSERT_TRUE(stream->Read(&ack));  // the first ack: the window, nothing durable yet
  EXPECT_EQ(ack.window(), 2u);
  EXPECT_EQ(ack.acked_through(), 0u);
  // Nothing more is read while two batches wait for durability (bounded wait for a wrong read).
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(journal.appended(), 2);
  journal.Release();
  while (ack.acked_through() < 5) ASSERT_TRUE(stream->Read(&ack));
  stream->WritesDone();
  while (stream->Read(&ack)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(journal.appended(), 5);
  EXPECT_EQ(Status().samples_accepted(), 15u);
}

TEST_F(AckedIngestTest, ABatchNotDurableIsNotAckedAndIsJournaledAgainNotAppliedWhenResent) {
  FailingJournal journal;
  Start(IngestOptions{&journal, 32});
  std::vector<uint64_t> acks;
  const grpc::Status failed = Send(1, 3, &acks);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(failed.error_message(), HasSubstr("batch 2 could not be made durable: disk full"));
  ASSERT_FALSE(acks.empty());
  EXPECT_LE(acks.back(), 1u);                              // never acknowledged beyond the failure
  const uint64_t taken = Status().samples_accepted() / 3;  // batches applied before the end

  acks.clear();
  ASSERT_TRUE(Send(2, 4, &acks).ok());
  EXPECT_GE(acks.front(), 1u);  // where the stream was (or batch 2 already, journaled again)
  EXPECT_EQ(acks.back(), 4u);
  const v1::ExportStatus status = Status();
  EXPECT_EQ(status.samples_accepted(), 12u);  // batches 1..4 once each
  EXPECT_EQ(status.duplicate_batches(), taken - 1);
  // Batch 2 (and 3 if the first call took it) journaled again as resent; the rest once.
  std::vector<std::pair<uint64_t, bool>> expected = {{1, false}, {2, false}};
  if (taken == 3) expected.emplace_back(3, false);
  expected.emplace_back(2, true);
  expected.emplace_back(3, taken == 3);
  expected.emplace_back(4, false);
  EXPECT_EQ(journal.records(), expected);
}

v1::IngestRequest CompactRequest(const std::string& id, uint64_t seq, bool declare) {
  v1::IngestRequest r;
  r.set_export_id(id);
  r.set_stream_id("compact-1");
  r.set_sequence(seq);
  if (declare) {
    v1::SeriesDeclaration* d = r.mutable_batch()->add_series();
    d->set_ref(0);
    d->set_metric("http_reqs");
  }
  v1::CompactSamples* c = r.mutable_batch()->mutable_compact();
  c->add_refs(0);
  c->add_time_unix_nano_delta(absl::ToUnixNanos(absl::Now()));
  c->add_values(2);
  return r;
}

TEST_F(AckedIngestTest, CompactReferencesMustBeDeclaredAgainOnEveryCall) {
  Start();
  auto call = [&](const std::vector<v1::IngestRequest>& requests) {
    grpc::ClientContext context;
    std::unique_ptr<Stream> stream = stub_->IngestSamples(&context);
    for (const v1::IngestRequest& r : requests) stream->Write(r);
    stream->WritesDone();
    v1::IngestAck ack;
    while (stream->Read(&ack)) {
    }
    return stream->Finish();
  };
  ASSERT_TRUE(call({CompactRequest(id_, 1, true), CompactRequest(id_, 2, false)}).ok());
  const grpc::Status undeclared = call({CompactRequest(id_, 3, false)});
  EXPECT_EQ(undeclared.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(undeclared.error_message(),
              HasSubstr("batch 3: compact: series reference 0 is not declared on this call"));
  // A resent duplicate's declarations bind the reference for the call.
  ASSERT_TRUE(call({CompactRequest(id_, 2, true), CompactRequest(id_, 3, false)}).ok());
  const v1::ExportStatus status = Status();
  EXPECT_EQ(status.samples_accepted(), 3u);
  EXPECT_EQ(status.duplicate_batches(), 1u);
}

TEST_F(AckedIngestTest, AStoppingServerAcksWhatItAppliedThenAnswersUnavailable) {
  Start();
  grpc::ClientContext context;
  std::unique_ptr<Stream> stream = stub_->IngestSamples(&context);
  for (uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(stream->Write(Request(seq, seq == 1)));
  // Taken by the server (acks are coalesced: they need not have been sent yet).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Status().samples_accepted() < 9 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(Status().samples_accepted(), 9u);
  std::thread stopper([&] { server_.reset(); });
  v1::IngestAck ack;
  uint64_t acked = 0;
  while (stream->Read(&ack)) acked = ack.acked_through();
  const grpc::Status status = stream->Finish();
  stopper.join();
  EXPECT_EQ(acked, 3u);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("acknowledged through batch 3"));
}

TEST_F(AckedIngestTest, TheClientResumesAfterTheConnectionIsCutAndTotalsAreExact) {
  Start();
  absl::StatusOr<std::unique_ptr<TcpProxy>> proxy = TcpProxy::Start(server_->address());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  auto channel =
      grpc::CreateCustomChannel((*proxy)->address(), grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<v1::ExportService::Stub> via_proxy = v1::ExportService::NewStub(channel);
  std::vector<std::string> lines;
  Mutex mu;
  AckedStreamOptions options;
  options.stream_id = "cut-1";
  options.batch_size = 10;
  options.on_resume = [&](const std::string& line) {
    MutexLock lock(&mu);
    lines.push_back(line);
  };
  AckedStream stream(via_proxy.get(), id_, options);
  const int64_t now = absl::ToUnixNanos(absl::Now());
  for (int i = 0; i < 2000; ++i) {
    if (i == 700) (*proxy)->CutAll();
    stream.Add("http_reqs", {{"status", "200"}}, now, 1);
  }
  absl::StatusOr<v1::StreamSamplesResponse> done = stream.Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_GE(stream.resumes(), 1u);
  EXPECT_EQ(stream.batches(), 200u);
  EXPECT_EQ(Status().samples_accepted(), 2000u);  // exactly once each
  // The client's totals are the stream's: batches whose ack the cut lost count too.
  EXPECT_EQ(done->accepted(), 2000u);
  EXPECT_EQ(done->rejected(), 0u);
  MutexLock lock(&mu);
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], HasSubstr("resumed stream cut-1 at batch "));
}

TEST_F(AckedIngestTest, ResumingGivesUpAfterTheTimeout) {
  Start();
  absl::StatusOr<std::unique_ptr<TcpProxy>> proxy = TcpProxy::Start(server_->address());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  std::unique_ptr<v1::ExportService::Stub> via_proxy = v1::ExportService::NewStub(
      grpc::CreateChannel((*proxy)->address(), grpc::InsecureChannelCredentials()));
  AckedStreamOptions options;
  options.batch_size = 10;
  options.resume_timeout = absl::Seconds(1);
  AckedStream stream(via_proxy.get(), id_, options);
  const int64_t now = absl::ToUnixNanos(absl::Now());
  for (int i = 0; i < 50; ++i) stream.Add("http_reqs", {}, now, 1);
  ASSERT_TRUE(stream.Flush().ok());
  proxy->reset();  // cuts every connection and listens no more
  for (int i = 0; i < 50; ++i) stream.Add("http_reqs", {}, now, 1);
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::StreamSamplesResponse> done = stream.Finish();
  EXPECT_TRUE(absl::IsDeadlineExceeded(done.status())) << done.status();
  EXPECT_THAT(std::string(done.status().message()), HasSubstr("gave up resuming stream"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace rwexport
