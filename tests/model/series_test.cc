#include "lib/model/series.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/remote.pb.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;

uint64_t Bits(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

TEST(SeriesTest, SortsLabelsBytewiseNameIncluded) {
  // Remote write: "label names MUST be sorted in lexicographical order" -- bytewise, as
  // Prometheus's own labels.Labels, so "__name__" comes after the upper-case "A".
  const SeriesPtr series = MakeSeries({{"status", "200"},
                                       {"A", "x"},
                                       {"__name__", "k6_http_reqs_total"},
                                       {"_a", "y"},
                                       {"method", "GET"}});
  EXPECT_THAT(series->labels(),
              ElementsAre(Label{"A", "x"}, Label{"__name__", "k6_http_reqs_total"},
                          Label{"_a", "y"}, Label{"method", "GET"}, Label{"status", "200"}));
  EXPECT_EQ(series->name(), "k6_http_reqs_total");
}

TEST(SeriesTest, AFamilyGivesTheSameEncodingAsOwnLabels) {
  // One label block shared by two statistics of a trend, the test run id kept once for the
  // family: the name and the run id go where they sort.
  SeriesFamily family;
  family.names = {EncodeNameLabel("k6_http_req_duration_p95"),
                  EncodeNameLabel("k6_http_req_duration_max")};
  family.common = EncodeLabelFields({{"test_run_id", "run-1"}});
  family.common_first = "test_run_id";
  const OwnLabels own = EncodeOwnLabels(
      {{"url", "/x"}, {"status", "200"}, {"B", "upper"}, {"method", "GET"}}, "test_run_id");
  const Series series(&family, own.bytes, own.name_at, own.common_at);
  ASSERT_EQ(series.name_count(), 2u);
  const SeriesPtr p95 = MakeSeries({{"method", "GET"},
                                    {"__name__", "k6_http_req_duration_p95"},
                                    {"test_run_id", "run-1"},
                                    {"url", "/x"},
                                    {"B", "upper"},
                                    {"status", "200"}});
  EXPECT_EQ(series.encoded_labels(0), p95->encoded_labels());
  EXPECT_EQ(series.encoded_labels_size(0), p95->encoded_labels().size());
  EXPECT_THAT(series.labels(1),
              ElementsAre(Label{"B", "upper"}, Label{"__name__", "k6_http_req_duration_max"},
                          Label{"method", "GET"}, Label{"status", "200"},
                          Label{"test_run_id", "run-1"}, Label{"url", "/x"}));
  EXPECT_EQ(series.name(1), "k6_http_req_duration_max");
  EXPECT_EQ(series.ToString(1),
            "k6_http_req_duration_max{B=\"upper\",method=\"GET\",status=\"200\",test_run_id="
            "\"run-1\",url=\"/x\"}");
  // Own labels hold neither the name nor the run id.
  EXPECT_EQ(
      series.own_labels(),
      EncodeLabelFields({{"B", "upper"}, {"method", "GET"}, {"status", "200"}, {"url", "/x"}}));
}

TEST(SeriesTest, CommonLabelsAfterEveryOwnLabel) {
  SeriesFamily family;
  family.names = {EncodeNameLabel("k6_vus")};
  family.common = EncodeLabelFields({{"test_run_id", "run-1"}});
  family.common_first = "test_run_id";
  const OwnLabels own = EncodeOwnLabels({{"scenario", "a"}}, "test_run_id");
  const Series series(&family, own.bytes, own.name_at, own.common_at);
  EXPECT_EQ(series.ToString(), "k6_vus{scenario=\"a\",test_run_id=\"run-1\"}");
  const OwnLabels none = EncodeOwnLabels({}, "test_run_id");
  const Series bare(&family, none.bytes, none.name_at, none.common_at);
  EXPECT_EQ(bare.ToString(), "k6_vus{test_run_id=\"run-1\"}");
}

TEST(SeriesTest, OnlyTheNameIsFine) {
  const SeriesPtr series = MakeSeries({{"__name__", "k6_vus"}});
  EXPECT_THAT(series->labels(), ElementsAre(Label{"__name__", "k6_vus"}));
  EXPECT_EQ(series->ToString(), "k6_vus{}");
}

TEST(SeriesTest, EncodedLabelsParseAsTimeSeriesLabels) {
  const SeriesPtr series = MakeSeries({{"test_run_id", "run-1"},
                                       {"__name__", "k6_http_req_duration_p95"},
                                       {"name", "http://finance:9501/transaction"}});
  // The encoded labels are field 1 of prometheus.TimeSeries: the bytes alone parse as a
  // TimeSeries holding just those labels.
  prometheus::TimeSeries parsed;
  ASSERT_TRUE(parsed.ParseFromString(series->encoded_labels()));
  ASSERT_EQ(parsed.labels_size(), 3);
  EXPECT_EQ(parsed.labels(0).name(), "__name__");
  EXPECT_EQ(parsed.labels(0).value(), "k6_http_req_duration_p95");
  EXPECT_EQ(parsed.labels(1).name(), "name");
  EXPECT_EQ(parsed.labels(1).value(), "http://finance:9501/transaction");
  EXPECT_EQ(parsed.labels(2).name(), "test_run_id");
  EXPECT_EQ(parsed.labels(2).value(), "run-1");
  EXPECT_EQ(parsed.samples_size(), 0);

  // The same bytes protobuf itself produces for these labels, in this order.
  prometheus::TimeSeries expected;
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"__name__", "k6_http_req_duration_p95"},
                                                        {"name", "http://finance:9501/transaction"},
                                                        {"test_run_id", "run-1"}}) {
    prometheus::Label* label = expected.add_labels();
    label->set_name(name);
    label->set_value(value);
  }
  EXPECT_EQ(series->encoded_labels(), expected.SerializeAsString());
}

