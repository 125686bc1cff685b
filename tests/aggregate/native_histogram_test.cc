#include "lib/aggregate/native_histogram.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/model/series.h"
#include "lib/remote_write/encoder.h"
#include "prometheus/remote.pb.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using Buckets = std::vector<std::pair<int, uint64_t>>;

constexpr double kInf = std::numeric_limits<double>::infinity();

int Index(double v, int schema) { return NativeHistogram::BucketIndex(v, schema); }

// Prometheus's definition, evaluated in long double: ceil(log2(v) * 2^schema). Returns
// INT64_MIN when v is too close to a boundary for this evaluation to decide.
int64_t ReferenceIndex(double v, int schema) {
  const long double x = std::log2(static_cast<long double>(v)) * std::ldexp(1.0L, schema);
  const long double nearest = std::nearbyint(x);
  if (std::fabs(x - nearest) < 1e-12L) return INT64_MIN;  // on a boundary: skip
  return static_cast<int64_t>(std::ceil(x));
}

// Expands spans + deltas of a decoded prometheus.Histogram into (index, count).
Buckets Expand(const google::protobuf::RepeatedPtrField<prometheus::BucketSpan>& spans,
               const google::protobuf::RepeatedField<int64_t>& deltas) {
  Buckets out;
  int64_t index = 0;
  int64_t count = 0;
  int d = 0;
  for (int s = 0; s < spans.size(); ++s) {
    index += spans[s].offset();
    for (uint32_t k = 0; k < spans[s].length(); ++k, ++index) {
      count += deltas[d++];
      if (count != 0) out.emplace_back(static_cast<int>(index), static_cast<uint64_t>(count));
    }
  }
  EXPECT_EQ(d, deltas.size());
  return out;
}

// --- Bucket indices -------------------------------------------------------------------------

TEST(NativeHistogramTest, SchemaZeroBucketsArePowersOfTwoWithInclusiveUpperBounds) {
  // Bucket i holds (2^(i-1), 2^i].
  EXPECT_EQ(Index(1, 0), 0);
  EXPECT_EQ(Index(2, 0), 1);
  EXPECT_EQ(Index(3, 0), 2);
  EXPECT_EQ(Index(4, 0), 2);
  EXPECT_EQ(Index(5, 0), 3);
  EXPECT_EQ(Index(1.5, 0), 1);
  EXPECT_EQ(Index(0.75, 0), 0);
  EXPECT_EQ(Index(0.5, 0), -1);
  EXPECT_EQ(Index(0.3, 0), -1);
  EXPECT_EQ(Index(0.25, 0), -2);
  EXPECT_EQ(Index(std::nextafter(1.0, kInf), 0), 1);
  EXPECT_EQ(Index(std::nextafter(1.0, 0.0), 0), 0);
  EXPECT_EQ(NativeHistogram::UpperBound(0, 0), 1);
  EXPECT_EQ(NativeHistogram::UpperBound(2, 0), 4);
  EXPECT_EQ(NativeHistogram::UpperBound(-2, 0), 0.25);
}

TEST(NativeHistogramTest, NegativeSchemasMergeOctaves) {
  // Schema -1: base 4, bucket i holds (4^(i-1), 4^i].
  EXPECT_EQ(Index(1, -1), 0);
  EXPECT_EQ(Index(2, -1), 1);
  EXPECT_EQ(Index(4, -1), 1);
  EXPECT_EQ(Index(5, -1), 2);
  EXPECT_EQ(Index(0.25, -1), -1);
  EXPECT_EQ(Index(0.3, -1), 0);
  // Schema -4: base 2^16.
  EXPECT_EQ(Index(65536, -4), 1);
  EXPECT_EQ(Index(65537, -4), 2);
  EXPECT_EQ(NativeHistogram::UpperBound(1, -4), 65536);
}

TEST(NativeHistogramTest, PowersOfTwoAreExactBoundariesInEverySchema) {
  for (int schema = NativeHistogram::kMinSchema; schema <= NativeHistogram::kMaxSchema; ++schema) {
    for (int k = -40; k <= 40; ++k) {
      const double v = std::ldexp(1.0, k);
      // 2^k is the upper bound of bucket k * 2^schema when that is an integer.
      if (schema < 0 && k % (1 << -schema) != 0) continue;
      const int expected = schema >= 0 ? k * (1 << schema) : k / (1 << -schema);
      EXPECT_EQ(Index(v, schema), expected) << "2^" << k << " schema " << schema;
      EXPECT_EQ(Index(std::nextafter(v, kInf), schema), expected + 1);
      EXPECT_EQ(Index(std::nextafter(v, 0.0), schema), expected);
      EXPECT_EQ(NativeHistogram::UpperBound(expected, schema), v);
    }
  }
}

