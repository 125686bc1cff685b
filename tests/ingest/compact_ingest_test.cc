// Compact stream mode (v1::SeriesDeclaration + v1::CompactSamples) in StreamIngester: it must
// aggregate exactly like the same samples sent self-describing, count its errors by reason,
// and mix with self-describing samples on one stream.
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/stream_ingester.h"
#include "tests/testing/ingest.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

// A window-aligned origin (a multiple of every resample rate used here).
constexpr int64_t kT0 = int64_t{1700000000} * 1000000000;
constexpr int64_t kMs = 1000000;
constexpr int64_t kT0Ms = kT0 / kMs;

using Tags = std::vector<std::pair<std::string, std::string>>;

// What the aggregator hands to remote write: points by exported series ("name{labels}").
class Collector {
 public:
  void Add(PointBatch batch) {
    MutexLock lock(&mu_);
    for (SeriesPoints& sp : batch.series) {
      auto& points = series_[sp.series->ToString(sp.name)];
      for (const Point& p : sp.points) points.emplace_back(p.timestamp_ms - kT0Ms, p.value);
    }
  }
  std::map<std::string, std::vector<std::pair<int64_t, double>>> All() {
    MutexLock lock(&mu_);
    return series_;
  }

 private:
  Mutex mu_;
  std::map<std::string, std::vector<std::pair<int64_t, double>>> series_ ABSL_GUARDED_BY(mu_);
};

// One sample as the test writes it: offset from kT0 in ms.
struct TestSample {
  std::string metric;
  Tags tags;
  int64_t offset_ms;
  double value;
};

// An export of http_reqs (by status), vus, checks and http_req_duration (by method) in 1 s
// windows, with an ingester; the clock stands still at kT0 + 1 h.
class Export {
 public:
  Export() {
    v1::StartExportRequest request;
    request.set_test_run_id("run-1");
    v1::Target* target = request.add_targets();
    target->set_provider("prometheus");
    target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
    target->set_resample_rate(1);
    target->set_include_default_metrics(false);
    target->add_metrics()->set_source_metric("vus");
    target->add_metrics()->set_source_metric("checks");
    v1::MetricEntry* reqs = target->add_metrics();
    reqs->set_source_metric("http_reqs");
    reqs->add_keep_tags("status");
    v1::MetricEntry* duration = target->add_metrics();
    duration->set_source_metric("http_req_duration");
    duration->add_keep_tags("method");
    target->add_trend_stats("min");
    target->add_trend_stats("max");
    target->add_trend_stats("count");
    target->add_trend_stats("p(50)");
    target->add_metrics()->set_source_metric("step_duration");
    absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
    EXPECT_TRUE(config.ok()) << config.status();
    AggregatorOptions options;
    options.lateness = absl::ZeroDuration();
    options.clock = [] { return absl::FromUnixNanos(kT0) + absl::Hours(1); };
    aggregator_ = Aggregator::Create(
        *std::move(config), &pool_,
        [this](size_t, PointBatch batch) { collector_.Add(std::move(batch)); }, options);
    ingester_ = std::make_unique<StreamIngester>(aggregator_);
  }

  // Ingests one batch and waits until the workers applied it.
  void Ingest(const v1::SampleBatch& batch) { ASSERT_TRUE(IngestAndWait(*ingester_, batch).ok()); }

  // Stops the export and returns every exported point.
  std::map<std::string, std::vector<std::pair<int64_t, double>>> StopAndCollect() {
    aggregator_->Stop();
    return collector_.All();
  }

  StreamIngester& ingester() { return *ingester_; }
  Aggregator& aggregator() { return *aggregator_; }

 private:
  WorkerPool pool_{2};
  Collector collector_;
  std::shared_ptr<Aggregator> aggregator_;
  std::unique_ptr<StreamIngester> ingester_;
};

void AddTags(const Tags& tags, google::protobuf::RepeatedPtrField<v1::Tag>* out) {
  for (const auto& [key, value] : tags) {
    v1::Tag* tag = out->Add();
    tag->set_key(key);
    tag->set_value(value);
  }
}

void AddSample(v1::SampleBatch* batch, const TestSample& s) {
  v1::Sample* sample = batch->add_samples();
  sample->set_metric(s.metric);
  AddTags(s.tags, sample->mutable_tags());
  sample->set_time_unix_nano(kT0 + s.offset_ms * kMs);
  sample->set_value(s.value);
}

void DeclareSeries(v1::SampleBatch* batch, uint32_t ref, const std::string& metric,
                   const Tags& tags) {
  v1::SeriesDeclaration* decl = batch->add_series();
  decl->set_ref(ref);
  decl->set_metric(metric);
  AddTags(tags, decl->mutable_tags());
}

