// Replays a k6 result file (`k6 run --out json=...` or `--out csv=...`) into an export over
// IngestSamples (AckedStream: acknowledged batches, resumed after a broken call): declares the
// file's metrics, then streams its samples. The input may be live (standard input on a pipe, or a
// file followed while k6 writes it): samples are then sent whenever the input pauses (at least
// every flush_interval), with their own timestamps. Reentrant; each call uses its own stream.
#ifndef RWEXPORT_LIB_CLIENT_REPLAY_H_
#define RWEXPORT_LIB_CLIENT_REPLAY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/client/live_input.h"
#include "lib/k6/results_reader.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

enum class ReplayPace {
  // As fast as the server takes them; timestamps shifted so the run ends at `now`.
  kFast,
  // At the recorded pace; timestamps shifted so the run starts at `now`.
  kRecorded,
};

struct ReplayOptions {
  // Files only: a live input is sent as it arrives, with its own timestamps.
  ReplayPace pace = ReplayPace::kFast;
  // Keep the file's own timestamps (a receiver may reject samples that old).
  bool keep_timestamps = false;
  size_t batch_size = 1000;
  // Compact stream mode: each distinct (metric, tags) is declared once with a series
  // reference and its samples sent as (reference, time, value). Past 1048576 distinct series
  // the rest go self-describing.
  bool compact = false;
  // The reference time for shifting; tests fix it.
  absl::Time now = absl::InfinitePast();  // InfinitePast: absl::Now() at the start
  // Called once for each malformed line (skipped): while a file is checked, or as a live
  // input delivers it.
  std::function<void(const ReadError&)> on_error;

  // Follow the input like `tail -f` (see LiveInputOptions::follow); it is then live.
  bool follow = false;
  // follow: end after this long without new lines; zero: never.
  absl::Duration idle_timeout = absl::ZeroDuration();
  // Samples read are sent as soon as live input pauses, and while input keeps coming at the
  // latest this long after they were read.
  absl::Duration flush_interval = absl::Seconds(1);
  // Once readable (Interruption::fd()), reading stops; what was read is sent and the stream
  // finished normally. -1: none.
  int stop_fd = -1;
  // Lines about the input (waiting for a file to appear, truncated).
  std::function<void(const std::string&)> on_notice;
  // The stream's id (IngestRequest.stream_id); empty: a random one.
  std::string stream_id;
  // Give up resuming a broken call after this long without progress (AckedStreamOptions).
  absl::Duration resume_timeout = absl::Seconds(60);
  // One line per resumed call ("resumed stream ... at batch N after ..."), from another thread.
  std::function<void(const std::string&)> on_resume;
  // If set, the samples read so far, for progress display from another thread.
  std::atomic<int64_t>* samples_read = nullptr;
};

// A replay's input, opened and, when it is a file read to its end, read once to check it and
// find its time range: all before an export is started for it.
class ReplayInput {
 public:
  // Errors: the input cannot be opened (NotFound, ...), or a file that is no k6 result file
  // (gzip, CSV without k6's header) or holds no sample (InvalidArgument naming the path),
  // `pace` set to recorded for a live input.
  static absl::StatusOr<std::unique_ptr<ReplayInput>> Open(const std::string& path,
                                                           const ReplayOptions& options);

  bool live() const { return source_->live(); }
  // A file read to its end: what the check found (malformed lines already reported).
  const K6ReadStats& checked() const { return checked_; }
  // Added to every timestamp: 0 for a live input or with keep_timestamps.
  int64_t shift_ns() const { return shift_ns_; }
  LiveInput& source() { return *source_; }

 private:
  explicit ReplayInput(std::unique_ptr<LiveInput> source) : source_(std::move(source)) {}

  std::unique_ptr<LiveInput> source_;
  K6ReadStats checked_;
  int64_t shift_ns_ = 0;
};

struct ReplayResult {
  K6ReadStats read;
  uint64_t samples_sent = 0;
  // Added to every timestamp of the file.
  int64_t shift_ns = 0;
  // Why reading ended.
  LiveInput::End end = LiveInput::End::kEndOfInput;
  std::string stream_id;
  // Calls resumed after a break.
  uint64_t resumes = 0;
  // The server's counts for the stream (summed over its calls).
  v1::StreamSamplesResponse response;
};

// Streams `input` into `export_id`. Errors: the input cannot be read, or the server ended the
// stream (its status).
absl::StatusOr<ReplayResult> ReplayK6Input(v1::ExportService::StubInterface* stub,
                                           const std::string& export_id, ReplayInput& input,
                                           const ReplayOptions& options);

// ReplayInput::Open, then ReplayK6Input.
absl::StatusOr<ReplayResult> ReplayK6File(v1::ExportService::StubInterface* stub,
                                          const std::string& export_id, const std::string& path,
                                          const ReplayOptions& options);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_REPLAY_H_
