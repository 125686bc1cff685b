// StreamIngester::Ingest(const DecodedBatch&) against Ingest(const v1::SampleBatch&): the same
// batches (a real k6 run, plus rejections, declarations and compact samples) give the same
// figures and the same points; a batch with bad tags is refused whole.
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/aggregator.h"
#include "lib/ingest/stream_ingester.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/k6/results_reader.h"
#include "tests/testing/ingest.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

// Two targets: the defaults with selectors and kept tags, and native histograms.
v1::StartExportRequest Request() {
  v1::StartExportRequest request;
  request.set_test_run_id("run-1");
  v1::Target* t = request.add_targets();
  t->set_provider("prometheus");
  t->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
  t->set_resample_rate(1);
  t->set_include_test_run_id(true);
  v1::MetricEntry* ok = t->add_metrics();
  ok->set_source_metric("http_req_duration{status=~\"2..\"}");
  ok->set_target_metric("k6_ok_duration");
  ok->add_keep_tags("name");
  ok->add_keep_tags("method");
  v1::MetricEntry* checks = t->add_metrics();
  checks->set_source_metric("checks");
  checks->add_keep_tags("check");
  t->add_metrics()->set_source_metric("my_custom");
  v1::Target* h = request.add_targets();
  h->set_provider("prometheus");
  h->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
  h->set_resample_rate(3);
  h->set_native_histograms(true);
  h->set_stale_markers(true);
  v1::MetricEntry* waiting = h->add_metrics();
  waiting->set_source_metric("http_req_waiting");
  waiting->add_keep_tags("status");
  return request;
}

// What one aggregator sent: per series (its canonical text), its points in order.
using Sent = std::map<std::string, std::vector<std::string>>;

struct Pipeline {
  explicit Pipeline(int64_t now_ns) : pool(2) {
    absl::StatusOr<ExportConfig> config = ValidateStartExport(Request());
    EXPECT_TRUE(config.ok()) << config.status();
    AggregatorOptions options;
    options.clock = [now_ns] { return absl::FromUnixNanos(now_ns); };
    aggregator = Aggregator::Create(
        *std::move(config), &pool,
        [this](size_t target, PointBatch batch) {
          MutexLock lock(&mu);
          for (const SeriesPoints& sp : batch.series) {
            std::vector<std::string>& out =
                sent[absl::StrCat(target, " ", sp.series->ToString(sp.name))];
            for (const Point& p : sp.points)
              out.push_back(absl::StrCat(p.timestamp_ms, "=", p.value));
            for (const HistogramPoint& p : sp.histograms) {
              out.push_back(
                  absl::StrCat(p.timestamp_ms, " histogram count=", p.count, " sum=", p.sum));
            }
          }
        },
        options);
    ingester = std::make_unique<StreamIngester>(aggregator);
  }

  WorkerPool pool;
  std::shared_ptr<Aggregator> aggregator;
  std::unique_ptr<StreamIngester> ingester;
  Mutex mu;
  Sent sent ABSL_GUARDED_BY(mu);
};

absl::Status IngestDecoded(StreamIngester& ingester, const DecodedBatch& batch) {
  Mutex mu;
  CondVar cv;
  bool done = false;
  absl::Status status = ingester.Ingest(batch, [&] {
    MutexLock lock(&mu);
    done = true;
    cv.Signal();
  });
  if (!status.ok()) return status;
  MutexLock lock(&mu);
  while (!done) cv.Wait(&mu);
  return absl::OkStatus();
}

std::string Describe(const Rejections& rejections) {
  std::string out;
  for (const auto& [reason, r] : rejections) {
    absl::StrAppend(&out, reason, " x", r.count, " (", r.example, "); ");
  }
  return out;
}

