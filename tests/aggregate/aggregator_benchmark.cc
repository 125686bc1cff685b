// What the aggregation engine costs, on samples already decoded (no gRPC):
//   BM_Ingest/<type>         StreamIngester::Ingest of 1000-sample batches over 300 raw series,
//                            one worker, waiting for `done`: ns per sample (real time; the
//                            cpu_ns_per_sample counter is the CPU of every thread).
//   BM_IngestCompact/<type>  the same samples in compact stream mode (series references).
//   BM_IngestCompactPipelined/<type> the same, up to 4 batches in flight (as the server).
//   BM_IngestK6Order         HTTP samples in k6's order (a request's metrics together).
//   BM_IngestParsed/<type>, BM_IngestK6OrderParsed  the same from the batch's bytes, as the
//                            server got it before: generated-code parse, then Ingest.
//   BM_IngestRaw/<type>, BM_IngestK6OrderRaw  the same from the batch's bytes, as the server
//                            gets it now: DecodeSampleBatch, then Ingest(DecodedBatch).
//   BM_SeriesLookup/<case>   raw (metric, tags) keys: all cached, new keys of existing series,
//                            new keys creating new series.
//   BM_IngestScaling/<streams>/<workers> one export fed by concurrent streams (samples/s).
//   BM_MemoryPerSeries/<type>/<series>/<labels>/<mode> heap and RSS growth per aggregation
//                            series (one iteration), the stream's part and the export's part.
//   BM_Flush/<type>/<series>/<workers> one window of N series closed by Tick() until the sink
//                            has the batch (manual time: ms per flush; cpu_ms_per_flush: the
//                            process's CPU over the same span).
// Run with -c opt (the default here):
//   bazel run //tests/aggregate:aggregator_benchmark -- --benchmark_filter=BM_Ingest
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/bench/workload.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/stream_ingester.h"

