// The agent side of IngestSamples (acknowledged, resumable ingest): batches samples like
// SampleStream, numbers the batches of its stream 1, 2, ..., and keeps every batch the server
// has not acknowledged (at most the server's window). When the call breaks with UNAVAILABLE
// (server restarting or stopping, connection lost), after CANCELLED (which a stopping
// server's gRPC answers to the calls still open when it ends), or when a proxy cut it because
// its server died (UNKNOWN "No status received", or a received RST_STREAM), it opens a new
// call after a backoff (100 ms doubling to 2 s, jittered), re-sends its declarations and the
// unacknowledged batches, and goes on; the server drops what it already has, so totals stay
// exact. It gives up with DEADLINE_EXCEEDED once `resume_timeout` has passed without a resumed
// call being answered.
//
// Not thread-safe: one AckedStream per sending thread (it runs one reader thread per call).
#ifndef RWEXPORT_LIB_CLIENT_ACKED_STREAM_H_
#define RWEXPORT_LIB_CLIENT_ACKED_STREAM_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/client/sample_stream.h"
#include "lib/common/mutex.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

struct AckedStreamOptions {
  // The stream's name (IngestRequest.stream_id); empty: a random one.
  std::string stream_id;
  size_t batch_size = 1000;
  // Give up resuming after this long without an answer from a new call.
  absl::Duration resume_timeout = absl::Seconds(60);
  // Backoff between attempts: from `initial_backoff`, doubling, at most `max_backoff`, each
  // wait jittered to 50..100% of it.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  // Unacknowledged batches allowed until the server's first ack says its window.
  uint32_t window = 32;
  // Called on the first answer to a resumed call, with a line such as "resumed stream s-1 at
  // batch 7 after UNAVAILABLE: the server is stopping ...". Runs on the call's reader thread.
  std::function<void(const std::string&)> on_resume;
};

// A random stream id ("s-" and 32 hex digits).
std::string RandomStreamId();

class AckedStream {
 public:
  // `stub` must outlive the stream. Nothing is sent before the first batch.
  AckedStream(v1::ExportService::StubInterface* stub, std::string export_id,
              AckedStreamOptions options = {});
  // Cancels a call still open.
  ~AckedStream();

  // As SampleStream's.
  void Declare(const std::string& name, MetricType type, ValueKind kind);
  void Add(absl::string_view metric, absl::Span<const std::pair<std::string, std::string>> tags,
           int64_t time_unix_nano, double value);
  void DeclareSeries(uint32_t ref, absl::string_view metric,
                     absl::Span<const std::pair<std::string, std::string>> tags);
  void AddCompact(uint32_t ref, int64_t time_unix_nano, double value);

  // Sends what is batched as the next batch; waits while the window is full. An error means
  // the stream cannot go on (the server refused it, or resuming gave up).
  absl::Status Flush();
  // Sends the rest, waits until every batch is acknowledged, and returns the counts the
  // server reported: accepted and rejected over the whole stream (IngestAck.stream_accepted;
  // summed over the calls from a server that does not send them); rejections by reason of the
  // calls that ended normally.
  absl::StatusOr<v1::StreamSamplesResponse> Finish();

  const std::string& stream_id() const { return options_.stream_id; }
  uint64_t samples_sent() const { return samples_sent_; }
  size_t pending() const { return builder_.samples(); }
  // Batches numbered so far, and how many times a call was resumed.
  uint64_t batches() const { return next_sequence_ - 1; }
  uint64_t resumes() const { return resumes_; }

 private:
  struct Call;
  // Numbers `batch`, keeps it, and writes it (resuming as needed).
  absl::Status Send(std::shared_ptr<v1::IngestRequest> request);
  // A request to fill: an acknowledged one no write still uses, else a new one.
  std::shared_ptr<v1::IngestRequest> SpareRequest();
  // Writes `request` on the current call, opening one if there is none; false if the call
  // broke.
  bool Write(const v1::IngestRequest& request);
  // Opens a new call and writes every unacknowledged batch on it.
  bool OpenAndResend(const std::string& cause);
  // Ends the current call (joins its reader) and returns its status.
  absl::Status CloseCall();
  // After the current call broke: closes it and resumes on a new one, with backoff, until one
  // takes the unacknowledged batches or resuming gives up (the error).
  absl::Status Resume(absl::Status status);
  // Waits until fewer than the window's batches are unacknowledged or the call broke.
  bool WaitForRoom();
  void ReadAcks(Call* call);
  // Every declaration made so far, for the first batch of a new call.
  v1::SampleBatch Declarations() const;

  v1::ExportService::StubInterface* const stub_;
  const std::string export_id_;
  AckedStreamOptions options_;
  SampleBatchBuilder builder_;
  uint64_t next_sequence_ = 1;
  uint64_t samples_sent_ = 0;
  uint64_t resumes_ = 0;
  uint64_t calls_opened_ = 0;
  absl::Status failure_;  // once set, every call returns it
  std::unique_ptr<Call> call_;
  // Declarations sent so far: metrics in order, series by reference.
  std::vector<v1::MetricDeclaration> metric_declarations_;
  std::map<uint32_t, v1::SeriesDeclaration> series_declarations_;
  absl::Duration backoff_;

  mutable Mutex mu_;
  CondVar cv_;
  // Batches not acknowledged, oldest first (shared with writes in progress).
  std::deque<std::shared_ptr<v1::IngestRequest>> unacked_ ABSL_GUARDED_BY(mu_);
  // Acknowledged requests, for reuse by the next batches (at most a window of them).
  std::vector<std::shared_ptr<v1::IngestRequest>> spare_ ABSL_GUARDED_BY(mu_);
  uint64_t acked_through_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t window_ ABSL_GUARDED_BY(mu_);
  // Counts of the calls ended so far, and of the current one (its latest ack).
  uint64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  // The highest of the server's counts over the whole stream (IngestAck.stream_accepted).
  uint64_t stream_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t stream_rejected_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::pair<int, std::string>, v1::Rejection> rejections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_ACKED_STREAM_H_
