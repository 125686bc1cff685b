// Replays a recorded k6 result file (`k6 run --out json=...` or `--out csv=...`) into an
// export over StreamSamples: declares the file's metrics, then streams its samples.
// Reentrant; each call uses its own stream.
#ifndef RWEXPORT_LIB_CLIENT_REPLAY_H_
#define RWEXPORT_LIB_CLIENT_REPLAY_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
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
  // Called for each malformed line (skipped).
  std::function<void(const ReadError&)> on_error;
};

struct ReplayResult {
  K6ReadStats read;
  uint64_t samples_sent = 0;
  // Added to every timestamp of the file.
  int64_t shift_ns = 0;
  // The server's counts for the stream.
  v1::StreamSamplesResponse response;
};

// Streams `path` into `export_id`. Errors: the file cannot be read (NotFound, ...), or the
// server ended the stream (its status).
absl::StatusOr<ReplayResult> ReplayK6File(v1::ExportService::StubInterface* stub,
                                          const std::string& export_id, const std::string& path,
                                          const ReplayOptions& options);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_REPLAY_H_
