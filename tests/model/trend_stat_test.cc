#include "lib/model/trend_stat.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/aggregate/trend.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using Kind = TrendStat::Kind;

TEST(TrendStatTest, NamedStatistics) {
  struct Case {
    const char* text;
    Kind kind;
    double percentile;
  };
  for (const Case& c : std::vector<Case>{{"count", Kind::kCount, 0},
                                         {"sum", Kind::kSum, 0},
                                         {"min", Kind::kMin, 0},
                                         {"max", Kind::kMax, 0},
                                         {"avg", Kind::kAvg, 0},
                                         {"med", Kind::kMed, 50}}) {
    auto stat = ParseTrendStat(c.text);
    ASSERT_TRUE(stat.ok()) << c.text << ": " << stat.status();
    EXPECT_EQ(stat->kind(), c.kind) << c.text;
    EXPECT_EQ(stat->percentile(), c.percentile) << c.text;
    EXPECT_EQ(stat->suffix(), c.text);
    EXPECT_EQ(stat->name(), c.text);
  }
}

TEST(TrendStatTest, PercentileSpellingsAndSuffixes) {
  struct Case {
    const char* text;
    double percentile;
    const char* suffix;
    const char* name;
  };
  for (const Case& c : std::vector<Case>{
           {"p(90)", 90, "p90", "p(90)"},
           {"p(95)", 95, "p95", "p(95)"},
           {"p(99)", 99, "p99", "p(99)"},
           {"p(99.9)", 99.9, "p999", "p(99.9)"},
           {"p(99.99)", 99.99, "p9999", "p(99.99)"},
           {"p(50)", 50, "p50", "p(50)"},
           {"p(100)", 100, "p100", "p(100)"},
           {"p(100.000)", 100, "p100", "p(100)"},
           {"p(1)", 1, "p1", "p(1)"},
           {"p(25)", 25, "p25", "p(25)"},
           {"p(2.5)", 2.5, "p2_5", "p(2.5)"},
           {"p(9.99)", 9.99, "p9_99", "p(9.99)"},
           {"p(0.1)", 0.1, "p0_1", "p(0.1)"},
           {"p(.5)", 0.5, "p0_5", "p(0.5)"},
           {"p(5.)", 5, "p5", "p(5)"},
           {"p(90.5)", 90.5, "p905", "p(90.5)"},
           {"p(10.05)", 10.05, "p1005", "p(10.05)"},
           {"p(095.0)", 95, "p95", "p(95)"},
           {"p(99.999999)", 99.999999, "p99999999", "p(99.999999)"},
       }) {
    auto stat = ParseTrendStat(c.text);
    ASSERT_TRUE(stat.ok()) << c.text << ": " << stat.status();
    EXPECT_EQ(stat->kind(), Kind::kPercentile) << c.text;
    EXPECT_EQ(stat->percentile(), c.percentile) << c.text;
    EXPECT_EQ(stat->suffix(), c.suffix) << c.text;
    EXPECT_EQ(stat->name(), c.name) << c.text;
  }
  // Equal percentiles compare equal; med is not p(50).
  EXPECT_EQ(*ParseTrendStat("p(95)"), *ParseTrendStat("p(95.0)"));
  EXPECT_NE(*ParseTrendStat("med"), *ParseTrendStat("p(50)"));
}

TEST(TrendStatTest, InvalidSpellingsNameTheText) {
  for (const char* text : {"p()",    "p(0)",          "p(0.0)", "p(101)", "p(100.5)", "p(1000)",
                           "p(abc)", "median",        "",       "p(-5)",  "p(+5)",    "p(1e2)",
                           "p( 90)", "p(90 )",        "p(90",   "p90",    "P(90)",    "p(9.9.9)",
                           "p(.)",   "p(99.1234567)", "MIN",    " min",   "p(nan)",   "p(inf)"}) {
    auto stat = ParseTrendStat(text);
    ASSERT_FALSE(stat.ok()) << text << " parsed as " << stat->name();
    EXPECT_EQ(stat.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(stat.status().message(), HasSubstr(absl::StrCat("\"", text, "\""))) << text;
  }
  EXPECT_EQ(ParseTrendStat("p(101)").status().message(),
            "invalid trend statistic \"p(101)\": the percentile 101 is above 100; expected count, "
            "sum, min, max, avg, med or p(N) with 0 < N <= 100, e.g. p(95) or p(99.9)");
}

TEST(TrendStatTest, SuffixesNeverCollide) {
  // Every percentile with up to three decimals in (0, 100], spelled canonically: 100000 values.
  std::set<std::string> suffixes;
  for (int thousandths = 1; thousandths <= 100000; ++thousandths) {
    const std::string text = absl::StrFormat("p(%d.%03d)", thousandths / 1000, thousandths % 1000);
    auto stat = ParseTrendStat(text);
    ASSERT_TRUE(stat.ok()) << text << ": " << stat.status();
    EXPECT_TRUE(suffixes.insert(stat->suffix()).second)
        << text << " collides on " << stat->suffix();
  }
  for (const char* named : {"count", "sum", "min", "max", "avg", "med"}) {
    EXPECT_EQ(suffixes.count(named), 0u);
  }
}

TEST(TrendStatTest, DefaultTrendStats) {
  std::vector<std::string> suffixes;
  for (const TrendStat& stat : DefaultTrendStats()) suffixes.push_back(stat.suffix());
  EXPECT_EQ(suffixes,
            (std::vector<std::string>{"min", "max", "avg", "med", "p90", "p95", "p99", "count"}));
  EXPECT_EQ(DefaultTrendStats()[4].percentile(), 90);
}

TEST(TrendStatTest, ComputeOverAccumulator) {
  TrendAccumulator trend;
  for (double v : {4.0, 1.0, 3.0, 2.0}) trend.Add(v);
  auto compute = [&](const char* text) { return ParseTrendStat(text)->Compute(trend); };
  EXPECT_EQ(compute("count"), 4);
  EXPECT_EQ(compute("sum"), 10);
  EXPECT_EQ(compute("min"), 1);
  EXPECT_EQ(compute("max"), 4);
  EXPECT_EQ(compute("avg"), 2.5);
  EXPECT_DOUBLE_EQ(compute("med"), 2.5);
  EXPECT_DOUBLE_EQ(compute("p(90)"), 3.7);
  EXPECT_DOUBLE_EQ(compute("p(99.9)"), 3.997);  // i = 0.999 * 3 = 2.997
  EXPECT_EQ(compute("p(100)"), 4);

  TrendAccumulator empty;
  for (const TrendStat& stat : DefaultTrendStats()) EXPECT_EQ(stat.Compute(empty), 0);
}

}  // namespace
}  // namespace rwexport