TEST(NativeHistogramTest, SquareRootOfTwoIsTheMiddleBoundaryOfAnOctave) {
  // IEEE sqrt is correctly rounded, so sqrt(2.0) is the boundary 2^(1/2) itself.
  const double root2 = std::sqrt(2.0);
  EXPECT_EQ(NativeHistogram::UpperBound(1, 1), root2);
  EXPECT_EQ(NativeHistogram::UpperBound(32, 6), root2);
  EXPECT_EQ(NativeHistogram::UpperBound(64, 7), root2);
  EXPECT_EQ(Index(root2, 1), 1);
  EXPECT_EQ(Index(std::nextafter(root2, kInf), 1), 2);
  EXPECT_EQ(Index(root2, 7), 64);
  EXPECT_EQ(Index(std::nextafter(root2, kInf), 7), 65);
  EXPECT_EQ(Index(std::nextafter(root2, 0.0), 7), 64);
  EXPECT_EQ(Index(root2 / 2, 7), -64);  // 2^(-1/2): halving is exact
}

TEST(NativeHistogramTest, SchemaSixAndSevenMatchTheLogarithmDefinition) {
  // Values of known logarithms: 3 = 2^1.58496..., 10 = 2^3.32193..., 0.1, 1e-3 (1 ms).
  EXPECT_EQ(Index(3, 6), 102);        // ceil(1.5849625 * 64) = ceil(101.438)
  EXPECT_EQ(Index(3, 7), 203);        // ceil(202.875)
  EXPECT_EQ(Index(10, 6), 213);       // ceil(3.3219281 * 64) = ceil(212.603)
  EXPECT_EQ(Index(0.1, 7), -425);     // ceil(-3.3219281 * 128) = ceil(-425.207)
  EXPECT_EQ(Index(0.001, 7), -1275);  // ceil(-9.9657843 * 128) = ceil(-1275.62)

  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> exponent(-60, 60);
  int checked = 0;
  for (int n = 0; n < 200000; ++n) {
    const double v = std::exp2(exponent(rng));
    for (int schema : {-2, 0, 3, 6, 7}) {
      const int64_t expected = ReferenceIndex(v, schema);
      if (expected == INT64_MIN) continue;
      ASSERT_EQ(Index(v, schema), expected) << v << " schema " << schema;
      ++checked;
    }
  }
  EXPECT_GT(checked, 999000);
}

TEST(NativeHistogramTest, UpperBoundsAreCorrectlyRoundedAndConsistentWithIndices) {
  for (int schema = NativeHistogram::kMinSchema; schema <= NativeHistogram::kMaxSchema; ++schema) {
    for (int i = -3000; i <= 3000; i += (schema > 3 ? 1 : 7)) {
      const double bound = NativeHistogram::UpperBound(i, schema);
      // Subnormal bounds lose precision (they lie far below the zero threshold anyway).
      if (bound < std::numeric_limits<double>::min() || std::isinf(bound)) continue;
      const long double exact = std::exp2(static_cast<long double>(i) / std::ldexp(1.0L, schema));
      // Within half a unit in the last place (plus long double's own error).
      const long double ulp = std::nextafter(bound, kInf) - bound;
      EXPECT_LE(std::fabs(static_cast<long double>(bound) - exact), ulp * 0.5001L)
          << i << " schema " << schema;
      EXPECT_EQ(Index(bound, schema), i);
      EXPECT_EQ(Index(std::nextafter(bound, kInf), schema), i + 1);
    }
  }
}

TEST(NativeHistogramTest, RelativeErrorBoundOfTheDefaultSchemaIsBelowOnePercent) {
  EXPECT_NEAR(NativeHistogram::RelativeErrorBound(7), 0.0054299011128028, 1e-15);
  EXPECT_NEAR(NativeHistogram::RelativeErrorBound(6), 0.0108892860517005, 1e-15);
  EXPECT_NEAR(NativeHistogram::RelativeErrorBound(0), 1.0, 1e-15);
  EXPECT_LT(NativeHistogram::RelativeErrorBound(NativeHistogram::kDefaultSchema), 0.01);
  // Schema 6 would not keep Prometheus's interpolated quantiles within 1 %.
  EXPECT_GT(NativeHistogram::RelativeErrorBound(6), 0.01);
  // Every value of a bucket is within the bound of its upper bound.
  for (int i = -500; i < 500; ++i) {
    const double lower = NativeHistogram::UpperBound(i - 1, 7);
    const double upper = NativeHistogram::UpperBound(i, 7);
    EXPECT_LE((upper - lower) / lower, NativeHistogram::RelativeErrorBound(7) * (1 + 1e-12));
  }
}

