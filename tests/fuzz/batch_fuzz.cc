// Fuzz target: what a StreamSamples client controls. The input is a serialized v1::SampleBatch
// (self-describing and compact samples, metric and series declarations), taken two ways: parsed
// by generated code, and decoded by hand (DecodeSampleBatch, as the server does). Each is fed
// through a StreamIngester into a real Aggregator on a WorkerPool, twice, with a window flush
// between and Stop() at the end. The export has three targets covering every metric type,
// selectors, kept tags, resample rates 1/3/10 s, stale markers and native histograms. The clock is
// fixed near the seeds' timestamps (2024-10-30), so seed samples are accepted rather than too_new.
//
// Checks the documented contracts: `done` runs once per accepted Ingest; the sink gets per
// series strictly increasing timestamps, float or histogram points but not both, and no series
// twice in one batch; the aggregator's figures equal the stream's counts. And the decoder's:
// it never accepts bytes protobuf refuses (it may refuse more: a known field with another wire
// type, deep groups), and where both accept, every figure and the points are the same.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/stream_ingester.h"
#include "lib/model/series.h"
#include "rwexport/v1/export.pb.h"

namespace {

using rwexport::Aggregator;

constexpr absl::string_view kExport = R"pb(
  test_run_id: "fuzz-run"
  targets {
    provider: "prometheus"
    remote_write_url: "http://127.0.0.1:1/api/v1/write"
    resample_rate: 1
    include_default_metrics: true
    metrics { source_metric: "checks" }
    metrics {
      source_metric: "my_trend{status=~\"2..\"}"
      target_metric: "ok_trend"
      keep_tags: [ "status", "name" ]
    }
    metrics { source_metric: "my_counter" }
    metrics { source_metric: "my_gauge" keep_tags: "instance" }
    metrics { source_metric: "my_rate{scenario!=\"\"}" keep_tags: "scenario" }
    trend_stats: [ "min", "max", "p(99.9)", "count", "sum" ]
  }
  targets {
    provider: "prometheus"
    remote_write_url: "http://127.0.0.1:1/api/v1/write"
    resample_rate: 3
    include_default_metrics: false
    include_test_run_id: true
    stale_markers: true
    native_histograms: true
    metrics {
      source_metric: "http_req_duration{method!=\"OPTIONS\"}"
      target_metric: "k6_http_req_duration_not_options"
      keep_tags: "method"
    }
    metrics { source_metric: "my_trend" }
    metrics { source_metric: "my_counter" keep_tags: "name" }
    metrics { source_metric: "vus" }
  }
  targets {
    provider: "prometheus"
    remote_write_url: "http://127.0.0.1:1/api/v1/write"
    resample_rate: 10
    stale_markers: true
    metrics { source_metric: "my_gauge" }
  }
)pb";

// 2024-10-30T16:21:00Z, just after the seeds' samples.
constexpr int64_t kStartNs = int64_t{1730305260} * 1000000000;

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "batch_fuzz: contract broken: %s\n", what);
  std::abort();
}

const rwexport::ExportConfig& Config() {
  static const rwexport::ExportConfig* config = [] {
    rwexport::v1::StartExportRequest request;
    Require(google::protobuf::TextFormat::ParseFromString(std::string(kExport), &request),
            "the export's text proto does not parse");
    absl::StatusOr<rwexport::ExportConfig> validated = rwexport::ValidateStartExport(request);
    if (!validated.ok()) std::fprintf(stderr, "%s\n", validated.status().ToString().c_str());
    Require(validated.ok(), "the export's configuration is invalid");
    return new rwexport::ExportConfig(*std::move(validated));
  }();
  return *config;
}

// What the sink saw, checked as it arrives.
class SinkChecker {
 public:
  void Receive(size_t target, const rwexport::PointBatch& batch) {
    rwexport::MutexLock lock(&mu_);
    Require(target < Config().targets.size(), "a batch for an unknown target");
    std::set<std::pair<const rwexport::Series*, uint32_t>> in_batch;
    for (const rwexport::SeriesPoints& sp : batch.series) {
      Require(sp.series != nullptr, "a batch entry without a series");
      Require(in_batch.insert({sp.series, sp.name}).second, "a series twice in one batch");
      Require(sp.points.empty() || sp.histograms.empty(), "float and histogram points mixed");
      int64_t& last = last_ts_[{sp.series, sp.name}];
      for (const rwexport::Point& p : sp.points) {
        Require(p.timestamp_ms > last, "float timestamps do not strictly increase");
        last = p.timestamp_ms;
      }
      for (const rwexport::HistogramPoint& h : sp.histograms) {
        Require(h.timestamp_ms > last, "histogram timestamps do not strictly increase");
        last = h.timestamp_ms;
      }
      points_ += sp.size();
    }
  }

  uint64_t points() {
    rwexport::MutexLock lock(&mu_);
    return points_;
  }

 private:
  rwexport::Mutex mu_;
  // Keys stay valid: the aggregator keeps every series alive until it is destroyed, after
  // this checker's last use.
  // By exported series: (series, name).
  std::map<std::pair<const rwexport::Series*, uint32_t>, int64_t> last_ts_ ABSL_GUARDED_BY(mu_);
  uint64_t points_ ABSL_GUARDED_BY(mu_) = 0;
};