// finance-run.json in batches of 100 samples (its metric declarations in the batches where
// they appear), then batches with every kind of rejection, declarations and compact samples.
std::vector<v1::SampleBatch> Batches(int64_t* max_ts) {
  std::vector<v1::SampleBatch> batches(1);
  *max_ts = 0;
  K6ResultsReader::Callbacks callbacks;
  callbacks.on_metric = [&](const K6Metric& m) {
    v1::MetricDeclaration* d = batches.back().add_metrics();
    d->set_name(m.name);
    d->set_type(static_cast<v1::MetricType>(static_cast<int>(m.type) + 1));
    d->set_kind(static_cast<v1::ValueKind>(static_cast<int>(m.kind)));
  };
  callbacks.on_sample = [&](K6Sample&& s) {
    if (batches.back().samples_size() == 100) batches.emplace_back();
    v1::Sample* out = batches.back().add_samples();
    out->set_metric(s.metric);
    for (const auto& [key, value] : s.tags) {
      v1::Tag* t = out->add_tags();
      t->set_key(key);
      t->set_value(value);
    }
    out->set_time_unix_nano(s.time_unix_nano);
    out->set_value(s.value);
    *max_ts = std::max(*max_ts, s.time_unix_nano);
  };
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadFile(K6TestdataFile("finance-run.json"), callbacks);
  EXPECT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats.ok() ? stats->samples : 0, 700);
  batches.front().set_export_id("export-1");

  const int64_t ts = *max_ts;
  v1::SampleBatch& extra = batches.emplace_back();
  // Declarations: a custom metric, a conflict with a built-in, a missing type, a bad name.
  v1::MetricDeclaration* d = extra.add_metrics();
  d->set_name("my_custom");
  d->set_type(v1::GAUGE);
  d = extra.add_metrics();
  d->set_name("vus");
  d->set_type(v1::TREND);
  extra.add_metrics()->set_name("no_type");
  d = extra.add_metrics();
  d->set_name("bad name");
  d->set_type(v1::COUNTER);
  auto add = [&](const std::string& metric, int64_t time, double value,
                 std::vector<std::pair<std::string, std::string>> tags) {
    v1::Sample* s = extra.add_samples();
    s->set_metric(metric);
    for (const auto& [key, value] : tags) {
      v1::Tag* t = s->add_tags();
      t->set_key(key);
      t->set_value(value);
    }
    s->set_time_unix_nano(time);
    s->set_value(value);
  };
  add("my_custom", ts, 4, {{"instance", "a"}});
  add("my_custom", ts, 5, {{"instance", "a"}});  // same tags, same metric
  add("unknown_thing", ts, 1, {{"instance", "a"}});
  add("http_req_duration", ts, NAN, {{"status", "200"}});
  add("http_req_duration", ts, INFINITY, {{"status", "200"}});
  add("http_req_duration", 0, 1, {{"status", "200"}});
  add("http_req_duration", ts + int64_t{3600} * 1000000000, 1, {{"status", "200"}});
  add("http_req_duration", ts - int64_t{7200} * 1000000000, 1, {{"status", "200"}});
  add("checks", ts, 1, {{"check", "status is 200"}, {"check", "shadowed"}});
  add("checks", ts, 0, {{"check", "status is 200"}, {"check", "shadowed"}});
  add("http_req_waiting", ts, 12.5, {});
  add("http_req_waiting", ts, 13.5, {{"status", "\xc3\xa9t\xc3\xa9"}});  // UTF-8 values

  // Compact mode: series declarations, samples of them, an unknown reference, then a block
  // whose columns differ in length.
  v1::SampleBatch& compact = batches.emplace_back();
  v1::SeriesDeclaration* sd = compact.add_series();
  sd->set_ref(0);
  sd->set_metric("http_req_waiting");
  v1::Tag* tag = sd->add_tags();
  tag->set_key("status");
  tag->set_value("200");
  sd = compact.add_series();
  sd->set_ref(StreamIngester::kMaxSeriesRefs);
  sd->set_metric("http_reqs");
  compact.add_series()->set_ref(1);  // no metric
  v1::CompactSamples* c = compact.mutable_compact();
  for (uint32_t ref : {0u, 0u, 5u}) {
    c->add_refs(ref);
    c->add_time_unix_nano_delta(c->refs_size() == 1 ? ts : 1);
    c->add_values(ref + 2.5);
  }
  v1::SampleBatch& mismatch = batches.emplace_back();
  mismatch.mutable_compact()->add_refs(0);
  mismatch.mutable_compact()->add_refs(0);
  mismatch.mutable_compact()->add_values(1);
  return batches;
}

