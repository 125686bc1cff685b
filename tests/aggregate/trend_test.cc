#include "lib/aggregate/trend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rwexport {
namespace {

constexpr double kAlpha = 0.01;

// k6's TrendSink.P, written out independently: sort, i = p/100 * (n-1), interpolate between
// the values at floor(i) and ceil(i).
struct K6Percentile {
  double value;
  double lower;  // v[floor(i)]
  double upper;  // v[ceil(i)]
  double fraction;
};
K6Percentile ExactK6Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  const double i = p / 100 * (static_cast<double>(values.size()) - 1);
  const double lower = values[static_cast<size_t>(std::floor(i))];
  const double upper = values[static_cast<size_t>(std::ceil(i))];
  const double f = i - std::floor(i);
  return {lower + (upper - lower) * f, lower, upper, f};
}

// The bound proved in trend.h: alpha * |exact| when the two neighbours have the same sign,
// alpha * ((1-f)|v_j| + f|v_k|) when they straddle zero; plus the zero threshold and rounding.
void ExpectWithinBound(double estimate, const K6Percentile& exact, const std::string& what) {
  const double scale =
      exact.lower * exact.upper >= 0
          ? std::fabs(exact.value)
          : (1 - exact.fraction) * std::fabs(exact.lower) + exact.fraction * std::fabs(exact.upper);
  EXPECT_LE(std::fabs(estimate - exact.value), kAlpha * scale * (1 + 1e-9) + 1e-9)
      << what << ": estimate " << estimate << " exact " << exact.value;
}

TEST(TrendAccumulatorTest, EmptyIsAllZero) {
  TrendAccumulator trend;
  EXPECT_TRUE(trend.exact());
  EXPECT_EQ(trend.count(), 0u);
  EXPECT_EQ(trend.sum(), 0);
  EXPECT_EQ(trend.min(), 0);
  EXPECT_EQ(trend.max(), 0);
  EXPECT_EQ(trend.avg(), 0);
  EXPECT_EQ(trend.Percentile(50), 0);
}

TEST(TrendAccumulatorTest, SingleValue) {
  TrendAccumulator trend;
  trend.Add(7.25);
  for (double p : {0.0, 50.0, 99.9, 100.0}) EXPECT_EQ(trend.Percentile(p), 7.25) << p;
  EXPECT_EQ(trend.avg(), 7.25);
}

TEST(TrendAccumulatorTest, K6RuleOnSmallSet) {
  TrendAccumulator trend;
  for (double v : {4.0, 2.0, 1.0, 3.0}) trend.Add(v);
  EXPECT_EQ(trend.count(), 4u);
  EXPECT_EQ(trend.sum(), 10);
  EXPECT_EQ(trend.min(), 1);
  EXPECT_EQ(trend.max(), 4);
  EXPECT_EQ(trend.avg(), 2.5);
  EXPECT_DOUBLE_EQ(trend.Percentile(50), 2.5);  // i = 1.5
  EXPECT_DOUBLE_EQ(trend.Percentile(90), 3.7);  // i = 2.7
  EXPECT_DOUBLE_EQ(trend.Percentile(95), 3.85);
  EXPECT_DOUBLE_EQ(trend.Percentile(25), 1.75);
  EXPECT_EQ(trend.Percentile(0), 1);
  EXPECT_EQ(trend.Percentile(100), 4);
  // Out-of-range p is clamped.
  EXPECT_EQ(trend.Percentile(-5), 1);
  EXPECT_EQ(trend.Percentile(250), 4);
}

TEST(TrendAccumulatorTest, NonFiniteIgnored) {
  TrendAccumulator trend;
  trend.Add(std::nan(""));
  trend.Add(std::numeric_limits<double>::infinity());
  trend.Add(1);
  EXPECT_EQ(trend.count(), 1u);
  EXPECT_EQ(trend.max(), 1);
}

