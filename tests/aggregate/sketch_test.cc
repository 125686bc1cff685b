#include "lib/aggregate/sketch.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace rwexport {
namespace {

constexpr double kAlpha = 0.01;
// Slack for floating-point rounding in log/exp at bucket boundaries.
constexpr double kRounding = 1e-9;

double Gamma(double alpha) { return (1 + alpha) / (1 - alpha); }

// Bucket index by the definition, computed independently of the sketch.
int SpecIndex(double magnitude, double alpha) {
  return static_cast<int>(std::ceil(std::log(magnitude) / std::log(Gamma(alpha))));
}

void ExpectWithinAlpha(double estimate, double exact, double alpha, const std::string& what) {
  EXPECT_LE(std::fabs(estimate - exact),
            alpha * std::fabs(exact) * (1 + kRounding) + QuantileSketch::kZeroThreshold)
      << what << ": estimate " << estimate << " exact " << exact;
}

struct Distribution {
  std::string name;
  std::function<double(std::mt19937_64&)> sample;
};

std::vector<Distribution> Distributions() {
  return {
      {"constant", [](std::mt19937_64&) { return 42.0; }},
      {"bimodal",
       [](std::mt19937_64& rng) {
         std::normal_distribution<double> fast(10, 1);
         std::normal_distribution<double> slow(1000, 50);
         return std::bernoulli_distribution(0.7)(rng) ? std::fabs(fast(rng)) : slow(rng);
       }},
      {"pareto",
       [](std::mt19937_64& rng) {
         // x_m = 1, shape 1.1: very heavy tail.
         const double u = std::uniform_real_distribution<double>(0, 1)(rng);
         return std::pow(1 - u, -1 / 1.1);
       }},
      {"log_uniform_1us_to_60s_in_ms",
       [](std::mt19937_64& rng) {
         return std::pow(10.0, std::uniform_real_distribution<double>(-3, std::log10(6e4))(rng));
       }},
      {"mostly_zeros",
       [](std::mt19937_64& rng) {
         if (std::bernoulli_distribution(0.8)(rng)) return 0.0;
         return std::exponential_distribution<double>(0.01)(rng);
       }},
      {"negative_and_positive",
       [](std::mt19937_64& rng) { return std::normal_distribution<double>(0, 100)(rng); }},
      {"all_negative",
       [](std::mt19937_64& rng) { return -std::lognormal_distribution<double>(2, 1.5)(rng); }},
      {"near_zero_threshold",
       [](std::mt19937_64& rng) {
         return std::pow(10.0, std::uniform_real_distribution<double>(-10, -7)(rng));
       }},
  };
}

std::vector<double> Draw(const Distribution& d, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> values(n);
  for (double& v : values) v = d.sample(rng);
  return values;
}

TEST(QuantileSketchTest, EmptySketch) {
  QuantileSketch sketch;
  EXPECT_EQ(sketch.count(), 0u);
  EXPECT_EQ(sketch.sum(), 0);
  EXPECT_EQ(sketch.min(), 0);
  EXPECT_EQ(sketch.max(), 0);
  EXPECT_EQ(sketch.ValueAtRank(0), 0);
  EXPECT_EQ(sketch.relative_accuracy(), 0.01);
  EXPECT_TRUE(sketch.PositiveBuckets().empty());
}

TEST(QuantileSketchTest, CreateValidatesRelativeAccuracy) {
  EXPECT_EQ(QuantileSketch::Create(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantileSketch::Create(0.6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantileSketch::Create(std::nan("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto sketch = QuantileSketch::Create(0.02);
  ASSERT_TRUE(sketch.ok()) << sketch.status();
  EXPECT_EQ(sketch->relative_accuracy(), 0.02);
}

TEST(QuantileSketchTest, IndexAndRepresentativeFollowTheDefinition) {
  QuantileSketch sketch;
  const double gamma = Gamma(kAlpha);
  for (double x : {1e-9, 1e-3, 0.5, 1.0, 1.0000001, 13.177459, 1000.0, 6e4, 1e300}) {
    EXPECT_EQ(sketch.IndexOf(x), SpecIndex(x, kAlpha)) << x;
  }
  EXPECT_EQ(sketch.IndexOf(1.0), 0);
  for (int i : {-1000, -1, 0, 1, 345, 3000}) {
    EXPECT_NEAR(sketch.BucketValue(i), 2 * std::pow(gamma, i) / (gamma + 1),
                1e-12 * std::pow(gamma, i))
        << i;
  }
  // Every magnitude is within alpha of its bucket's representative.
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> exponent(-9, 300);
  for (int n = 0; n < 100000; ++n) {
    const double x = std::pow(10.0, exponent(rng));
    ExpectWithinAlpha(sketch.BucketValue(sketch.IndexOf(x)), x, kAlpha, "representative");
  }
}

TEST(QuantileSketchTest, ExactStatisticsAndNonFiniteIgnored) {
  QuantileSketch sketch;
  for (double v : {3.0, -2.0, 0.0, 7.5, std::nan(""), std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    sketch.Add(v);
  }
  EXPECT_EQ(sketch.count(), 4u);
  EXPECT_EQ(sketch.sum(), 8.5);
  EXPECT_EQ(sketch.min(), -2.0);
  EXPECT_EQ(sketch.max(), 7.5);
  EXPECT_EQ(sketch.zero_count(), 1u);
  // Sorted: -2, 0, 3, 7.5. Ends are exact, inner ranks within alpha.
  EXPECT_EQ(sketch.ValueAtRank(0), -2.0);
  EXPECT_EQ(sketch.ValueAtRank(1), 0.0);
  ExpectWithinAlpha(sketch.ValueAtRank(2), 3.0, kAlpha, "rank 2");
  EXPECT_EQ(sketch.ValueAtRank(3), 7.5);
  EXPECT_EQ(sketch.ValueAtRank(100), 7.5);
  EXPECT_EQ(sketch.NegativeBuckets(),
            (std::vector<std::pair<int, uint64_t>>{{SpecIndex(2.0, kAlpha), 1}}));
  EXPECT_EQ(sketch.PositiveBuckets(),
            (std::vector<std::pair<int, uint64_t>>{{SpecIndex(3.0, kAlpha), 1},
                                                   {SpecIndex(7.5, kAlpha), 1}}));
}

TEST(QuantileSketchTest, TinyValuesCountAsZero) {
  QuantileSketch sketch;
  sketch.Add(1e-12);
  sketch.Add(-5e-10);
  sketch.Add(1e-9);  // At the threshold: not zero.
  sketch.Add(2.0);
  EXPECT_EQ(sketch.zero_count(), 2u);
  EXPECT_EQ(sketch.ValueAtRank(1), 0.0);
  ExpectWithinAlpha(sketch.ValueAtRank(2), 1e-9, kAlpha, "threshold value");
}

// Every rank of interest is within alpha of the exact order statistic.
TEST(QuantileSketchTest, RanksWithinRelativeAccuracyForAdversarialDistributions) {
  for (const Distribution& d : Distributions()) {
    for (size_t n : {size_t{1000}, size_t{200000}}) {
      std::vector<double> values = Draw(d, n, 12345);
      QuantileSketch sketch;
      double sum = 0;
      for (double v : values) {
        sketch.Add(v);
        sum += v;
      }
      std::sort(values.begin(), values.end());
      ASSERT_EQ(sketch.count(), n);
      EXPECT_EQ(sketch.sum(), sum) << d.name;
      EXPECT_EQ(sketch.min(), values.front()) << d.name;
      EXPECT_EQ(sketch.max(), values.back()) << d.name;
      std::vector<uint64_t> ranks;
      for (double q : {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0}) {
        ranks.push_back(static_cast<uint64_t>(q * static_cast<double>(n - 1)));
      }
      for (uint64_t r = 0; r < n; r += n / 500) ranks.push_back(r);
      for (uint64_t r : ranks) {
        ExpectWithinAlpha(sketch.ValueAtRank(r), values[r], kAlpha,
                          d.name + " n=" + std::to_string(n) + " rank=" + std::to_string(r));
      }
    }
  }
}

TEST(QuantileSketchTest, OtherRelativeAccuracy) {
  auto sketch = QuantileSketch::Create(0.002);
  ASSERT_TRUE(sketch.ok());
  // At alpha = 0.2%, 2048 buckets span a ratio of gamma^2047 ~ 3600: stay within 1..1000.
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> exponent(0, 3);
  std::vector<double> values(50000);
  for (double& v : values) v = std::pow(10.0, exponent(rng));
  for (double v : values) sketch->Add(v);
  std::sort(values.begin(), values.end());
  for (uint64_t r = 0; r < values.size(); r += 97) {
    ExpectWithinAlpha(sketch->ValueAtRank(r), values[r], 0.002, "rank " + std::to_string(r));
  }
}

void ExpectSameSketch(const QuantileSketch& a, const QuantileSketch& b, const std::string& what) {
  EXPECT_EQ(a.PositiveBuckets(), b.PositiveBuckets()) << what;
  EXPECT_EQ(a.NegativeBuckets(), b.NegativeBuckets()) << what;
  EXPECT_EQ(a.zero_count(), b.zero_count()) << what;
  EXPECT_EQ(a.count(), b.count()) << what;
  EXPECT_EQ(a.min(), b.min()) << what;
  EXPECT_EQ(a.max(), b.max()) << what;
  EXPECT_NEAR(a.sum(), b.sum(), 1e-9 * std::fabs(a.sum()) + 1e-9) << what;
  for (uint64_t r = 0; r < a.count(); r += 1 + a.count() / 300) {
    EXPECT_EQ(a.ValueAtRank(r), b.ValueAtRank(r)) << what << " rank " << r;
  }
}

TEST(QuantileSketchTest, MergeEqualsSketchOfUnion) {
  for (const Distribution& d : Distributions()) {
    const std::vector<double> values = Draw(d, 30000, 777);
    QuantileSketch whole;
    for (double v : values) whole.Add(v);
    // Four parts of very different sizes, merged in two different orders.
    std::vector<QuantileSketch> parts(4);
    std::mt19937_64 rng(5);
    std::discrete_distribution<int> pick({1, 10, 100, 1000});
    for (double v : values) parts[pick(rng)].Add(v);
    QuantileSketch forward;
    for (const QuantileSketch& p : parts) ASSERT_TRUE(forward.Merge(p).ok());
    QuantileSketch backward = parts[3];
    for (int i = 2; i >= 0; --i) ASSERT_TRUE(backward.Merge(parts[i]).ok());
    ExpectSameSketch(forward, whole, d.name + " forward");
    ExpectSameSketch(backward, whole, d.name + " backward");
  }
}

TEST(QuantileSketchTest, MergeWithItselfDoublesCounts) {
  QuantileSketch sketch;
  for (double v : {1.0, 2.0, -3.0, 0.0}) sketch.Add(v);
  QuantileSketch twice;
  for (double v : {1.0, 2.0, -3.0, 0.0, 1.0, 2.0, -3.0, 0.0}) twice.Add(v);
  ASSERT_TRUE(sketch.Merge(sketch).ok());
  ExpectSameSketch(sketch, twice, "self merge");
}

TEST(QuantileSketchTest, MergeRejectsDifferentAccuracy) {
  QuantileSketch a;
  a.Add(1);
  auto b = QuantileSketch::Create(0.02);
  ASSERT_TRUE(b.ok());
  b->Add(2);
  const absl::Status status = a.Merge(*b);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.count(), 1u);
}

TEST(QuantileSketchTest, CollapsesLowestBucketsBeyondCap) {
  QuantileSketch sketch;
  sketch.Add(1.0);   // Index 0.
  sketch.Add(1e30);  // Index ceil(69.0776 / 0.0200007) = 3454: the floor becomes 1407.
  const int top = SpecIndex(1e30, kAlpha);
  ASSERT_EQ(top, 3454);
  EXPECT_EQ(sketch.PositiveBuckets(),
            (std::vector<std::pair<int, uint64_t>>{{top - 2047, 1}, {top, 1}}));
  // Added in the other order, and merged, the result is the same.
  QuantileSketch reversed;
  reversed.Add(1e30);
  reversed.Add(1.0);
  ExpectSameSketch(reversed, sketch, "reversed");
  QuantileSketch low;
  low.Add(1.0);
  QuantileSketch high;
  high.Add(1e30);
  ASSERT_TRUE(low.Merge(high).ok());
  ExpectSameSketch(low, sketch, "merged");
}

TEST(QuantileSketchTest, MergeEqualsUnionWhenCollapsing) {
  // Magnitudes from 1e-9 to 1e300 span ~35000 buckets: far beyond the cap.
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> exponent(-9, 300);
  std::vector<double> values(20000);
  for (double& v : values) v = (rng() % 3 == 0 ? -1 : 1) * std::pow(10.0, exponent(rng));
  QuantileSketch whole;
  QuantileSketch a;
  QuantileSketch b;
  for (size_t i = 0; i < values.size(); ++i) {
    whole.Add(values[i]);
    (values[i] < 1e100 ? a : b).Add(values[i]);
  }
  QuantileSketch ab = a;
  ASSERT_TRUE(ab.Merge(b).ok());
  QuantileSketch ba = b;
  ASSERT_TRUE(ba.Merge(a).ok());
  ExpectSameSketch(ab, whole, "a+b");
  ExpectSameSketch(ba, whole, "b+a");
  EXPECT_LE(whole.PositiveBuckets().size(), 2048u);
  EXPECT_EQ(whole.PositiveBuckets().back().first - whole.PositiveBuckets().front().first, 2047);
}

TEST(QuantileSketchTest, MemoryBoundedWithAMillionWideSamples) {
  // The stated bound: two stores of at most 2048 8-byte counts plus the object itself.
  EXPECT_EQ(QuantileSketch::MaxMemoryBytes(), sizeof(QuantileSketch) + 2 * 2048 * 8);
  EXPECT_LE(QuantileSketch::MaxMemoryBytes(), 33u * 1024);

  QuantileSketch sketch;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> exponent(-9, 300);
  std::vector<double> top;
  size_t peak = 0;
  for (int i = 0; i < 1000000; ++i) {
    const double v = (i % 2 ? 1 : -1) * std::pow(10.0, exponent(rng));
    sketch.Add(v);
    if (i % 1000 == 0) peak = std::max(peak, sketch.MemoryBytes());
    if (v > 0) top.push_back(v);
  }
  peak = std::max(peak, sketch.MemoryBytes());
  EXPECT_LE(peak, QuantileSketch::MaxMemoryBytes());
  // Upper quantiles of the positive values keep the guarantee after collapsing: those within
  // gamma^2047 ~ 10^17.6 of the maximum 1e300, i.e. above the (1 - 17.6/309) ~ 0.943 quantile.
  std::sort(top.begin(), top.end());
  const uint64_t negatives = sketch.count() - top.size();
  for (double q : {0.95, 0.99, 0.999}) {
    const auto r = static_cast<uint64_t>(q * static_cast<double>(top.size() - 1));
    ExpectWithinAlpha(sketch.ValueAtRank(negatives + r), top[r], kAlpha, "q=" + std::to_string(q));
  }
}

TEST(QuantileSketchTest, MemoryForTypicalLatenciesIsSmall) {
  QuantileSketch sketch;
  const std::vector<double> values = Draw(Distributions()[3], 100000, 8);
  for (double v : values) sketch.Add(v);
  // 1 µs .. 60 s in ms: log(6e7)/log(gamma) ~ 897 buckets.
  EXPECT_LE(sketch.MemoryBytes(), sizeof(QuantileSketch) + (897 + 2 * 32 + 2) * 8);
}

TEST(QuantileSketchTest, ClearReleasesAndResets) {
  QuantileSketch sketch;
  for (int i = 1; i < 1000; ++i) sketch.Add(i);
  sketch.Clear();
  EXPECT_EQ(sketch.count(), 0u);
  EXPECT_EQ(sketch.MemoryBytes(), sizeof(QuantileSketch));
  sketch.Add(5);
  EXPECT_EQ(sketch.count(), 1u);
  EXPECT_EQ(sketch.ValueAtRank(0), 5);
  EXPECT_EQ(sketch.sum(), 5);
}

}  // namespace
}  // namespace rwexport
