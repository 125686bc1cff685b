#include "lib/client/replay.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/client/acked_stream.h"
#include "lib/client/interruption.h"

namespace rwexport {
namespace {

// Reads `input` to its end, naming it in errors that do not.
absl::StatusOr<K6ReadStats> ReadInput(LiveInput& source, const std::string& path,
                                      const K6ResultsReader::Callbacks& callbacks) {
  absl::StatusOr<K6ReadStats> read =
      K6ResultsReader::ReadSource(source, K6FormatForPath(path), callbacks);
  if (!read.ok() && !absl::StrContains(read.status().message(), source.name())) {
    return absl::Status(read.status().code(),
                        absl::StrCat(source.name(), ": ", read.status().message()));
  }
  return read;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReplayInput>> ReplayInput::Open(const std::string& path,
                                                               const ReplayOptions& options) {
  LiveInputOptions live;
  live.follow = options.follow;
  live.idle_timeout = options.idle_timeout;
  live.stop_fd = options.stop_fd;
  live.on_notice = options.on_notice;
  absl::StatusOr<std::unique_ptr<LiveInput>> source = LiveInput::Open(path, live);
  if (!source.ok()) return source.status();
  std::unique_ptr<ReplayInput> input(new ReplayInput(*std::move(source)));
  if (input->live()) {
    if (options.pace == ReplayPace::kRecorded) {
      return absl::InvalidArgumentError(absl::StrCat(
          input->source().name(),
          " is live input, sent as it arrives with its own timestamps: a pace applies to "
          "files only"));
    }
    return input;
  }

  // A file: read it once before anything is started, for its time range and its problems.
  int64_t first = std::numeric_limits<int64_t>::max();
  int64_t last = std::numeric_limits<int64_t>::min();
  K6ResultsReader::Callbacks scan;
  scan.on_sample = [&](K6Sample&& s) {
    first = std::min(first, s.time_unix_nano);
    last = std::max(last, s.time_unix_nano);
  };
  scan.on_error = options.on_error;
  absl::StatusOr<K6ReadStats> scanned = ReadInput(input->source(), path, scan);
  if (!scanned.ok()) return scanned.status();
  if (input->source().end() == LiveInput::End::kStopped) {
    return absl::CancelledError(absl::StrCat("reading ", input->source().name(), " interrupted"));
  }
  if (scanned->samples == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(input->source().name(), " holds no k6 sample (", scanned->lines, " lines, ",
                     scanned->errors,
                     " malformed): expected the output of k6 run --out json=FILE or "
                     "--out csv=FILE"));
  }
  if (!input->source().Rewind()) {
    return absl::InternalError(absl::StrCat("cannot read ", input->source().name(), " again"));
  }
  input->checked_ = *scanned;
  if (!options.keep_timestamps) {
    const absl::Time now = options.now == absl::InfinitePast() ? absl::Now() : options.now;
    const int64_t anchor = options.pace == ReplayPace::kFast ? last : first;
    input->shift_ns_ = absl::ToUnixNanos(now) - anchor;
  }
  return input;
}

absl::StatusOr<ReplayResult> ReplayK6Input(v1::ExportService::StubInterface* stub,
                                           const std::string& export_id, ReplayInput& input,
                                           const ReplayOptions& options) {
  ReplayResult result;
  result.shift_ns = input.shift_ns();
  const bool paced = !input.live() && options.pace == ReplayPace::kRecorded;
  LiveInput& source = input.source();

  AckedStreamOptions stream_options;
  stream_options.stream_id = options.stream_id;
  stream_options.batch_size = options.batch_size;
  stream_options.resume_timeout = options.resume_timeout;
  stream_options.on_resume = options.on_resume;
  AckedStream stream(stub, export_id, std::move(stream_options));
  result.stream_id = stream.stream_id();
  absl::Status stream_status;
  // When the oldest sample not sent yet was read; InfiniteFuture when none is waiting.
  absl::Time waiting_since = absl::InfiniteFuture();
  auto flush = [&] {
    stream_status = stream.Flush();
    waiting_since = absl::InfiniteFuture();
    if (!stream_status.ok()) source.Stop();
  };
  // Input that keeps coming: what was read leaves at the latest flush_interval after.
  auto flush_if_due = [&](absl::Time now) {
    if (stream.pending() == 0) {
      waiting_since = absl::InfiniteFuture();
    } else if (now - waiting_since >= options.flush_interval) {
      flush();
    }
  };
  // Live input that pauses: what was read leaves now, without waiting for a full batch.
  source.set_on_wait([&] {
    if (stream.pending() > 0) flush();
    return absl::InfiniteFuture();
  });

  const absl::Time start = absl::Now();
  int64_t first_ts = std::numeric_limits<int64_t>::min();
  int64_t samples_read = 0;
  K6ResultsReader::Callbacks callbacks;
  callbacks.on_metric = [&](const K6Metric& m) { stream.Declare(m.name, m.type, m.kind); };
  // Compact mode: series references by (metric, tags) key.
  constexpr uint32_t kMaxRefs = uint32_t{1} << 20;
  absl::flat_hash_map<std::string, uint32_t> refs;
  std::string key;
  callbacks.on_sample = [&](K6Sample&& s) {
    if (!stream_status.ok() || source.stopping()) return;
    if (options.samples_read != nullptr) options.samples_read->store(++samples_read);
    const int64_t ts = s.time_unix_nano + result.shift_ns;
    if (paced) {
      if (first_ts == std::numeric_limits<int64_t>::min()) first_ts = ts;
      const absl::Time due = start + absl::Nanoseconds(ts - first_ts);
      if (due > absl::Now()) {
        flush();  // what is due now leaves before we wait
        if (WaitReadable(options.stop_fd, due - absl::Now())) source.Stop();
      }
    }
    const absl::Time now = absl::Now();
    if (waiting_since == absl::InfiniteFuture()) waiting_since = now;
    if (options.compact) {
      key.assign(s.metric);
      for (const auto& [k, v] : s.tags) {
        key.push_back('\0');
        key.append(k);
        key.push_back('\1');
        key.append(v);
      }
      auto it = refs.find(key);
      if (it == refs.end() && refs.size() < kMaxRefs) {
        const uint32_t ref = static_cast<uint32_t>(refs.size());
        it = refs.emplace(key, ref).first;
        stream.DeclareSeries(ref, s.metric, s.tags);
      }
      if (it != refs.end()) {
        stream.AddCompact(it->second, ts, s.value);
        flush_if_due(now);
        return;
      }
    }
    stream.Add(s.metric, s.tags, ts, s.value);
    flush_if_due(now);
  };
  // A file's problems were reported when it was checked.
  if (input.live()) callbacks.on_error = options.on_error;
  absl::StatusOr<K6ReadStats> read = ReadInput(source, source.name(), callbacks);
  source.set_on_wait(nullptr);
  if (!read.ok()) return read.status();
  result.read = *read;
  result.end = source.end();
  if (!stream_status.ok()) return stream_status;
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  if (!response.ok()) return response.status();
  result.samples_sent = stream.samples_sent();
  result.resumes = stream.resumes();
  result.response = *std::move(response);
  return result;
}

absl::StatusOr<ReplayResult> ReplayK6File(v1::ExportService::StubInterface* stub,
                                          const std::string& export_id, const std::string& path,
                                          const ReplayOptions& options) {
  absl::StatusOr<std::unique_ptr<ReplayInput>> input = ReplayInput::Open(path, options);
  if (!input.ok()) return input.status();
  return ReplayK6Input(stub, export_id, **input, options);
}

}  // namespace rwexport