// Appends compact samples (ref, absolute time), computing the deltas from the block's last one.
void AddCompact(v1::SampleBatch* batch, uint32_t ref, int64_t time_unix_nano, double value) {
  v1::CompactSamples* compact = batch->mutable_compact();
  int64_t previous = 0;
  for (int64_t delta : compact->time_unix_nano_delta()) previous += delta;
  compact->add_refs(ref);
  compact->add_time_unix_nano_delta(time_unix_nano - previous);
  compact->add_values(value);
}

void DeclareCheckoutTrend(v1::SampleBatch* batch) {
  v1::MetricDeclaration* decl = batch->add_metrics();
  decl->set_name("step_duration");
  decl->set_type(v1::TREND);
  decl->set_kind(v1::TIME);
}

// Samples of every type over two windows, out of time order within a window.
std::vector<TestSample> MixedSamples() {
  const Tags get_200 = {{"method", "GET"}, {"status", "200"}, {"url", "https://a.test/"}};
  const Tags post_500 = {{"method", "POST"}, {"status", "500"}, {"url", "https://a.test/b"}};
  const Tags scenario = {{"scenario", "default"}};
  return {
      {"http_reqs", get_200, 100, 1},
      {"http_req_duration", get_200, 100, 120},
      {"http_reqs", post_500, 300, 1},
      {"http_req_duration", post_500, 300, 480},
      {"vus", scenario, 900, 10},
      {"vus", scenario, 200, 4},  // older: 10 stays the window's value
      {"checks", scenario, 150, 1},
      {"checks", scenario, 160, 0},
      {"http_reqs", get_200, 700, 1},
      {"http_req_duration", get_200, 700, 80},
      {"step_duration", scenario, 500, 30},
      // Window [1 s, 2 s).
      {"http_reqs", get_200, 1500, 1},
      {"http_req_duration", get_200, 1500, 200},
      {"checks", scenario, 1200, 1},
      {"vus", scenario, 1100, 12},
      {"step_duration", scenario, 1999, 70},
  };
}

TEST(CompactIngestTest, AggregatesExactlyLikeSelfDescribingSamples) {
  const std::vector<TestSample> samples = MixedSamples();

  Export self;
  v1::SampleBatch self_batch;
  DeclareCheckoutTrend(&self_batch);
  for (const TestSample& s : samples) AddSample(&self_batch, s);
  self.Ingest(self_batch);

  Export compact;
  // One reference per distinct (metric, tags), declared in the first batch; the samples over
  // two batches to check that references outlive their batch.
  std::map<std::pair<std::string, Tags>, uint32_t> refs;
  v1::SampleBatch first;
  DeclareCheckoutTrend(&first);
  for (const TestSample& s : samples) {
    auto [it, added] = refs.emplace(std::make_pair(s.metric, s.tags), refs.size() * 3);
    if (added) DeclareSeries(&first, it->second, s.metric, s.tags);
  }
  v1::SampleBatch second;
  for (size_t i = 0; i < samples.size(); ++i) {
    const TestSample& s = samples[i];
    AddCompact(i < 5 ? &first : &second, refs.at({s.metric, s.tags}), kT0 + s.offset_ms * kMs,
               s.value);
  }
  compact.Ingest(first);
  compact.Ingest(second);

  EXPECT_EQ(self.ingester().accepted(), samples.size());
  EXPECT_EQ(compact.ingester().accepted(), samples.size());
  EXPECT_EQ(compact.ingester().rejected(), 0u);
  const auto expected = self.StopAndCollect();
  const auto got = compact.StopAndCollect();
  EXPECT_EQ(got, expected);

  // And the values themselves, computed by hand: durations in seconds, windows end at 1 s, 2 s.
  EXPECT_THAT(got.at("k6_http_reqs_total{status=\"200\"}"),
              ElementsAre(Pair(1000, 2), Pair(2000, 3)));
  // Counters repeat through the export's last window (that of its newest sample).
  EXPECT_THAT(got.at("k6_http_reqs_total{status=\"500\"}"),
              ElementsAre(Pair(1000, 1), Pair(2000, 1)));
  EXPECT_THAT(got.at("k6_vus{}"), ElementsAre(Pair(1000, 10), Pair(2000, 12)));
  EXPECT_THAT(got.at("k6_checks_rate{}"), ElementsAre(Pair(1000, 0.5), Pair(2000, 1)));
  EXPECT_THAT(got.at("k6_http_req_duration_max{method=\"GET\"}"),
              ElementsAre(Pair(1000, 0.12), Pair(2000, 0.2)));
  EXPECT_THAT(got.at("k6_http_req_duration_p50{method=\"GET\"}"),
              ElementsAre(Pair(1000, 0.1), Pair(2000, 0.2)));
  EXPECT_THAT(got.at("k6_http_req_duration_count{method=\"POST\"}"), ElementsAre(Pair(1000, 1)));
  EXPECT_THAT(got.at("k6_step_duration_min{}"), ElementsAre(Pair(1000, 0.03), Pair(2000, 0.07)));
}

