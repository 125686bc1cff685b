// What a compact stream keeps per declared series (issue 16: at most 200 bytes per declared
// series per stream): StreamIngester's own accounting, and the heap a second stream of the same
// series adds, both after every series got its first sample.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/worker_pool.h"
#include "lib/common/allocator.h"
#include "lib/common/mutex.h"
#include "lib/config/config.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/stream_ingester.h"
#include "tests/testing/k6_declarations.h"

namespace rwexport {
namespace {

constexpr int64_t kT0 = int64_t{1700000000} * 1000000000;
constexpr uint32_t kSeries = 20000;
constexpr uint32_t kBatch = 1000;  // samples per batch, as `rwexport bench` sends them
constexpr double kMaxBytesPerSeries = 200;

// An export of http_reqs by status: every declared series below feeds the same one, so what
// a stream adds is the stream's own.
std::shared_ptr<Aggregator> MakeAggregator(WorkerPool* pool) {
  v1::StartExportRequest request;
  request.set_test_run_id("run-1");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url("http://127.0.0.1:9/api/v1/write");
  target->set_resample_rate(1);
  target->set_include_default_metrics(false);
  v1::MetricEntry* reqs = target->add_metrics();
  reqs->set_source_metric("http_reqs");
  reqs->add_keep_tags("status");
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  EXPECT_TRUE(config.ok()) << config.status();
  AggregatorOptions options;
  options.lateness = absl::ZeroDuration();
  options.clock = [] { return absl::FromUnixNanos(kT0) + absl::Hours(1); };
  return Aggregator::Create(
      *std::move(config), pool, [](size_t, PointBatch) {}, options);
}

// Batch `b` of a stream: the first declares every series (k6-like tags, about 250 bytes);
// each carries kBatch compact samples, together one per series.
std::string MakeBatch(uint32_t b) {
  v1::SampleBatch batch;
  if (b == 0) {
    batch.set_export_id("e");
    for (uint32_t ref = 0; ref < kSeries; ++ref) AddK6Declaration(ref, &batch);
  }
  v1::CompactSamples* compact = batch.mutable_compact();
  for (uint32_t k = 0; k < kBatch; ++k) {
    compact->add_refs(b * kBatch + k);
    compact->add_time_unix_nano_delta(k == 0 ? kT0 : 0);
    compact->add_values(1);
  }
  return batch.SerializeAsString();
}

// Streams every batch through `ingester` as the gRPC reactor does (one reused DecodedBatch,
// waiting for each to be applied).
void StreamAll(StreamIngester& ingester, DecodedBatch* decoded) {
  for (uint32_t b = 0; b < kSeries / kBatch; ++b) {
    const std::string bytes = MakeBatch(b);
    ASSERT_TRUE(DecodeSampleBatch(bytes, decoded).ok());
    Mutex mu;
    CondVar cv;
    bool done = false;
    ASSERT_TRUE(ingester
                    .Ingest(*decoded,
                            [&] {
                              MutexLock lock(&mu);
                              done = true;
                              cv.Signal();
                            })
                    .ok());
    MutexLock lock(&mu);
    while (!done) cv.Wait(&mu);
  }
  EXPECT_EQ(ingester.accepted(), kSeries);
  EXPECT_EQ(ingester.rejected(), 0u);
}

TEST(CompactMemoryTest, StreamKeepsAtMost200BytesPerDeclaredSeries) {
  WorkerPool pool(2);
  std::shared_ptr<Aggregator> aggregator = MakeAggregator(&pool);
  StreamIngester ingester(aggregator);
  DecodedBatch decoded;
  StreamAll(ingester, &decoded);
  const double per_series = static_cast<double>(ingester.RetainedBytes()) / kSeries;
  RecordProperty("bytes_per_series", static_cast<int>(per_series));
  EXPECT_LE(per_series, kMaxBytesPerSeries);
  // The reused batch no longer holds the declarations once the next batch is decoded.
  EXPECT_TRUE(decoded.series_declarations.empty());
  EXPECT_LE(decoded.series_declarations.capacity(), 1024u);
  aggregator->Stop();
}

TEST(CompactMemoryTest, UnresolvedDeclarationsAreCountedUntilTheirFirstSample) {
  WorkerPool pool(2);
  std::shared_ptr<Aggregator> aggregator = MakeAggregator(&pool);
  StreamIngester ingester(aggregator);
  DecodedBatch decoded;
  const std::string first = MakeBatch(0);
  ASSERT_TRUE(DecodeSampleBatch(first, &decoded).ok());
  // The tags of the kSeries - kBatch series without a sample yet are kept, encoded.
  v1::SampleBatch declarations_only;
  for (absl::string_view bytes : decoded.series_declarations) {
    ASSERT_TRUE(ParseSeriesDeclaration(bytes, declarations_only.add_series()));
  }
  ASSERT_TRUE(ingester.Ingest(declarations_only, [] {}).ok());
  EXPECT_GT(ingester.RetainedBytes(), size_t{kSeries} * 150);
  aggregator->Stop();
}

// The heap a second stream adds, as the allocator counts it (glibc's mallinfo2; skipped where
// the allocator does not count, e.g. under a sanitizer).
TEST(CompactMemoryTest, SecondStreamAddsAtMost200BytesPerSeriesOfHeap) {
  WorkerPool pool(2);
  std::shared_ptr<Aggregator> aggregator = MakeAggregator(&pool);
  auto first = std::make_unique<StreamIngester>(aggregator);
  auto first_batch = std::make_unique<DecodedBatch>();
  StreamAll(*first, first_batch.get());
  const uint64_t before = HeapInUseBytes();
  if (before == 0) GTEST_SKIP() << "the allocator does not count its heap";
  auto second = std::make_unique<StreamIngester>(aggregator);
  auto second_batch = std::make_unique<DecodedBatch>();
  StreamAll(*second, second_batch.get());
  const uint64_t after = HeapInUseBytes();
  const double per_series = after > before ? static_cast<double>(after - before) / kSeries : 0.0;
  RecordProperty("heap_bytes_per_series", static_cast<int>(per_series));
  EXPECT_LE(per_series, kMaxBytesPerSeries) << "heap " << before << " -> " << after;
  aggregator->Stop();
}

}  // namespace
}  // namespace rwexport