namespace rwexport {
namespace {

constexpr int64_t kSecond = 1000000000;

// The metric of each k6 type used here.
const char* MetricOf(int type) {
  switch (type) {
    case 0:
      return "http_reqs";  // counter
    case 1:
      return "vus";  // gauge
    case 2:
      return "http_req_failed";  // rate
    default:
      return "http_req_duration";  // trend
  }
}
const char* TypeName(int type) {
  static const char* const kNames[] = {"counter", "gauge", "rate", "trend"};
  return kNames[type];
}

// An export of `metric` only, keeping name/method/status (realistic label sets), with the
// test run id; no series limits.
v1::StartExportRequest Request(const std::string& metric) {
  v1::StartExportRequest request;
  request.set_test_run_id("1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
  target->set_resample_rate(1);
  target->set_include_default_metrics(false);
  target->set_include_test_run_id(true);
  v1::MetricEntry* entry = target->add_metrics();
  entry->set_source_metric(metric);
  for (const char* tag : {"name", "method", "status"}) entry->add_keep_tags(tag);
  return request;
}

// The k6 tags of request `i` of endpoint `endpoint`.
void SetTags(v1::Sample* s, int endpoint, int variant, const std::string& unique = "") {
  const std::string url = absl::StrCat("https://shop.test/api/v1/products/", endpoint);
  const std::pair<const char*, std::string> tags[] = {
      {"expected_response", variant == 0 ? "true" : "false"},
      {"method", endpoint % 4 == 0 ? "POST" : "GET"},
      {"name", url},
      {"scenario", "checkout_flow"},
      {"status", variant == 0 ? "200" : (variant == 1 ? "404" : "503")},
      {"url", unique.empty() ? url : absl::StrCat(url, "?id=", unique)},
  };
  for (const auto& [key, value] : tags) {
    v1::Tag* t = s->add_tags();
    t->set_key(key);
    t->set_value(value);
  }
}

double Value(int type, std::mt19937_64& rng) {
  std::lognormal_distribution<double> latency(4.4, 0.6);
  switch (type) {
    case 0:
      return 1;
    case 1:
      return static_cast<double>(rng() % 100);
    case 2:
      return rng() % 20 == 0 ? 1 : 0;
    default:
      return latency(rng);
  }
}

// 1000 samples of `metric` over `keys` raw series (100 endpoints x 3 outcomes for 300).
v1::SampleBatch MakeBatch(int type, int keys, int64_t ts) {
  std::mt19937_64 rng(7);
  v1::SampleBatch batch;
  for (int i = 0; i < 1000; ++i) {
    v1::Sample* s = batch.add_samples();
    s->set_metric(MetricOf(type));
    const int key = static_cast<int>(rng() % static_cast<uint64_t>(keys));
    SetTags(s, key / 3, key % 3);
    s->set_time_unix_nano(ts + i);
    s->set_value(Value(type, rng));
  }
  return batch;
}

// The same samples in compact form, with the declarations in `declarations`.
void MakeCompact(const v1::SampleBatch& batch, v1::SampleBatch* declarations,
                 v1::SampleBatch* compact) {
  std::map<std::string, uint32_t> refs;
  int64_t last = 0;
  for (const v1::Sample& s : batch.samples()) {
    std::string key = s.metric();
    for (const v1::Tag& t : s.tags()) absl::StrAppend(&key, "\x01", t.key(), "\x02", t.value());
    auto [it, added] = refs.emplace(key, static_cast<uint32_t>(refs.size()));
    if (added) {
      v1::SeriesDeclaration* d = declarations->add_series();
      d->set_ref(it->second);
      d->set_metric(s.metric());
      *d->mutable_tags() = s.tags();
    }
    v1::CompactSamples* c = compact->mutable_compact();
    c->add_refs(it->second);
    c->add_time_unix_nano_delta(c->refs_size() == 1 ? s.time_unix_nano()
                                                    : s.time_unix_nano() - last);
    c->add_values(s.value());
    last = s.time_unix_nano();
  }
}

double ProcessCpuNs() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

// Ingest without waiting for `done`, as the server ingests a stream: at most `depth` batches
// of one stream are being applied at once (then it waits for one to finish). Drain() waits
// for all. One per stream.
class InFlight {
 public:
  template <typename Batch>
  void Ingest(StreamIngester& ingester, const Batch& batch, int depth) {
    {
      MutexLock lock(&mu_);
      while (n_ >= depth) cv_.Wait(&mu_);
      ++n_;
    }
    absl::Status status = ingester.Ingest(batch, [this] {
      MutexLock lock(&mu_);
      --n_;
      cv_.Signal();
    });
    if (!status.ok()) std::abort();
  }
  void Drain() {
    MutexLock lock(&mu_);
    while (n_ > 0) cv_.Wait(&mu_);
  }

 private:
  Mutex mu_;
  CondVar cv_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};

// An aggregator over its own pool, with a sink counting points and a clock the benchmark
// moves (starting at the wall clock, so "too_new" and "too_old" never apply).
class Harness {
 public:
  Harness(const v1::StartExportRequest& request, size_t workers)
      : pool_(workers), now_ns_(absl::ToUnixNanos(absl::Now())) {
    absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
    if (!config.ok()) std::abort();
    AggregatorOptions options;
    options.lateness = absl::ZeroDuration();
    options.clock = [this] { return absl::FromUnixNanos(now_ns_.load()); };
    aggregator_ = Aggregator::Create(
        *std::move(config), &pool_,
        [this](size_t, PointBatch batch) {
          // Kept, not looked at: counting and freeing happen outside the measured time.
          MutexLock lock(&mu_);
          received_.push_back(std::move(batch));
          ++batches_;
          cv_.SignalAll();
        },
        options);
    ingester_ = std::make_unique<StreamIngester>(aggregator_);
  }
  ~Harness() {
    if (aggregator_ != nullptr) aggregator_->Stop();
  }

  // Ingest of either form of a batch, waiting for `done`.
  template <typename Batch>
  void Ingest(const Batch& batch) {
    IngestOn(*ingester_, batch);
  }
  template <typename Batch>
  static void IngestOn(StreamIngester& ingester, const Batch& batch) {
    Mutex mu;
    CondVar cv;
    bool done = false;
    absl::Status status = ingester.Ingest(batch, [&] {
      MutexLock lock(&mu);
      done = true;
      cv.Signal();
    });
    if (!status.ok()) std::abort();
    MutexLock lock(&mu);
    while (!done) cv.Wait(&mu);
  }
  std::shared_ptr<Aggregator> aggregator() { return aggregator_; }

  // Ingest without waiting for `done`, as the server does (see InFlight).
  template <typename Batch>
  void IngestPipelined(const Batch& batch, int depth) {
    in_flight_.Ingest(*ingester_, batch, depth);
  }
  void Drain() { in_flight_.Drain(); }

  // Closes what the clock allows and waits until the sink has the batch. Tick() again while
  // waiting: it does nothing while the previous flush is still finishing.
  void TickAndWait() {
    uint64_t before;
    {
      MutexLock lock(&mu_);
      before = batches_;
    }
    while (true) {
      aggregator_->Tick();
      MutexLock lock(&mu_);
      if (batches_ != before) return;
      cv_.WaitFor(&mu_, std::chrono::milliseconds(5));
      if (batches_ != before) return;
    }
  }

  int64_t now_ns() const { return now_ns_.load(); }
  void set_now_ns(int64_t ns) { now_ns_ = ns; }
  // Points received so far (the batches are freed).
  uint64_t points() {
    std::vector<PointBatch> batches;
    {
      MutexLock lock(&mu_);
      batches.swap(received_);
    }
    for (const PointBatch& b : batches) points_ += b.point_count();
    return points_;
  }
  StreamIngester& ingester() { return *ingester_; }
  void DropIngester() { ingester_.reset(); }

 private:
  WorkerPool pool_;
  std::atomic<int64_t> now_ns_;
  std::shared_ptr<Aggregator> aggregator_;
  std::unique_ptr<StreamIngester> ingester_;
  Mutex mu_;
  CondVar cv_;
  std::vector<PointBatch> received_ ABSL_GUARDED_BY(mu_);
  uint64_t batches_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t points_ = 0;  // of batches taken from received_; benchmark thread only
  InFlight in_flight_;
};

void BM_Ingest(benchmark::State& state) {
  const int type = static_cast<int>(state.range(0));
  state.SetLabel(TypeName(type));
  Harness h(Request(MetricOf(type)), 1);
  const v1::SampleBatch batch = MakeBatch(type, 300, h.now_ns() - kSecond / 2);
  h.Ingest(batch);  // raw keys cached, series created
  const double cpu_start = ProcessCpuNs();
  for (auto _ : state) h.Ingest(batch);
  const double samples = static_cast<double>(state.iterations()) * 1000;
  state.counters["cpu_ns_per_sample"] = (ProcessCpuNs() - cpu_start) / samples;
  state.SetItemsProcessed(static_cast<int64_t>(samples));
}
BENCHMARK(BM_Ingest)->DenseRange(0, 3)->UseRealTime();

// Per iteration: the batch's bytes parsed by generated code (into one reused message, as gRPC
// does not), then Ingest.
void IngestParsedLoop(benchmark::State& state, Harness& h, const v1::SampleBatch& batch) {
  const std::string bytes = batch.SerializeAsString();
  v1::SampleBatch parsed;
  if (!parsed.ParseFromString(bytes)) std::abort();
  h.Ingest(parsed);
  const double cpu_start = ProcessCpuNs();
  for (auto _ : state) {
    if (!parsed.ParseFromString(bytes)) std::abort();
    h.Ingest(parsed);
  }
  const double samples = static_cast<double>(state.iterations()) * batch.samples_size();
  state.counters["cpu_ns_per_sample"] = (ProcessCpuNs() - cpu_start) / samples;
  state.SetItemsProcessed(static_cast<int64_t>(samples));
}

// Per iteration: the batch's bytes decoded by DecodeSampleBatch, then Ingest(DecodedBatch).
void IngestRawLoop(benchmark::State& state, Harness& h, const v1::SampleBatch& batch) {
  const std::string bytes = batch.SerializeAsString();
  DecodedBatch decoded;
  if (!DecodeSampleBatch(bytes, &decoded).ok()) std::abort();
  h.Ingest(decoded);
  const double cpu_start = ProcessCpuNs();
  for (auto _ : state) {
    if (!DecodeSampleBatch(bytes, &decoded).ok()) std::abort();
    h.Ingest(decoded);
  }
  const double samples = static_cast<double>(state.iterations()) * batch.samples_size();
  state.counters["cpu_ns_per_sample"] = (ProcessCpuNs() - cpu_start) / samples;
  state.SetItemsProcessed(static_cast<int64_t>(samples));
}

void BM_IngestParsed(benchmark::State& state) {
  const int type = static_cast<int>(state.range(0));
  state.SetLabel(TypeName(type));
  Harness h(Request(MetricOf(type)), 1);
  IngestParsedLoop(state, h, MakeBatch(type, 300, h.now_ns() - kSecond / 2));
}
BENCHMARK(BM_IngestParsed)->DenseRange(0, 3)->UseRealTime();

void BM_IngestRaw(benchmark::State& state) {
  const int type = static_cast<int>(state.range(0));
  state.SetLabel(TypeName(type));
  Harness h(Request(MetricOf(type)), 1);
  IngestRawLoop(state, h, MakeBatch(type, 300, h.now_ns() - kSecond / 2));
}
BENCHMARK(BM_IngestRaw)->DenseRange(0, 3)->UseRealTime();

// Compact batches of one metric's type; `depth` 0: each batch waits for `done`; otherwise up
// to `depth` batches are being applied while the next is routed.
void IngestCompactLoop(benchmark::State& state, int depth) {
  const int type = static_cast<int>(state.range(0));
  state.SetLabel(TypeName(type));
  Harness h(Request(MetricOf(type)), 1);
  v1::SampleBatch declarations, compact;
  MakeCompact(MakeBatch(type, 300, h.now_ns() - kSecond / 2), &declarations, &compact);
  h.Ingest(declarations);
  h.Ingest(compact);
  const double cpu_start = ProcessCpuNs();
  for (auto _ : state) {
    if (depth == 0) {
      h.Ingest(compact);
    } else {
      h.IngestPipelined(compact, depth);
    }
  }
  h.Drain();
  const double samples = static_cast<double>(state.iterations()) * 1000;
  state.counters["cpu_ns_per_sample"] = (ProcessCpuNs() - cpu_start) / samples;
  state.SetItemsProcessed(static_cast<int64_t>(samples));
}

void BM_IngestCompact(benchmark::State& state) { IngestCompactLoop(state, 0); }
BENCHMARK(BM_IngestCompact)->DenseRange(0, 3)->UseRealTime();

// Up to 4 batches being applied while the next is routed, as the server ingests a stream: the
// worker does not sleep between batches, so there is no thread handoff per batch.
void BM_IngestCompactPipelined(benchmark::State& state) { IngestCompactLoop(state, 4); }
BENCHMARK(BM_IngestCompactPipelined)->DenseRange(0, 3)->UseRealTime();

// Samples in k6's order: each HTTP request's nine http_req_* samples one after the other with
// the same tags (100 endpoints x 3 outcomes), then data_sent and data_received; the export
// keeps name/method/status of http_reqs and http_req_duration, and the defaults.
v1::StartExportRequest K6OrderRequest() {
  v1::StartExportRequest request = Request("http_req_duration");
  v1::MetricEntry* reqs = request.mutable_targets(0)->add_metrics();
  reqs->set_source_metric("http_reqs");
  for (const char* tag : {"name", "method", "status"}) reqs->add_keep_tags(tag);
  request.mutable_targets(0)->set_include_default_metrics(true);
  return request;
}

v1::SampleBatch K6OrderBatch(int64_t ts) {
  static const char* const kHttp[] = {
      "http_reqs",           "http_req_duration",        "http_req_blocked",
      "http_req_connecting", "http_req_tls_handshaking", "http_req_sending",
      "http_req_waiting",    "http_req_receiving",       "http_req_failed"};
  std::mt19937_64 rng(11);
  v1::SampleBatch batch;
  while (batch.samples_size() < 1000) {
    const int key = static_cast<int>(rng() % 300);
    for (const char* metric : kHttp) {
      v1::Sample* s = batch.add_samples();
      s->set_metric(metric);
      SetTags(s, key / 3, key % 3);
      s->set_time_unix_nano(ts);
      s->set_value(Value(3, rng));
    }
    for (const char* metric : {"data_sent", "data_received"}) {
      v1::Sample* s = batch.add_samples();
      s->set_metric(metric);
      v1::Tag* t = s->add_tags();
      t->set_key("scenario");
      t->set_value("checkout_flow");
      s->set_time_unix_nano(ts);
      s->set_value(1000);
    }
  }
  return batch;
}

void BM_IngestK6Order(benchmark::State& state) {
  Harness h(K6OrderRequest(), 1);
  const v1::SampleBatch batch = K6OrderBatch(h.now_ns() - kSecond / 2);
  h.Ingest(batch);
  const double cpu_start = ProcessCpuNs();
  for (auto _ : state) h.Ingest(batch);
  const double samples = static_cast<double>(state.iterations()) * batch.samples_size();
  state.counters["cpu_ns_per_sample"] = (ProcessCpuNs() - cpu_start) / samples;
  state.SetItemsProcessed(static_cast<int64_t>(samples));
}
BENCHMARK(BM_IngestK6Order)->UseRealTime();

void BM_IngestK6OrderParsed(benchmark::State& state) {
  Harness h(K6OrderRequest(), 1);
  IngestParsedLoop(state, h, K6OrderBatch(h.now_ns() - kSecond / 2));
}
BENCHMARK(BM_IngestK6OrderParsed)->UseRealTime();

void BM_IngestK6OrderRaw(benchmark::State& state) {
  Harness h(K6OrderRequest(), 1);
  IngestRawLoop(state, h, K6OrderBatch(h.now_ns() - kSecond / 2));
}
BENCHMARK(BM_IngestK6OrderRaw)->UseRealTime();

// One export fed by S concurrent streams (threads, each with its own StreamIngester, as the
// server's streams) with W aggregation workers: batches in k6's order decoded from bytes and
// ingested with up to 4 per stream being applied, as the server does. 1,000 batches of 1,000
// samples per stream per iteration; samples/s over wall time. On a 2-core machine S=2/W=2
// against S=1/W=1 shows whether one export uses both cores.
void BM_IngestScaling(benchmark::State& state) {
  const int streams = static_cast<int>(state.range(0));
  const size_t workers = static_cast<size_t>(state.range(1));
  state.SetLabel(absl::StrCat(streams, " streams, ", workers, " workers"));
  constexpr int kBatches = 1000;
  Harness h(K6OrderRequest(), workers);
  const std::string bytes = K6OrderBatch(h.now_ns() - kSecond / 2).SerializeAsString();
  std::vector<std::unique_ptr<StreamIngester>> ingesters;
  std::vector<DecodedBatch> decoded(static_cast<size_t>(streams));
  for (int i = 0; i < streams; ++i) {
    ingesters.push_back(std::make_unique<StreamIngester>(h.aggregator()));
    if (!DecodeSampleBatch(bytes, &decoded[i]).ok()) std::abort();
    Harness::IngestOn(*ingesters.back(), decoded[i]);  // keys cached, series created
  }
  const double cpu_start = ProcessCpuNs();
  uint64_t samples = 0;
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int i = 0; i < streams; ++i) {
      threads.emplace_back([&, i] {
        DecodedBatch batch;
        InFlight in_flight;
        for (int b = 0; b < kBatches; ++b) {
          if (!DecodeSampleBatch(bytes, &batch).ok()) std::abort();
          in_flight.Ingest(*ingesters[i], batch, 4);
        }
        in_flight.Drain();
      });
    }
    for (std::thread& t : threads) t.join();
    samples += static_cast<uint64_t>(streams) * kBatches * decoded[0].samples.size();
  }
  state.counters["cpu_ns_per_sample"] = (ProcessCpuNs() - cpu_start) / static_cast<double>(samples);
  state.counters["samples_per_second"] =
      benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_IngestScaling)
    ->Args({1, 1})
    ->Args({2, 1})
    ->Args({1, 2})
    ->Args({2, 2})
    ->Iterations(5)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// 0: 1000 raw keys, all cached. 1: every sample a new raw key (a unique url tag, not kept)
// of an existing series. 2: every sample a new raw key and a new series (a unique name).
void BM_SeriesLookup(benchmark::State& state) {
  const int which = static_cast<int>(state.range(0));
  static const char* const kCases[] = {"cached", "new_key_existing_series", "new_series"};
  state.SetLabel(kCases[which]);
  Harness h(Request("http_reqs"), 1);
  const int64_t ts = h.now_ns() - kSecond / 2;
  uint64_t next = 0;
  auto make = [&] {
    v1::SampleBatch batch;
    for (int i = 0; i < 1000; ++i) {
      v1::Sample* s = batch.add_samples();
      s->set_metric("http_reqs");
      if (which == 0) {
        SetTags(s, i / 3, i % 3);
      } else if (which == 1) {
        SetTags(s, i % 100, 0, absl::StrCat(next++));
      } else {
        SetTags(s, static_cast<int>(1000 + next++), 0);
      }
      s->set_time_unix_nano(ts);
      s->set_value(1);
    }
    return batch;
  };
  v1::SampleBatch batch = make();
  h.Ingest(batch);
  for (auto _ : state) {
    if (which != 0) {
      state.PauseTiming();
      batch = make();
      state.ResumeTiming();
    }
    h.Ingest(batch);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
// New series: bounded so the export stays below the default series limits.
BENCHMARK(BM_SeriesLookup)->Arg(0)->UseRealTime();
BENCHMARK(BM_SeriesLookup)->Arg(1)->Iterations(200)->UseRealTime();
BENCHMARK(BM_SeriesLookup)->Arg(2)->Iterations(60)->UseRealTime();

// CPU per sample against the number of distinct series (issue 16, item 3), in the steady state
// and without gRPC: `rwexport bench`'s workload (lib/bench/workload.h) for N series, declared
// once on one compact stream, then its cycle in compact batches of 1,000 samples, pipelined (4
// in flight) over 2 workers as the server ingests a stream. Event time advances by 0.5 ms per
// batch (2M samples a second, about what `bench` reaches at 100k series), and so does the
// aggregator's clock: 1 s windows close and flush as they would (lateness 0; the flushed
// batches are freed by the benchmark thread, as the sender would). Reports the process's CPU
// per sample; compare /1000 with /100000 within one run.
void BM_IngestSeriesScaling(benchmark::State& state) {
  const size_t series = static_cast<size_t>(state.range(0));
  state.SetLabel(absl::StrCat(series, " series"));
  const BenchWorkloadShape shape = BenchWorkloadShapeFor(series);
  const BenchWorkload workload = MakeBenchWorkload(shape.endpoints, 1, shape.extra_steps);
  Harness h(MakeBenchExportRequest("http://127.0.0.1:1/api/v1/write", 1), 2);
  constexpr size_t kBatch = 1000;
  constexpr int64_t kBatchNs = kSecond / 2000;
  v1::SampleBatch declarations;
  v1::MetricDeclaration* trend = declarations.add_metrics();
  trend->set_name(kBenchCustomTrend);
  trend->set_type(v1::TREND);
  trend->set_kind(v1::TIME);
  for (size_t s = 0; s < workload.series.size(); ++s) {
    v1::SeriesDeclaration* d = declarations.add_series();
    d->set_ref(static_cast<uint32_t>(s));
    d->set_metric(workload.series[s].metric);
    for (const auto& [key, value] : workload.series[s].tags) {
      v1::Tag* t = d->add_tags();
      t->set_key(key);
      t->set_value(value);
    }
  }
  h.Ingest(declarations);
  // The cycle in batches (the last one wraps around); each batch's first delta is its time.
  std::vector<v1::SampleBatch> batches((workload.cycle.size() + kBatch - 1) / kBatch);
  size_t pos = 0;
  for (v1::SampleBatch& b : batches) {
    v1::CompactSamples* c = b.mutable_compact();
    for (size_t k = 0; k < kBatch; ++k) {
      c->add_refs(workload.cycle[pos].first);
      c->add_time_unix_nano_delta(0);
      c->add_values(workload.cycle[pos].second);
      pos = pos + 1 == workload.cycle.size() ? 0 : pos + 1;
    }
  }
  int64_t ts = h.now_ns();
  size_t next = 0;
  auto run = [&](size_t count) {
    for (size_t i = 0; i < count; ++i) {
      v1::SampleBatch& b = batches[next];
      next = next + 1 == batches.size() ? 0 : next + 1;
      ts += kBatchNs;
      h.set_now_ns(ts);
      b.mutable_compact()->set_time_unix_nano_delta(0, ts);
      h.IngestPipelined(b, 4);
      if (i % 2000 == 1999) h.points();  // frees the flushed windows (a window: 2,000 batches)
    }
    h.Drain();
  };
  run(std::max<size_t>(batches.size(), 4000));  // every series seen, 2 windows flushed
  const double cpu_start = ProcessCpuNs();
  constexpr size_t kBatchesPerIteration = 4000;  // 2 windows
  for (auto _ : state) run(kBatchesPerIteration);
  const double samples = static_cast<double>(state.iterations()) * kBatchesPerIteration * kBatch;
  state.counters["cpu_ns_per_sample"] = (ProcessCpuNs() - cpu_start) / samples;
  state.SetItemsProcessed(static_cast<int64_t>(samples));
}
BENCHMARK(BM_IngestSeriesScaling)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Iterations(5)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

size_t HeapInUse() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

size_t RssBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Heap (malloc in use) and RSS growth per aggregation series of `type`, with `samples` samples
// per series in one open window. Labels 0 (realistic): each series fed from its own raw key
// (6 k6 tags, name/method/status kept, plus test_run_id); 1 (minimal): one short tag, kept,
// no test_run_id. Mode 0: self-describing samples; 1: compact, each series declared once.
// Reported: bytes_per_series (everything, the stream's cache included),
// stream_cache_bytes_per_series (the part freed with the stream: raw keys in self-describing
// mode, declared series in compact mode) and export_bytes_per_series (the rest: what the
// export keeps per series for its whole life).
void BM_MemoryPerSeries(benchmark::State& state) {
  const int type = static_cast<int>(state.range(0));
  const int series = static_cast<int>(state.range(1));
  const bool minimal = state.range(2) == 1;
  const bool compact = state.range(3) == 1;
  const int samples = type == 3 ? 100 : 1;  // trends past their exact window (64 values)
  state.SetLabel(absl::StrCat(TypeName(type), minimal ? ", minimal labels" : ", k6 labels",
                              compact ? ", compact" : ", self-describing"));
  v1::StartExportRequest request = Request(MetricOf(type));
  if (minimal) {
    v1::Target* target = request.mutable_targets(0);
    target->set_include_test_run_id(false);
    target->mutable_metrics(0)->clear_keep_tags();
    target->mutable_metrics(0)->add_keep_tags("name");
  }
  for (auto _ : state) {
    malloc_trim(0);
    const size_t heap0 = HeapInUse();
    const size_t rss0 = RssBytes();
    auto h = std::make_unique<Harness>(request, 1);
    const int64_t ts = h->now_ns() - kSecond / 2;
    std::mt19937_64 rng(3);
    for (int s0 = 0; s0 < series; s0 += 1000) {
      for (int k = 0; k < samples; ++k) {
        v1::SampleBatch batch;
        for (int s = s0; s < std::min(series, s0 + 1000); ++s) {
          v1::Sample* sample = batch.add_samples();
          sample->set_metric(MetricOf(type));
          if (minimal) {
            v1::Tag* tag = sample->add_tags();
            tag->set_key("name");
            tag->set_value(absl::StrCat("e", s));
          } else {
            SetTags(sample, s, 0);
          }
          sample->set_time_unix_nano(ts + k);
          sample->set_value(Value(type, rng));
          if (!compact) continue;
          if (k == 0) {
            v1::SeriesDeclaration* d = batch.add_series();
            d->set_ref(static_cast<uint32_t>(s));
            d->set_metric(sample->metric());
            *d->mutable_tags() = sample->tags();
          }
          v1::CompactSamples* c = batch.mutable_compact();
          c->add_refs(static_cast<uint32_t>(s));
          c->add_time_unix_nano_delta(c->refs_size() == 1 ? sample->time_unix_nano() : 0);
          c->add_values(sample->value());
        }
        if (compact) batch.clear_samples();
        h->Ingest(batch);
      }
    }
    const size_t heap1 = HeapInUse();
    const size_t rss1 = RssBytes();
    h->DropIngester();
    const size_t heap2 = HeapInUse();
    state.counters["bytes_per_series"] =
        static_cast<double>(heap1 - heap0) / static_cast<double>(series);
    state.counters["rss_bytes_per_series"] =
        (static_cast<double>(rss1) - static_cast<double>(rss0)) / static_cast<double>(series);
    state.counters["stream_cache_bytes_per_series"] =
        static_cast<double>(heap1 - heap2) / static_cast<double>(series);
    state.counters["export_bytes_per_series"] =
        static_cast<double>(heap2 - heap0) / static_cast<double>(series);
    h.reset();
  }
}
BENCHMARK(BM_MemoryPerSeries)
    ->ArgsProduct({{0, 1, 2, 3}, {50000}, {0, 1}, {0, 1}})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// One window of N series (counters, or trends with the 8 default statistics), each with a
// sample, closed by Tick(): manual time from Tick() to the sink holding the batch.
void BM_Flush(benchmark::State& state) {
  const int type = static_cast<int>(state.range(0));
  const int series = static_cast<int>(state.range(1));
  const size_t workers = static_cast<size_t>(state.range(2));
  state.SetLabel(absl::StrCat(TypeName(type), " ", series, " series, ", workers, " workers"));
  Harness h(Request(MetricOf(type)), workers);
  // Aligned to a second so that every sample of an iteration is in one window.
  int64_t window_start = (h.now_ns() / kSecond) * kSecond - 3600 * kSecond;
  h.set_now_ns(window_start);
  std::mt19937_64 rng(5);
  std::vector<v1::SampleBatch> batches;
  for (int s0 = 0; s0 < series; s0 += 1000) {
    v1::SampleBatch batch;
    for (int s = s0; s < std::min(series, s0 + 1000); ++s) {
      v1::Sample* sample = batch.add_samples();
      sample->set_metric(MetricOf(type));
      SetTags(sample, s, 0);
      sample->set_value(Value(type, rng));
    }
    batches.push_back(std::move(batch));
  }
  uint64_t points = 0;
  double cpu_ns = 0;  // of the whole process (workers and the waiting thread) while flushing
  for (auto _ : state) {
    // Untimed: one sample per series in the window, then the clock past its end.
    const int64_t ts = window_start + kSecond / 2;
    h.set_now_ns(ts);
    for (v1::SampleBatch& batch : batches) {
      for (v1::Sample& s : *batch.mutable_samples()) s.set_time_unix_nano(ts);
      h.Ingest(batch);
    }
    h.set_now_ns(window_start + kSecond);
    const uint64_t before = h.points();
    const double cpu_start = ProcessCpuNs();
    const auto start = std::chrono::steady_clock::now();
    h.TickAndWait();
    const auto end = std::chrono::steady_clock::now();
    cpu_ns += ProcessCpuNs() - cpu_start;
    state.SetIterationTime(std::chrono::duration<double>(end - start).count());
    points = h.points() - before;
    window_start += kSecond;
  }
  state.counters["points_per_flush"] = static_cast<double>(points);
  // The latency target is wall time, but on a shared machine wall time includes waiting for a
  // core; the CPU a flush costs does not.
  state.counters["cpu_ms_per_flush"] = cpu_ns / 1e6 / static_cast<double>(state.iterations());
  state.counters["points_per_second"] =
      benchmark::Counter(static_cast<double>(points) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Flush)
    ->Args({0, 10000, 1})
    ->Args({0, 100000, 1})
    ->Args({0, 100000, 2})
    ->Args({3, 10000, 1})
    ->Args({3, 100000, 1})
    ->Args({3, 100000, 2})
    ->Iterations(10)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace rwexport