TEST(CompactIngestTest, DeltasAccumulateAndMayBeNegative) {
  Export e;
  v1::SampleBatch batch;
  DeclareSeries(&batch, 0, "vus", {});
  v1::CompactSamples* compact = batch.mutable_compact();
  // Times 0.5 s, 1.5 s, 0.9 s (late within the still open window [0, 1)), 2.0 s.
  for (const auto& [delta_ms, value] :
       std::vector<std::pair<int64_t, double>>{{500, 1}, {1000, 2}, {-600, 3}, {1100, 4}}) {
    compact->add_refs(0);
    compact->add_time_unix_nano_delta(delta_ms * kMs);
    compact->add_values(value);
  }
  compact->set_time_unix_nano_delta(0, kT0 + 500 * kMs);  // the first one is absolute
  e.Ingest(batch);
  EXPECT_EQ(e.ingester().accepted(), 4u);
  EXPECT_THAT(e.StopAndCollect().at("k6_vus{}"),
              ElementsAre(Pair(1000, 3), Pair(2000, 2), Pair(3000, 4)));
}

TEST(CompactIngestTest, CountsErrorsWithReasons) {
  Export e;
  v1::SampleBatch batch;
  DeclareSeries(&batch, 1, "http_reqs", {{"status", "200"}});
  DeclareSeries(&batch, StreamIngester::kMaxSeriesRefs, "http_reqs", {});  // invalid_series_ref
  DeclareSeries(&batch, 2, "", {});                                        // missing_metric
  DeclareSeries(&batch, 3, "not_declared_yet", {});  // fine until a sample comes
  AddCompact(&batch, 1, kT0 + 100 * kMs, 1);
  AddCompact(&batch, 0, kT0 + 110 * kMs, 1);  // never declared: below the highest ref
  AddCompact(&batch, 2, kT0 + 120 * kMs, 1);  // refused declaration
  AddCompact(&batch, 7, kT0 + 130 * kMs, 1);  // beyond every ref
  AddCompact(&batch, 3, kT0 + 140 * kMs, 1);  // unknown metric
  AddCompact(&batch, 1, kT0 + 150 * kMs, std::nan(""));
  AddCompact(&batch, 1, 0, 1);  // time 0
  AddCompact(&batch, 1, kT0 + 160 * kMs, 1);
  e.Ingest(batch);

  EXPECT_EQ(e.ingester().accepted(), 2u);
  EXPECT_EQ(e.ingester().rejected(), 6u);
  std::map<std::string, std::pair<uint64_t, std::string>> rejections;
  for (const auto& [reason, r] : e.ingester().rejections()) {
    rejections[reason] = {r.count, r.example};
  }
  EXPECT_THAT(rejections, ElementsAre(Pair("invalid_timestamp", Pair(1, "http_reqs")),
                                      Pair("invalid_value", Pair(1, "http_reqs")),
                                      Pair("unknown_metric", Pair(1, "not_declared_yet")),
                                      Pair("unknown_series_ref", Pair(3, "ref 0"))));
  std::map<std::string, uint64_t> declaration_errors;
  for (const auto& [reason, r] : e.ingester().declaration_errors()) {
    declaration_errors[reason] = r.count;
  }
  EXPECT_THAT(declaration_errors,
              ElementsAre(Pair("invalid_series_ref", 1), Pair("missing_metric", 1)));

  // The metric is declared later: the series declared before it now resolves.
  v1::SampleBatch later;
  v1::MetricDeclaration* decl = later.add_metrics();
  decl->set_name("not_declared_yet");
  decl->set_type(v1::COUNTER);
  AddCompact(&later, 3, kT0 + 200 * kMs, 5);
  e.Ingest(later);
  EXPECT_EQ(e.ingester().accepted(), 3u);

  // Columns of different lengths: the whole block is rejected, counted by its longest column.
  v1::SampleBatch mismatch;
  AddCompact(&mismatch, 1, kT0 + 300 * kMs, 1);
  AddCompact(&mismatch, 1, kT0 + 310 * kMs, 1);
  mismatch.mutable_compact()->add_values(1);
  e.Ingest(mismatch);
  EXPECT_EQ(e.ingester().accepted(), 3u);
  const RejectionCount& r = e.ingester().rejections().at("compact_length_mismatch");
  EXPECT_EQ(r.count, 3u);
  EXPECT_EQ(r.example, "refs: 2, time_unix_nano_delta: 2, values: 3");

  const AggregatorFigures figures = e.aggregator().Figures();
  EXPECT_EQ(figures.samples_accepted, 3u);
  EXPECT_EQ(figures.samples_rejected, 9u);
  EXPECT_THAT(e.StopAndCollect().at("k6_http_reqs_total{status=\"200\"}"),
              ElementsAre(Pair(1000, 2)));
}