TEST(SeriesTest, EncodedLabelsCombineWithSamples) {
  // A request is built by appending the encoded labels and then the samples (field 2).
  const SeriesPtr series = MakeSeries({{"__name__", "k6_vus"}, {"scenario", "default"}});
  prometheus::TimeSeries samples;
  prometheus::Sample* sample = samples.add_samples();
  sample->set_value(7);
  sample->set_timestamp(1730305224000);
  prometheus::TimeSeries parsed;
  ASSERT_TRUE(parsed.ParseFromString(series->encoded_labels() + samples.SerializeAsString()));
  ASSERT_EQ(parsed.labels_size(), 2);
  EXPECT_EQ(parsed.labels(1).name(), "scenario");
  ASSERT_EQ(parsed.samples_size(), 1);
  EXPECT_EQ(parsed.samples(0).value(), 7);
  EXPECT_EQ(parsed.samples(0).timestamp(), 1730305224000);
}

TEST(SeriesTest, LongLabelValuesNeedMultiByteLengths) {
  // 300 bytes: the length varint takes two bytes.
  const std::string long_value(300, 'v');
  const SeriesPtr series = MakeSeries({{"__name__", "m"}, {"url", long_value}});
  prometheus::TimeSeries parsed;
  ASSERT_TRUE(parsed.ParseFromString(series->encoded_labels()));
  ASSERT_EQ(parsed.labels_size(), 2);
  EXPECT_EQ(parsed.labels(1).value(), long_value);
}

TEST(SeriesTest, ToStringShowsNameAndSortedLabels) {
  const SeriesPtr series =
      MakeSeries({{"status", "200"}, {"__name__", "k6_http_reqs_total"}, {"method", "GET"}});
  EXPECT_EQ(series->ToString(), "k6_http_reqs_total{method=\"GET\",status=\"200\"}");
}

TEST(StaleNaNTest, HasPrometheusBitPattern) {
  EXPECT_EQ(Bits(StaleNaN()), 0x7ff0000000000002ULL);
  EXPECT_TRUE(std::isnan(StaleNaN()));
  EXPECT_TRUE(IsStaleNaN(StaleNaN()));
}

TEST(StaleNaNTest, OtherValuesAreNotStale) {
  const double normal_nan = std::numeric_limits<double>::quiet_NaN();
  ASSERT_TRUE(std::isnan(normal_nan));
  EXPECT_NE(Bits(normal_nan), 0x7ff0000000000002ULL);
  EXPECT_FALSE(IsStaleNaN(normal_nan));
  EXPECT_FALSE(IsStaleNaN(std::nan("")));
  EXPECT_FALSE(IsStaleNaN(0.0));
  EXPECT_FALSE(IsStaleNaN(std::numeric_limits<double>::infinity()));
  // The bit pattern next to it is a NaN too, but not the marker.
  const uint64_t neighbour_bits = 0x7ff0000000000001ULL;
  double neighbour;
  std::memcpy(&neighbour, &neighbour_bits, sizeof(neighbour));
  EXPECT_TRUE(std::isnan(neighbour));
  EXPECT_FALSE(IsStaleNaN(neighbour));
}

TEST(PointBatchTest, CountsPointsOverSeries) {
  const SeriesPtr a = MakeSeries({{"__name__", "a"}});
  const SeriesPtr b = MakeSeries({{"__name__", "b"}});
  PointBatch batch;
  EXPECT_EQ(batch.point_count(), 0u);
  batch.series.push_back({a.get(), {{1000, 1}, {2000, 2}}});
  batch.series.push_back({b.get(), {{1000, StaleNaN()}}});
  EXPECT_EQ(batch.point_count(), 3u);
}

}  // namespace
}  // namespace rwexport