// --- Counting --------------------------------------------------------------------------------

TEST(NativeHistogramTest, CountsSumZerosAndNegatives) {
  NativeHistogram h;
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(h.schema(), 7);
  for (double v : {0.0, 0.0, -0.0, 1e-40, -1e-40, 1.0, 2.0, 3.0, 3.0, -1.0, -3.0}) h.Add(v);
  h.Add(std::nan(""));
  h.Add(kInf);
  h.Add(-kInf);
  EXPECT_EQ(h.count(), 11u);
  EXPECT_EQ(h.zero_count(), 5u);  // 0, 0, -0, and the two magnitudes below 2^-128
  EXPECT_EQ(h.sum(), 5.0);
  EXPECT_EQ(h.schema(), 7);
  // 1 -> 0, 2 -> 128, 3 -> ceil(log2(3) * 128) = 203.
  EXPECT_THAT(h.PositiveBuckets(), ElementsAre(Pair(0, 1u), Pair(128, 1u), Pair(203, 2u)));
  // -1 -> bucket 0, -3 -> bucket 203 of the negative side.
  EXPECT_THAT(h.NegativeBuckets(), ElementsAre(Pair(0, 1u), Pair(203, 1u)));

  // The zero bucket's edge: 2^-128 itself is a zero, the next double is not.
  NativeHistogram edge;
  edge.Add(0x1p-128);
  edge.Add(std::nextafter(0x1p-128, 1.0));
  EXPECT_EQ(edge.zero_count(), 1u);
  EXPECT_THAT(edge.PositiveBuckets(), ElementsAre(Pair(-128 * 128 + 1, 1u)));
}

TEST(NativeHistogramTest, ToPointEncodesSpansAndDeltas) {
  NativeHistogram h(0);
  // Schema 0 buckets: 1 -> 0, 2 -> 1, 8 -> 3, 1024 -> 10.
  for (double v : {1.0, 2.0, 2.0, 8.0, 1024.0, 0.0, -0.5, -4.0}) h.Add(v);
  const HistogramPoint p = h.ToPoint(1700000003000);
  EXPECT_EQ(p.timestamp_ms, 1700000003000);
  EXPECT_EQ(p.count, 8u);
  EXPECT_EQ(p.sum, 1 + 2 + 2 + 8 + 1024 - 0.5 - 4);
  EXPECT_EQ(p.schema, 0);
  EXPECT_EQ(p.zero_threshold, 0x1p-128);
  EXPECT_EQ(p.zero_count, 1u);
  EXPECT_EQ(p.reset_hint, HistogramPoint::ResetHint::kUnknown);
  // Buckets 0:1, 1:2, (2 empty, kept in the span), 3:1, then a gap of 6, 10:1.
  EXPECT_THAT(p.positive_spans, ElementsAre(HistogramSpan{0, 4}, HistogramSpan{6, 1}));
  EXPECT_THAT(p.positive_deltas, ElementsAre(1, 1, -2, 1, 0));
  // -0.5 -> -1, -4 -> 2: a gap of two empty buckets (0, 1) stays in the span.
  EXPECT_THAT(p.negative_spans, ElementsAre(HistogramSpan{-1, 4}));
  EXPECT_THAT(p.negative_deltas, ElementsAre(1, -1, 0, 1));

  const HistogramPoint gauge = h.ToPoint(5, HistogramPoint::ResetHint::kGauge);
  EXPECT_EQ(gauge.reset_hint, HistogramPoint::ResetHint::kGauge);
  EXPECT_TRUE(NativeHistogram().ToPoint(1).positive_spans.empty());
}