// http_req_duration of /work/shared/testdata/k6/finance-run.json (the 60 "Point" lines, in
// file order); k6's end-of-test summary for that run shows med=13.177459 p(90)=28.861934
// p(95)=45.387132 p(99)=122.109154 (rounded to 6 decimals).
const std::vector<double>& FinanceRunDurations() {
  static const auto* const values = new std::vector<double>{
      218.508,   15.079959, 55.120125, 21.792667, 49.807916, 24.240958, 10.743708, 12.880792,
      17.083458, 13.621542, 8.864709,  20.166875, 11.23725,  45.154459, 20.146666, 11.445958,
      23.859917, 31.296584, 28.591417, 12.957125, 27.337166, 11.145083, 8.657042,  15.828083,
      13.397792, 9.843,     26.063333, 12.196333, 15.676417, 31.812291, 11.694291, 10.265583,
      22.177,    12.123792, 10.908417, 19.422625, 12.177333, 9.3115,    15.714041, 11.746292,
      10.832875, 22.182875, 12.169792, 12.128958, 21.528083, 11.496208, 11.497666, 23.982417,
      11.820833, 9.581291,  18.35475,  9.652958,  9.290708,  21.750917, 12.926875, 9.356792,
      19.820125, 10.603458, 12.251125, 18.62775};
  return *values;
}

TEST(TrendAccumulatorTest, MatchesK6SummaryOfARealRun) {
  TrendAccumulator trend;
  for (double v : FinanceRunDurations()) trend.Add(v);
  ASSERT_EQ(trend.count(), 60u);
  EXPECT_TRUE(trend.exact());
  // The summary rounds to 6 decimals (13.1774585 shows as 13.177459): allow 5e-7 plus rounding.
  constexpr double kSummaryRounding = 5.1e-7;
  EXPECT_NEAR(trend.Percentile(50), 13.177459, kSummaryRounding);
  EXPECT_NEAR(trend.Percentile(90), 28.861934, kSummaryRounding);
  EXPECT_NEAR(trend.Percentile(95), 45.387132, kSummaryRounding);
  EXPECT_NEAR(trend.Percentile(99), 122.109154, kSummaryRounding);
  EXPECT_EQ(trend.min(), 8.657042);
  EXPECT_EQ(trend.max(), 218.508);
  EXPECT_NEAR(trend.avg(), 20.832566, kSummaryRounding);
}

