// `rwexport bench`'s load generator: N concurrent streams, each on its own connection, sending
// a workload (lib/bench/workload.h) as fast as the server takes it, in either stream mode,
// through IngestSamples (acknowledged) or StreamSamples.
//
// Event time: by default samples are stamped with the wall clock. With an event span, a long
// test is replayed compressed: the stamps cover [end - span, end] (end: when the load is due
// to finish) at span / duration times wall speed, so a 1-hour test fits in a few minutes and
// no stamp is ever ahead of the wall clock. Functions here are reentrant.
#ifndef RWEXPORT_LIB_BENCH_LOAD_H_
#define RWEXPORT_LIB_BENCH_LOAD_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/bench/workload.h"

namespace rwexport {

struct BenchLoadOptions {
  int streams = 4;
  absl::Duration duration = absl::Seconds(10);
  BenchMode mode = BenchMode::kSelfDescribing;
  size_t batch_size = 1000;
  // Zero: samples carry the wall-clock time. Otherwise the event time replayed over
  // `duration` (see BenchEventTime); must be at least `duration`.
  absl::Duration event_span = absl::ZeroDuration();
  // True: IngestSamples (acknowledged batches, AckedStream); false: StreamSamples.
  bool acked = true;
  // acked: give up resuming a broken call after this long (AckedStreamOptions).
  absl::Duration resume_timeout = absl::Seconds(60);
  // Optional: called once, on one of the stream threads, when every stream has sent its last
  // batch and before any of them ends its call: the streams stay open, idle, until it returns
  // (to read what the server keeps for open streams). Its time is not in `elapsed`.
  std::function<void()> before_finish;
};

// The event time of a sample sent at wall time `now` of a load that started at `start` and
// lasts `duration`, replaying `event_span` (>= duration): end - event_span + (now - start) *
// event_span / duration, where end = start + duration. It runs from end - event_span to end
// and is never later than `now` (for start <= now <= end).
absl::Time BenchEventTime(absl::Time start, absl::Duration duration, absl::Duration event_span,
                          absl::Time now);

struct BenchLoadResult {
  uint64_t samples_sent = 0;
  // The server's counts, summed over the streams.
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  // From the first stream opening to the last one's response (without options.before_finish).
  absl::Duration elapsed;
  // Timestamps of the first and the last sample sent (any stream); unset if none was sent.
  absl::Time first_sample_time = absl::InfinitePast();
  absl::Time last_sample_time = absl::InfinitePast();
};

// Streams `workload` into `export_ids` at `address` from options.streams threads, each with
// its own channel (its own connection), as fast as the server takes it, for options.duration.
// Stream i feeds export_ids[i % export_ids.size()].
// Errors: a stream the server ended (its status).
absl::StatusOr<BenchLoadResult> RunBenchLoad(const std::string& address,
                                             const std::vector<std::string>& export_ids,
                                             const BenchWorkload& workload,
                                             const BenchLoadOptions& options);

// A plaintext channel to `address` with a connection of its own (as separate agents have) and
// 64 MiB message limits.
std::shared_ptr<grpc::Channel> NewBenchChannel(const std::string& address);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_BENCH_LOAD_H_