TEST(NativeHistogramTest, RoundTripsThroughTheGeneratedPrometheusHistogram) {
  NativeHistogram h;
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> latency(std::log(0.120), 0.8);  // seconds
  std::map<int64_t, uint64_t> expected_positive, expected_negative;   // by the log definition
  for (int i = 0; i < 5050; ++i) {
    const double v = latency(rng);
    const int64_t index = ReferenceIndex(v, 7);
    ASSERT_NE(index, INT64_MIN);
    if (i < 5000) {
      h.Add(v);
      ++expected_positive[index];
    } else {
      h.Add(-v);
      ++expected_negative[index];
    }
  }
  for (int i = 0; i < 7; ++i) h.Add(0);

  const SeriesPtr named = MakeSeries({{"__name__", "k6_x_seconds"}});
  std::vector<SeriesPoints> series(1);
  series[0].series = named.get();
  series[0].histograms.push_back(h.ToPoint(1700000000000));
  prometheus::WriteRequest request;
  ASSERT_TRUE(request.ParseFromString(EncodeWriteRequest(series)));
  ASSERT_EQ(request.timeseries_size(), 1);
  ASSERT_EQ(request.timeseries(0).histograms_size(), 1);
  const prometheus::Histogram& decoded = request.timeseries(0).histograms(0);
  EXPECT_EQ(decoded.count_case(), prometheus::Histogram::kCountInt);
  EXPECT_EQ(decoded.count_int(), 5057u);
  EXPECT_EQ(decoded.zero_count_int(), 7u);
  EXPECT_EQ(decoded.sum(), h.sum());
  EXPECT_EQ(decoded.schema(), 7);
  EXPECT_EQ(decoded.zero_threshold(), 0x1p-128);
  EXPECT_EQ(decoded.timestamp(), 1700000000000);
  EXPECT_EQ(decoded.reset_hint(), prometheus::Histogram::UNKNOWN);
  const Buckets positive = Expand(decoded.positive_spans(), decoded.positive_deltas());
  const Buckets negative = Expand(decoded.negative_spans(), decoded.negative_deltas());
  EXPECT_EQ(positive, h.PositiveBuckets());
  EXPECT_EQ(negative, h.NegativeBuckets());
  uint64_t total = decoded.zero_count_int();
  for (const auto& [index, n] : positive) total += n;
  for (const auto& [index, n] : negative) total += n;
  EXPECT_EQ(total, decoded.count_int());  // what Prometheus validates
  // Each bucket holds exactly the values whose index it is (computed independently).
  EXPECT_EQ(positive, Buckets(expected_positive.begin(), expected_positive.end()));
  EXPECT_EQ(negative, Buckets(expected_negative.begin(), expected_negative.end()));
}

// --- Bounded memory, schema reduction and merging --------------------------------------------

TEST(NativeHistogramTest, AWideRangeLowersTheSchemaAndKeepsEveryCount) {
  NativeHistogram h;
  h.Add(1e-10);
  h.Add(1e10);
  h.Add(1.0);
  // log2(1e20) = 66.4 octaves: 8503 buckets at schema 7 and 4252 at schema 6 exceed 4096;
  // schema 5 needs 2126.
  int expected_schema = 7;
  while (Index(1e10, expected_schema) - Index(1e-10, expected_schema) >=
         NativeHistogram::kMaxBucketsPerSign) {
    --expected_schema;
  }
  EXPECT_EQ(expected_schema, 5);
  EXPECT_EQ(h.schema(), 5);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_THAT(h.PositiveBuckets(),
              ElementsAre(Pair(Index(1e-10, 5), 1u), Pair(0, 1u), Pair(Index(1e10, 5), 1u)));
  // Reduction maps i to ceil(i / 2): the same buckets as adding at schema 5 directly.
  NativeHistogram direct(5);
  for (double v : {1e-10, 1e10, 1.0}) direct.Add(v);
  EXPECT_EQ(h.PositiveBuckets(), direct.PositiveBuckets());
}

TEST(NativeHistogramTest, MemoryStaysBoundedWhateverIsAdded) {
  NativeHistogram h;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> exponent(-1000, 1000);
  for (int i = 0; i < 100000; ++i) {
    const double v = std::exp2(exponent(rng));
    h.Add(i % 2 ? v : -v);
    ASSERT_LE(h.MemoryBytes(), NativeHistogram::MaxMemoryBytes());
  }
  EXPECT_EQ(h.count(), 100000u);
  uint64_t total = h.zero_count();  // magnitudes below 2^-128
  for (const auto& [i, n] : h.PositiveBuckets()) total += n;
  for (const auto& [i, n] : h.NegativeBuckets()) total += n;
  EXPECT_EQ(total, 100000u);
  EXPECT_GT(h.zero_count(), 0u);
  EXPECT_LE(NativeHistogram::MaxMemoryBytes(), size_t{70} * 1024);
}

TEST(NativeHistogramTest, MergeEqualsAddingEverythingToOneHistogram) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> dist(0, 2);
  NativeHistogram a, b, all;
  for (int i = 0; i < 3000; ++i) {
    const double v = (i % 10 == 0 ? -1 : 1) * dist(rng);
    (i % 3 ? a : b).Add(v);
    all.Add(v);
  }
  a.Add(0);
  all.Add(0);
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.zero_count(), all.zero_count());
  EXPECT_NEAR(a.sum(), all.sum(), 1e-9 * std::fabs(all.sum()));
  EXPECT_EQ(a.schema(), all.schema());
  EXPECT_EQ(a.PositiveBuckets(), all.PositiveBuckets());
  EXPECT_EQ(a.NegativeBuckets(), all.NegativeBuckets());
}