TEST(TrendAccumulatorTest, ExactUpToTheLimitThenSketch) {
  std::vector<double> values;
  TrendAccumulator trend;
  std::mt19937_64 rng(4);
  std::lognormal_distribution<double> dist(3, 1);
  for (size_t i = 0; i < TrendAccumulator::kExactLimit; ++i) {
    values.push_back(dist(rng));
    trend.Add(values.back());
  }
  ASSERT_TRUE(trend.exact());
  EXPECT_EQ(TrendAccumulator::kExactLimit, 64u);
  for (double p : {0.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(trend.Percentile(p), ExactK6Percentile(values, p).value) << p;
  }
  values.push_back(dist(rng));
  trend.Add(values.back());
  EXPECT_FALSE(trend.exact());
  EXPECT_EQ(trend.count(), 65u);
  for (double p : {0.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0}) {
    ExpectWithinBound(trend.Percentile(p), ExactK6Percentile(values, p), "p=" + std::to_string(p));
  }
  EXPECT_EQ(trend.Percentile(0), *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(trend.Percentile(100), *std::max_element(values.begin(), values.end()));
}

struct Distribution {
  std::string name;
  std::function<double(std::mt19937_64&)> sample;
};

TEST(TrendAccumulatorTest, PercentilesWithinBoundForAdversarialDistributions) {
  const std::vector<Distribution> distributions = {
      {"constant", [](std::mt19937_64&) { return 42.0; }},
      {"bimodal",
       [](std::mt19937_64& rng) {
         return std::bernoulli_distribution(0.9)(rng)
                    ? std::fabs(std::normal_distribution<double>(5, 1)(rng))
                    : std::normal_distribution<double>(3000, 100)(rng);
       }},
      {"pareto",
       [](std::mt19937_64& rng) {
         const double u = std::uniform_real_distribution<double>(0, 1)(rng);
         return std::pow(1 - u, -1 / 1.1);
       }},
      {"log_uniform_1us_to_60s_in_ms",
       [](std::mt19937_64& rng) {
         return std::pow(10.0, std::uniform_real_distribution<double>(-3, std::log10(6e4))(rng));
       }},
      {"mostly_zeros",
       [](std::mt19937_64& rng) {
         return std::bernoulli_distribution(0.95)(rng)
                    ? 0.0
                    : std::exponential_distribution<double>(0.1)(rng);
       }},
      {"negatives",
       [](std::mt19937_64& rng) { return std::normal_distribution<double>(-20, 50)(rng); }},
      {"all_negative",
       [](std::mt19937_64& rng) { return -std::lognormal_distribution<double>(1, 2)(rng); }},
  };
  for (const Distribution& d : distributions) {
    for (size_t n : {size_t{100}, size_t{5000}, size_t{200000}}) {
      std::mt19937_64 rng(2024 + n);
      std::vector<double> values(n);
      TrendAccumulator trend;
      for (double& v : values) {
        v = d.sample(rng);
        trend.Add(v);
      }
      ASSERT_FALSE(trend.exact());
      EXPECT_EQ(trend.min(), *std::min_element(values.begin(), values.end()));
      EXPECT_EQ(trend.max(), *std::max_element(values.begin(), values.end()));
      for (double p : {50.0, 90.0, 95.0, 99.0, 99.9}) {
        ExpectWithinBound(trend.Percentile(p), ExactK6Percentile(values, p),
                          d.name + " n=" + std::to_string(n) + " p=" + std::to_string(p));
      }
    }
  }
}

std::vector<double> Sample(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(2, 1);
  std::vector<double> values(n);
  for (double& v : values) v = dist(rng);
  return values;
}

void ExpectSamePercentiles(const TrendAccumulator& a, const TrendAccumulator& b) {
  EXPECT_EQ(a.exact(), b.exact());
  EXPECT_EQ(a.count(), b.count());
  EXPECT_EQ(a.min(), b.min());
  EXPECT_EQ(a.max(), b.max());
  EXPECT_NEAR(a.sum(), b.sum(), 1e-9 * std::fabs(b.sum()));
  for (double p : {0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(a.Percentile(p), b.Percentile(p)) << p;
  }
}

TEST(TrendAccumulatorTest, MergeEqualsAccumulatingTheUnion) {
  // (size of a, size of b): exact+exact staying exact, exact+exact overflowing, exact+sketch,
  // sketch+exact, sketch+sketch, and empty sides.
  const std::vector<std::pair<size_t, size_t>> cases = {
      {10, 20}, {40, 24}, {40, 30}, {5, 1000}, {1000, 5}, {3000, 7000}, {0, 50}, {50, 0}, {0, 0}};
  for (const auto& [na, nb] : cases) {
    SCOPED_TRACE(std::to_string(na) + "+" + std::to_string(nb));
    const std::vector<double> va = Sample(na, 1);
    const std::vector<double> vb = Sample(nb, 2);
    TrendAccumulator a;
    TrendAccumulator b;
    TrendAccumulator whole;
    for (double v : va) a.Add(v), whole.Add(v);
    for (double v : vb) b.Add(v), whole.Add(v);
    a.Merge(b);
    ExpectSamePercentiles(a, whole);
    if (na + nb <= TrendAccumulator::kExactLimit) {
      std::vector<double> all = va;
      all.insert(all.end(), vb.begin(), vb.end());
      if (!all.empty()) {
        EXPECT_EQ(a.Percentile(90), ExactK6Percentile(all, 90).value);
      }
    }
  }
}

TEST(TrendAccumulatorTest, MergeWithItself) {
  TrendAccumulator trend;
  for (double v : {1.0, 2.0, 3.0}) trend.Add(v);
  trend.Merge(trend);
  EXPECT_EQ(trend.count(), 6u);
  EXPECT_DOUBLE_EQ(trend.Percentile(50), 2.0);  // {1,1,2,2,3,3}: i = 2.5
  EXPECT_DOUBLE_EQ(trend.Percentile(90), 3.0);  // i = 4.5
}

TEST(TrendAccumulatorTest, CopyIsIndependent) {
  TrendAccumulator a;
  for (double v : Sample(500, 3)) a.Add(v);
  TrendAccumulator b = a;
  ExpectSamePercentiles(a, b);
  b.Add(1e6);
  EXPECT_EQ(a.count(), 500u);
  EXPECT_EQ(b.count(), 501u);
  EXPECT_EQ(b.max(), 1e6);
  EXPECT_NE(a.max(), 1e6);
}

TEST(TrendAccumulatorTest, ClearReturnsToExact) {
  TrendAccumulator trend;
  for (double v : Sample(500, 3)) trend.Add(v);
  ASSERT_FALSE(trend.exact());
  trend.Clear();
  EXPECT_TRUE(trend.exact());
  EXPECT_EQ(trend.count(), 0u);
  EXPECT_EQ(trend.MemoryBytes(), sizeof(TrendAccumulator));
  trend.Add(3);
  trend.Add(1);
  EXPECT_EQ(trend.Percentile(50), 2);
}

// The exact values are kept in arrival order and sorted when first read: every result is the
// one of values kept sorted (inserted after their equals), whatever the order and however the
// reads and adds interleave: duplicates, -0.0 and 0.0, in order and reversed.
TEST(TrendAccumulatorTest, ArrivalOrderDoesNotChangeResults) {
  const std::vector<double> base = {5, -0.0, 3, 0.0, 3, 120.5, -7.25, 5, 0.0, 1e-300, -0.0, 42};
  std::vector<std::vector<double>> orders = {base, base, base};
  std::sort(orders[1].begin(), orders[1].end());
  std::reverse(orders[2].begin(), orders[2].end());
  std::mt19937_64 rng(17);
  for (int k = 0; k < 20; ++k) {
    orders.push_back(base);
    std::shuffle(orders.back().begin(), orders.back().end(), rng);
  }
  const double kPs[] = {0, 1, 10, 25, 50, 66.6, 90, 95, 99, 100};
  for (const std::vector<double>& order : orders) {
    TrendAccumulator trend;
    std::vector<double> kept;  // the values as sorted insertion (after equals) keeps them
    for (size_t i = 0; i < order.size(); ++i) {
      trend.Add(order[i]);
      kept.insert(std::upper_bound(kept.begin(), kept.end(), order[i]), order[i]);
      if (i % 5 != 4) continue;
      // A read in between: later adds go after the sorted values.
      for (double p : kPs) {
        const double i_rank = p / 100 * (static_cast<double>(kept.size()) - 1);
        const double lower = kept[static_cast<size_t>(std::floor(i_rank))];
        const double upper = kept[static_cast<size_t>(std::ceil(i_rank))];
        const double want = lower + (upper - lower) * (i_rank - std::floor(i_rank));
        EXPECT_EQ(std::signbit(trend.Percentile(p)), std::signbit(want)) << p;
        EXPECT_EQ(trend.Percentile(p), want) << p;
      }
    }
    const TrendAccumulator::State state = trend.SaveState();
    ASSERT_EQ(state.values.size(), kept.size());
    for (size_t i = 0; i < kept.size(); ++i) {
      EXPECT_EQ(state.values[i], kept[i]) << i;
      EXPECT_EQ(std::signbit(state.values[i]), std::signbit(kept[i])) << i;
    }
    EXPECT_EQ(trend.Percentile(50), 1.5);  // between 1e-300 and 3
    EXPECT_EQ(trend.Percentile(0), -7.25);
    EXPECT_EQ(trend.Percentile(100), 120.5);
    // A merge of an unsorted accumulator into another.
    TrendAccumulator other;
    other.Add(4);
    other.Add(-1);
    TrendAccumulator merged = trend;
    merged.Merge(other);
    EXPECT_EQ(merged.count(), order.size() + 2);
    EXPECT_EQ(merged.Percentile(0), -7.25);
    const std::vector<double> merged_values = merged.SaveState().values;
    EXPECT_EQ(merged_values.size(), order.size() + 2);
    EXPECT_TRUE(std::is_sorted(merged_values.begin(), merged_values.end()));
  }
}

TEST(TrendAccumulatorTest, MemoryBounded) {
  // Exact mode: at most the object plus 2 * 64 doubles (vector growth).
  TrendAccumulator small;
  for (double v : Sample(64, 5)) small.Add(v);
  EXPECT_LE(small.MemoryBytes(), sizeof(TrendAccumulator) + 2 * 64 * sizeof(double));

  // A million samples over 1e-9 .. 1e300 (beyond the sketch's bucket cap).
  TrendAccumulator trend;
  std::mt19937_64 rng(6);
  std::uniform_real_distribution<double> exponent(-9, 300);
  size_t peak = 0;
  for (int i = 0; i < 1000000; ++i) {
    trend.Add((i % 4 == 0 ? -1 : 1) * std::pow(10.0, exponent(rng)));
    if (i % 997 == 0) peak = std::max(peak, trend.MemoryBytes());
  }
  peak = std::max(peak, trend.MemoryBytes());
  EXPECT_LE(peak, TrendAccumulator::MaxMemoryBytes());
  EXPECT_LE(TrendAccumulator::MaxMemoryBytes(), 34u * 1024);
}

// Checkpoints: an accumulator restored from its state answers as the saved one, exact and past
// the switch to the sketch (negative values and zeros included), and goes on adding alike.
TEST(TrendAccumulatorTest, RestoredFromItsStateAnswersAndAddsAsTheSavedOne) {
  for (int n : {0, 1, 40, 64, 65, 500}) {
    TrendAccumulator saved;
    for (int i = 0; i < n; ++i) saved.Add(i % 9 == 0 ? 0 : (i % 5 == 0 ? -1.5 * i : 3.25 * i));
    absl::StatusOr<TrendAccumulator> restored = TrendAccumulator::FromState(saved.SaveState());
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_EQ(restored->exact(), saved.exact()) << n;
    for (int more = 0; more < 2; ++more) {
      EXPECT_EQ(restored->count(), saved.count()) << n;
      EXPECT_EQ(restored->sum(), saved.sum()) << n;
      EXPECT_EQ(restored->min(), saved.min()) << n;
      EXPECT_EQ(restored->max(), saved.max()) << n;
      for (double p : {0.0, 50.0, 90.0, 95.0, 99.0, 100.0}) {
        EXPECT_EQ(restored->Percentile(p), saved.Percentile(p)) << n << " p" << p;
      }
      for (int i = 0; i < 70; ++i) {  // enough to switch an exact one to the sketch
        saved.Add(7.5 * i);
        restored->Add(7.5 * i);
      }
    }
  }
}

TEST(TrendAccumulatorTest, AStateNoAccumulatorCanHaveIsRefused) {
  TrendAccumulator::State unsorted;
  unsorted.count = 2;
  unsorted.values = {2, 1};
  EXPECT_FALSE(TrendAccumulator::FromState(unsorted).ok());
  TrendAccumulator::State short_count;
  short_count.count = 3;
  short_count.values = {1, 2};
  EXPECT_FALSE(TrendAccumulator::FromState(short_count).ok());
  TrendAccumulator sketched;
  for (int i = 0; i < 100; ++i) sketched.Add(i + 1);
  TrendAccumulator::State bad_buckets = sketched.SaveState();
  ASSERT_TRUE(bad_buckets.sketch.has_value());
  bad_buckets.sketch->count += 1;
  bad_buckets.count += 1;
  EXPECT_EQ(TrendAccumulator::FromState(bad_buckets).status().message(),
            "sketch state: buckets hold 100 samples, the count is 101");
}

}  // namespace
}  // namespace rwexport