TEST(CompactIngestTest, DeclaredSeriesWithoutSamplesCreateNothing) {
  Export e;
  v1::SampleBatch batch;
  DeclareSeries(&batch, 0, "http_reqs", {{"status", "200"}});
  DeclareSeries(&batch, 1, "http_reqs", {{"status", "404"}});
  DeclareSeries(&batch, 2, "vus", {});
  AddCompact(&batch, 0, kT0 + 100 * kMs, 1);
  e.Ingest(batch);
  EXPECT_EQ(e.aggregator().Figures().series_per_target, std::vector<uint64_t>{1});
  EXPECT_THAT(e.StopAndCollect(),
              ElementsAre(Pair("k6_http_reqs_total{status=\"200\"}", ElementsAre(Pair(1000, 1)))));
}

TEST(CompactIngestTest, MixedStreamAndRedeclaredReference) {
  Export e;
  v1::SampleBatch batch;
  const Tags get = {{"method", "GET"}, {"status", "200"}};
  const Tags post = {{"method", "POST"}, {"status", "201"}};
  // Self-describing and compact samples of the same series, in one batch.
  DeclareSeries(&batch, 0, "http_reqs", get);
  AddSample(&batch, {"http_reqs", get, 100, 1});
  AddCompact(&batch, 0, kT0 + 200 * kMs, 1);
  AddSample(&batch, {"http_reqs", post, 300, 1});
  e.Ingest(batch);

  // Reference 0 bound again, to the POST series: later samples go there.
  v1::SampleBatch next;
  DeclareSeries(&next, 0, "http_reqs", post);
  AddCompact(&next, 0, kT0 + 400 * kMs, 1);
  AddCompact(&next, 0, kT0 + 500 * kMs, 1);
  AddSample(&next, {"http_reqs", get, 600, 1});
  e.Ingest(next);

  EXPECT_EQ(e.ingester().accepted(), 6u);
  EXPECT_THAT(e.ingester().rejections(), IsEmpty());
  const auto got = e.StopAndCollect();
  EXPECT_THAT(got.at("k6_http_reqs_total{status=\"200\"}"), ElementsAre(Pair(1000, 3)));
  EXPECT_THAT(got.at("k6_http_reqs_total{status=\"201\"}"), ElementsAre(Pair(1000, 3)));
}

TEST(CompactIngestTest, FirstUndeclaredRefLooksAtTheStreamAndTheBatch) {
  Export e;
  // The first batch declares refs 0 and 1 and uses them: nothing undeclared.
  v1::SampleBatch first;
  DeclareSeries(&first, 0, "http_reqs", {{"status", "200"}});
  DeclareSeries(&first, 1, "http_reqs", {{"status", "404"}});
  AddCompact(&first, 0, kT0 + 100 * kMs, 1);
  AddCompact(&first, 1, kT0 + 100 * kMs, 1);
  const std::string first_bytes = first.SerializeAsString();
  DecodedBatch decoded;
  ASSERT_TRUE(DecodeSampleBatch(first_bytes, &decoded).ok());
  EXPECT_EQ(e.ingester().FirstUndeclaredRef(decoded), std::nullopt);
  e.Ingest(first);

  // Later: 0 and 1 are known to the stream, 7 is neither declared before nor in the batch.
  v1::SampleBatch later;
  AddCompact(&later, 1, kT0 + 200 * kMs, 1);
  AddCompact(&later, 7, kT0 + 200 * kMs, 1);
  AddCompact(&later, 0, kT0 + 200 * kMs, 1);
  const std::string later_bytes = later.SerializeAsString();
  ASSERT_TRUE(DecodeSampleBatch(later_bytes, &decoded).ok());
  EXPECT_EQ(e.ingester().FirstUndeclaredRef(decoded), std::optional<uint32_t>(7));

  // The same batch declaring 7 itself passes.
  DeclareSeries(&later, 7, "vus", {});
  const std::string declared_bytes = later.SerializeAsString();
  ASSERT_TRUE(DecodeSampleBatch(declared_bytes, &decoded).ok());
  EXPECT_EQ(e.ingester().FirstUndeclaredRef(decoded), std::nullopt);
}

}  // namespace
}  // namespace rwexport