// Runs `ingest(ingester, done)` and waits until its samples are applied; its error if it
// refused the batch (then `done` must not run).
template <typename IngestFn>
absl::Status IngestAndWait(rwexport::StreamIngester& ingester, const IngestFn& ingest) {
  rwexport::Mutex mu;
  rwexport::CondVar cv;
  int calls = 0;
  absl::Status status = ingest(ingester, [&] {
    rwexport::MutexLock lock(&mu);
    ++calls;
    cv.SignalAll();
  });
  if (!status.ok()) return status;
  rwexport::MutexLock lock(&mu);
  while (calls == 0) cv.Wait(&mu);
  Require(calls == 1, "done ran more than once");
  return absl::OkStatus();
}

std::string Describe(const rwexport::Rejections& rejections) {
  std::string out;
  for (const auto& [reason, r] : rejections) {
    out += reason + " " + std::to_string(r.count) + " " + r.example + "\n";
  }
  return out;
}

// What one way of taking the batch led to.
struct Outcome {
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  uint64_t late = 0;
  uint64_t points = 0;
  std::string rejections;
  std::string declaration_errors;
  std::vector<uint64_t> series_per_target;

  bool operator==(const Outcome& o) const {
    return accepted == o.accepted && rejected == o.rejected && late == o.late &&
           points == o.points && rejections == o.rejections &&
           declaration_errors == o.declaration_errors && series_per_target == o.series_per_target;
  }
};

// Ingests the batch with `ingest`, closes its windows, ingests it again, stops. Nullopt when
// the first Ingest refused the batch (only the decoded form may: InvalidArgument), with the
// reason in `why`.
template <typename IngestFn>
std::optional<Outcome> Exercise(const IngestFn& ingest, std::string* why) {
  // Lives for the whole process, as in the server; worker threads are reused across inputs.
  static rwexport::WorkerPool* const pool = new rwexport::WorkerPool(2);
  std::atomic<int64_t> now_ns{kStartNs};
  rwexport::AggregatorOptions options;
  options.clock = [&now_ns] { return absl::FromUnixNanos(now_ns.load()); };
  SinkChecker checker;
  std::shared_ptr<Aggregator> aggregator = Aggregator::Create(
      Config(), pool,
      [&checker](size_t target, rwexport::PointBatch points) { checker.Receive(target, points); },
      options);
  rwexport::StreamIngester ingester(aggregator);
  absl::Status first = IngestAndWait(ingester, ingest);
  if (!first.ok()) {
    Require(absl::IsInvalidArgument(first), "Ingest refused a batch before Stop()");
    Require(ingester.accepted() == 0 && ingester.rejected() == 0, "a refused batch was counted");
    *why = std::string(first.message());
    aggregator->Stop();
    return std::nullopt;
  }
  // A flush the samples started must not see the clock move (it would flush again, at a time
  // that depends on the threads).
  aggregator->AwaitFlushes();
  now_ns += int64_t{5} * 1000000000;  // closes the windows of the seeds' samples
  aggregator->Tick();
  // Again: cached series, samples for closed windows.
  Require(IngestAndWait(ingester, ingest).ok(), "Ingest refused a batch it took before");
  aggregator->Stop();
  Require(aggregator->stopped(), "not stopped after Stop()");
  const rwexport::AggregatorFigures figures = aggregator->Figures();
  Require(figures.samples_accepted == ingester.accepted(), "accepted counts differ");
  Require(figures.samples_rejected == ingester.rejected(), "rejected counts differ");
  Require(!ingest(ingester, [] { Require(false, "done ran after Stop()"); }).ok(),
          "Ingest accepted a batch after Stop()");
  Outcome outcome;
  outcome.accepted = figures.samples_accepted;
  outcome.rejected = figures.samples_rejected;
  outcome.late = figures.samples_late;
  outcome.points = checker.points();
  outcome.rejections = Describe(ingester.rejections());
  outcome.declaration_errors = Describe(ingester.declaration_errors());
  outcome.series_per_target = figures.series_per_target;
  return outcome;
}

}  // namespace

// Protobuf logs every string field with invalid UTF-8 it parses; fuzzed input has plenty.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  google::protobuf::SetLogHandler(nullptr);  // discards log messages
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  rwexport::DecodedBatch decoded;
  const absl::Status decode_status = rwexport::DecodeSampleBatch(bytes, &decoded);
  const bool decodes = decode_status.ok();
  std::string why(decode_status.message());
  std::optional<Outcome> raw;
  if (decodes) {
    raw = Exercise(
        [&decoded](rwexport::StreamIngester& ingester, std::function<void()> done) {
          return ingester.Ingest(decoded, std::move(done));
        },
        &why);
  }

  rwexport::v1::SampleBatch batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) {
    Require(!raw.has_value(), "the decoder took a batch protobuf refuses");
    return decodes ? 0 : -1;  // keep inputs that get past the decoder's first checks
  }
  std::string ignored;
  std::optional<Outcome> parsed = Exercise(
      [&batch](rwexport::StreamIngester& ingester, std::function<void()> done) {
        return ingester.Ingest(batch, std::move(done));
      },
      &ignored);
  Require(parsed.has_value(), "Ingest refused a parsed batch");
  if (raw.has_value()) Require(*raw == *parsed, "decoded and parsed batches differ in figures");
  if (std::getenv("RWEXPORT_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "accepted %llu, rejected %llu, late %llu, points %llu, decoded: %s%s\n",
                 static_cast<unsigned long long>(parsed->accepted),
                 static_cast<unsigned long long>(parsed->rejected),
                 static_cast<unsigned long long>(parsed->late),
                 static_cast<unsigned long long>(parsed->points),
                 raw.has_value() ? "same" : "refused: ", raw.has_value() ? "" : why.c_str());
  }
  return 0;
}
