#include "lib/bench/load.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/client/acked_stream.h"
#include "lib/client/sample_stream.h"
#include "lib/common/mutex.h"
#include "lib/model/metric.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

std::shared_ptr<grpc::Channel> NewBenchChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  // A connection of its own, as separate agents have.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

absl::Time BenchEventTime(absl::Time start, absl::Duration duration, absl::Duration event_span,
                          absl::Time now) {
  if (duration <= absl::ZeroDuration()) return now;
  const absl::Duration elapsed = std::clamp(now - start, absl::ZeroDuration(), duration);
  return start + duration - event_span + elapsed * absl::FDivDuration(event_span, duration);
}

absl::StatusOr<BenchLoadResult> RunBenchLoad(const std::string& address,
                                             const std::vector<std::string>& export_ids,
                                             const BenchWorkload& workload,
                                             const BenchLoadOptions& options) {
  if (export_ids.empty()) return absl::InvalidArgumentError("RunBenchLoad: no export");
  const bool compressed = options.event_span != absl::ZeroDuration();
  if (compressed && options.event_span < options.duration) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event span ", absl::FormatDuration(options.event_span), " is shorter than the duration ",
        absl::FormatDuration(options.duration), " (it must be zero or at least the duration)"));
  }
  const int streams = std::max(options.streams, 1);
  const size_t batch_size = std::max<size_t>(options.batch_size, 1);
  const bool compact = options.mode == BenchMode::kCompact;
  Mutex mu;
  BenchLoadResult result;
  absl::Status failure;
  // options.before_finish: the streams done sending, whether it has returned, and its time.
  CondVar all_sent;
  int sent = 0;
  bool released = false;
  absl::Duration held;
  // Called by each stream after its last batch: the last one runs options.before_finish, the
  // others wait for it (bounded by its return: it must return).
  auto wait_for_all_sent = [&] {
    if (!options.before_finish) return;
    {
      MutexLock lock(&mu);
      if (++sent < streams) {
        while (!released) all_sent.Wait(&mu);
        return;
      }
    }
    const absl::Time hold_start = absl::Now();
    options.before_finish();
    MutexLock lock(&mu);
    held = absl::Now() - hold_start;
    released = true;
    all_sent.SignalAll();
  };
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options.duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      std::shared_ptr<grpc::Channel> channel = NewBenchChannel(address);
      std::unique_ptr<v1::ExportService::Stub> stub = v1::ExportService::NewStub(channel);
      // The same load through either client: AckedStream and SampleStream share their calls.
      auto send = [&](auto& stream) {
        stream.Declare(kBenchCustomTrend, MetricType::kTrend, ValueKind::kTime);
        if (compact) {
          for (size_t s = 0; s < workload.series.size(); ++s) {
            stream.DeclareSeries(static_cast<uint32_t>(s), workload.series[s].metric,
                                 workload.series[s].tags);
          }
        }
        const size_t n = workload.cycle.size();
        size_t pos = n / static_cast<size_t>(streams) * static_cast<size_t>(i);
        absl::Time first = absl::InfinitePast(), last = absl::InfinitePast();
        absl::Status status;
        while (status.ok()) {
          const absl::Time now = absl::Now();
          if (now >= deadline) break;
          const absl::Time event_time =
              compressed ? BenchEventTime(start, options.duration, options.event_span, now) : now;
          if (first == absl::InfinitePast()) first = event_time;
          last = event_time;
          const int64_t ts = absl::ToUnixNanos(event_time);
          for (size_t k = 0; k < batch_size; ++k) {
            const auto& [series, value] = workload.cycle[pos];
            pos = pos + 1 == n ? 0 : pos + 1;
            if (compact) {
              stream.AddCompact(series, ts, value);
            } else {
              const BenchSeries& s = workload.series[series];
              stream.Add(s.metric, s.tags, ts, value);
            }
          }
          status = stream.Flush();
        }
        wait_for_all_sent();
        absl::StatusOr<v1::StreamSamplesResponse> response =
            status.ok() ? stream.Finish() : absl::StatusOr<v1::StreamSamplesResponse>(status);
        MutexLock lock(&mu);
        result.samples_sent += stream.samples_sent();
        if (first != absl::InfinitePast()) {
          if (result.first_sample_time == absl::InfinitePast() ||
              first < result.first_sample_time) {
            result.first_sample_time = first;
          }
          result.last_sample_time = std::max(result.last_sample_time, last);
        }
        if (response.ok()) {
          result.accepted += response->accepted();
          result.rejected += response->rejected();
        } else if (failure.ok()) {
          failure = response.status();
        }
      };
      // Stream i feeds export i mod N.
      const std::string& export_id = export_ids[static_cast<size_t>(i) % export_ids.size()];
      if (options.acked) {
        AckedStreamOptions acked;
        acked.batch_size = batch_size;
        acked.resume_timeout = options.resume_timeout;
        AckedStream stream(stub.get(), export_id, acked);
        send(stream);
      } else {
        SampleStream stream(stub.get(), export_id, batch_size);
        send(stream);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  result.elapsed = absl::Now() - start - held;
  if (!failure.ok()) return failure;
  return result;
}

}  // namespace rwexport
