#include "lib/client/replay.h"

#include <algorithm>
#include <limits>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "lib/client/sample_stream.h"

namespace rwexport {

absl::StatusOr<ReplayResult> ReplayK6File(v1::ExportService::StubInterface* stub,
                                          const std::string& export_id, const std::string& path,
                                          const ReplayOptions& options) {
  ReplayResult result;
  const absl::Time now = options.now == absl::InfinitePast() ? absl::Now() : options.now;
  if (!options.keep_timestamps) {
    if (path == "-") {
      return absl::InvalidArgumentError(
          "replaying standard input needs the file's own timestamps (--keep_timestamps): "
          "shifting them needs two passes over the file");
    }
    int64_t first = std::numeric_limits<int64_t>::max();
    int64_t last = std::numeric_limits<int64_t>::min();
    K6ResultsReader::Callbacks scan;
    scan.on_sample = [&](K6Sample&& s) {
      first = std::min(first, s.time_unix_nano);
      last = std::max(last, s.time_unix_nano);
    };
    absl::StatusOr<K6ReadStats> scanned = K6ResultsReader::ReadFile(path, scan);
    if (!scanned.ok()) return scanned.status();
    if (scanned->samples > 0) {
      const int64_t anchor = options.pace == ReplayPace::kFast ? last : first;
      result.shift_ns = absl::ToUnixNanos(now) - anchor;
    }
  }

  SampleStream stream(stub, export_id, options.batch_size);
  absl::Status stream_status;
  const absl::Time start = absl::Now();
  int64_t first_ts = std::numeric_limits<int64_t>::min();
  K6ResultsReader::Callbacks callbacks;
  callbacks.on_metric = [&](const K6Metric& m) { stream.Declare(m.name, m.type, m.kind); };
  // Compact mode: series references by (metric, tags) key.
  constexpr uint32_t kMaxRefs = uint32_t{1} << 20;
  absl::flat_hash_map<std::string, uint32_t> refs;
  std::string key;
  callbacks.on_sample = [&](K6Sample&& s) {
    if (!stream_status.ok()) return;
    const int64_t ts = s.time_unix_nano + result.shift_ns;
    if (options.pace == ReplayPace::kRecorded) {
      if (first_ts == std::numeric_limits<int64_t>::min()) first_ts = ts;
      const absl::Time due = start + absl::Nanoseconds(ts - first_ts);
      if (due > absl::Now()) {
        stream_status = stream.Flush();  // what is due now leaves before we wait
        absl::SleepFor(due - absl::Now());
      }
    }
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
        return;
      }
    }
    stream.Add(s.metric, s.tags, ts, s.value);
  };
  callbacks.on_error = options.on_error;
  absl::StatusOr<K6ReadStats> read = K6ResultsReader::ReadFile(path, callbacks);
  if (!read.ok()) return read.status();
  result.read = *read;
  if (!stream_status.ok()) return stream_status;
  absl::StatusOr<v1::StreamSamplesResponse> response = stream.Finish();
  if (!response.ok()) return response.status();
  result.samples_sent = stream.samples_sent();
  result.response = *std::move(response);
  return result;
}

}  // namespace rwexport