TEST(NativeHistogramTest, ARestoredStateAddsAndMergesAsTheSavedHistogram) {
  std::mt19937_64 rng(5);
  std::lognormal_distribution<double> dist(0, 2);
  NativeHistogram saved;
  for (int i = 0; i < 2000; ++i) saved.Add((i % 10 == 0 ? -1 : 1) * dist(rng));
  saved.Add(0);
  NativeHistogram restored(0);
  ASSERT_TRUE(NativeHistogram::FromState(saved.SaveState(), &restored));
  EXPECT_EQ(restored.schema(), saved.schema());
  EXPECT_EQ(restored.count(), 2001u);
  EXPECT_EQ(restored.zero_count(), 1u);
  EXPECT_EQ(restored.sum(), saved.sum());
  EXPECT_EQ(restored.PositiveBuckets(), saved.PositiveBuckets());
  EXPECT_EQ(restored.NegativeBuckets(), saved.NegativeBuckets());
  // Both go on alike, a value far out included (it lowers the schema of both).
  NativeHistogram more;
  more.Add(3.5);
  for (NativeHistogram* h : {&saved, &restored}) {
    h->Add(1e300);
    h->Merge(more);
  }
  EXPECT_EQ(restored.schema(), saved.schema());
  EXPECT_LT(restored.schema(), NativeHistogram::kDefaultSchema);
  EXPECT_EQ(restored.sum(), saved.sum());
  EXPECT_EQ(restored.PositiveBuckets(), saved.PositiveBuckets());

  // States no histogram has are refused, and leave the target as it was.
  NativeHistogram::State bad = saved.SaveState();
  bad.count += 1;  // the buckets do not add up to it
  EXPECT_FALSE(NativeHistogram::FromState(bad, &restored));
  bad = saved.SaveState();
  bad.schema = 8;
  EXPECT_FALSE(NativeHistogram::FromState(bad, &restored));
  bad = NativeHistogram::State{};
  bad.count = 2;
  bad.positive = {{0, 1}, {NativeHistogram::kMaxBucketsPerSign, 1}};  // too wide
  EXPECT_FALSE(NativeHistogram::FromState(bad, &restored));
  EXPECT_EQ(restored.count(), saved.count());
}

TEST(NativeHistogramTest, MergeTakesTheLowerSchema) {
  NativeHistogram fine(7), coarse(2);
  fine.Add(3);      // schema 7: 203; schema 2: ceil(log2(3) * 4) = 7
  fine.Add(0.1);    // schema 2: ceil(-3.32 * 4) = -13
  coarse.Add(3.1);  // schema 2: ceil(1.632 * 4) = 7
  coarse.Add(-10);  // schema 2: ceil(3.32 * 4) = 14
  fine.Merge(coarse);
  EXPECT_EQ(fine.schema(), 2);
  EXPECT_EQ(fine.count(), 4u);
  EXPECT_THAT(fine.PositiveBuckets(), ElementsAre(Pair(-13, 1u), Pair(7, 2u)));
  EXPECT_THAT(fine.NegativeBuckets(), ElementsAre(Pair(14, 1u)));
  // And the other way round: a coarse histogram absorbs a fine one.
  NativeHistogram coarse2(2), fine2(7);
  coarse2.Add(3.1);
  fine2.Add(3);
  coarse2.Merge(fine2);
  EXPECT_EQ(coarse2.schema(), 2);
  EXPECT_THAT(coarse2.PositiveBuckets(), ElementsAre(Pair(7, 2u)));
}

TEST(NativeHistogramTest, StaleMarkerIsAnEmptyHistogramWithAStaleNaNSum) {
  const HistogramPoint stale = StaleHistogramPoint(1234);
  EXPECT_TRUE(IsStaleHistogramPoint(stale));
  EXPECT_TRUE(IsStaleNaN(stale.sum));
  EXPECT_EQ(stale.timestamp_ms, 1234);
  EXPECT_EQ(stale.count, 0u);
  EXPECT_TRUE(stale.positive_spans.empty());
  EXPECT_FALSE(IsStaleHistogramPoint(NativeHistogram().ToPoint(1)));
}

}  // namespace
}  // namespace rwexport