TEST(RawIngestTest, SameFiguresAndPointsAsTheProtobufPath) {
  int64_t max_ts;
  const std::vector<v1::SampleBatch> batches = Batches(&max_ts);
  ASSERT_GE(batches.size(), 10u);
  Pipeline proto(max_ts), raw(max_ts);
  DecodedBatch decoded;
  for (size_t i = 0; i < batches.size(); ++i) {
    ASSERT_TRUE(IngestAndWait(*proto.ingester, batches[i]).ok()) << "batch " << i;
    const std::string bytes = batches[i].SerializeAsString();
    ASSERT_TRUE(DecodeSampleBatch(bytes, &decoded).ok()) << "batch " << i;
    ASSERT_TRUE(IngestDecoded(*raw.ingester, decoded).ok()) << "batch " << i;
  }
  proto.aggregator->Stop();
  raw.aggregator->Stop();

  EXPECT_EQ(raw.ingester->accepted(), proto.ingester->accepted());
  EXPECT_EQ(raw.ingester->rejected(), proto.ingester->rejected());
  EXPECT_EQ(Describe(raw.ingester->rejections()), Describe(proto.ingester->rejections()));
  EXPECT_EQ(Describe(raw.ingester->declaration_errors()),
            Describe(proto.ingester->declaration_errors()));
  const AggregatorFigures a = proto.aggregator->Figures();
  const AggregatorFigures b = raw.aggregator->Figures();
  EXPECT_EQ(b.samples_accepted, a.samples_accepted);
  EXPECT_EQ(b.samples_rejected, a.samples_rejected);
  EXPECT_EQ(b.samples_late, a.samples_late);
  EXPECT_EQ(Describe(b.rejections), Describe(a.rejections));
  EXPECT_EQ(b.series_per_target, a.series_per_target);
  EXPECT_EQ(b.windows_flushed, a.windows_flushed);
  {
    MutexLock lock_a(&proto.mu);
    MutexLock lock_b(&raw.mu);
    EXPECT_EQ(raw.sent, proto.sent);
    EXPECT_GT(proto.sent.size(), 10u);
  }

  // The figures themselves, counted from the batches above: finance-run.json's samples are
  // all accepted, the extra batch adds 6 accepted and 6 rejected, and compact mode adds two
  // accepted samples, one unknown reference and a mismatched block of 2.
  const uint64_t file_samples = proto.ingester->accepted() - 6 - 2;
  EXPECT_GT(file_samples, 700u);
  EXPECT_EQ(Describe(proto.ingester->rejections()),
            "compact_length_mismatch x2 (refs: 2, time_unix_nano_delta: 0, values: 1); "
            "invalid_timestamp x1 (http_req_duration); invalid_value x2 (http_req_duration); "
            "too_new x1 (http_req_duration); too_old x1 (http_req_duration); "
            "unknown_metric x1 (unknown_thing); unknown_series_ref x1 (ref 5); ");
  EXPECT_EQ(Describe(proto.ingester->declaration_errors()),
            "invalid_name x1 (metric declaration \"bad name\": not a valid metric name); "
            "invalid_series_ref x1 (series declaration of \"http_reqs\": ref 1048576 is not "
            "below 1048576); missing_metric x1 (series declaration with ref 1: metric is "
            "empty); missing_type x1 (no_type); type_conflict x1 (metric declaration \"vus\": "
            "declared as trend but it is a gauge); ");
}

// Bad tags anywhere in a batch refuse all of it: no declaration, sample or series applied.
TEST(RawIngestTest, BadTagsRefuseTheWholeBatch) {
  const int64_t now = int64_t{1730305260} * 1000000000;
  Pipeline run(now);
  v1::SampleBatch batch;
  v1::MetricDeclaration* d = batch.add_metrics();
  d->set_name("my_custom");
  d->set_type(v1::COUNTER);
  for (int i = 0; i < 3; ++i) {
    v1::Sample* s = batch.add_samples();
    s->set_metric("my_custom");
    v1::Tag* t = s->add_tags();
    t->set_key("instance");
    t->set_value(i == 2 ? "bad\xff" : "ok");
    s->set_time_unix_nano(now);
    s->set_value(1);
  }
  // Generated code writes the invalid UTF-8 (and logs an error); what a broken client sends.
  const std::string bytes = batch.SerializeAsString();
  DecodedBatch decoded;
  ASSERT_TRUE(DecodeSampleBatch(bytes, &decoded).ok());
  absl::Status status = IngestDecoded(*run.ingester, decoded);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "sample 2: tags: tag 0: value: invalid UTF-8");
  EXPECT_EQ(run.ingester->accepted(), 0u);
  EXPECT_EQ(run.ingester->rejected(), 0u);

  // The declaration was not applied: my_custom is still unknown. Tags seen in the refused
  // batch are still checked when they come again.
  batch.clear_metrics();
  batch.mutable_samples()->DeleteSubrange(2, 1);
  const std::string good = batch.SerializeAsString();
  ASSERT_TRUE(DecodeSampleBatch(good, &decoded).ok());
  ASSERT_TRUE(IngestDecoded(*run.ingester, decoded).ok());
  EXPECT_EQ(run.ingester->accepted(), 0u);
  EXPECT_EQ(Describe(run.ingester->rejections()), "unknown_metric x2 (my_custom); ");
  ASSERT_TRUE(DecodeSampleBatch(bytes, &decoded).ok());
  EXPECT_EQ(IngestDecoded(*run.ingester, decoded).message(),
            "sample 2: tags: tag 0: value: invalid UTF-8");
  run.aggregator->Stop();
  EXPECT_EQ(run.aggregator->Figures().series_per_target, (std::vector<uint64_t>{0, 0}));
}

}  // namespace
}  // namespace rwexport
