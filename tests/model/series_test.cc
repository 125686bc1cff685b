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
  Series series(std::vector<Label>{{"status", "200"},
                                   {"A", "x"},
                                   {"__name__", "k6_http_reqs_total"},
                                   {"_a", "y"},
                                   {"method", "GET"}});
  EXPECT_THAT(series.labels(),
              ElementsAre(Label{"A", "x"}, Label{"__name__", "k6_http_reqs_total"},
                          Label{"_a", "y"}, Label{"method", "GET"}, Label{"status", "200"}));
  EXPECT_EQ(series.name(), "k6_http_reqs_total");
}

TEST(SeriesTest, SharedLabelsGiveTheSameEncodingAsOwnLabels) {
  // One label block shared by two statistics of a trend; the name goes where it sorts.
  std::shared_ptr<const EncodedLabels> rest = EncodeLabels(
      {{"status", "200"}, {"B", "upper"}, {"method", "GET"}, {"test_run_id", "run-1"}});
  Series p95(EncodeNameLabel("k6_http_req_duration_p95"), rest);
  Series max(EncodeNameLabel("k6_http_req_duration_max"), rest);
  Series own(std::vector<Label>{{"method", "GET"},
                                {"__name__", "k6_http_req_duration_p95"},
                                {"test_run_id", "run-1"},
                                {"B", "upper"},
                                {"status", "200"}});
  EXPECT_EQ(p95.encoded_labels(), own.encoded_labels());
  EXPECT_EQ(p95.encoded_labels_size(), own.encoded_labels().size());
  EXPECT_THAT(
      max.labels(),
      ElementsAre(Label{"B", "upper"}, Label{"__name__", "k6_http_req_duration_max"},
                  Label{"method", "GET"}, Label{"status", "200"}, Label{"test_run_id", "run-1"}));
  EXPECT_EQ(max.name(), "k6_http_req_duration_max");
  EXPECT_EQ(
      max.ToString(),
      "k6_http_req_duration_max{B=\"upper\",method=\"GET\",status=\"200\",test_run_id=\"run-1\"}");
  EXPECT_EQ(p95.rest(), max.rest());
}

TEST(SeriesTest, OnlyTheNameIsFine) {
  Series series(std::vector<Label>{{"__name__", "k6_vus"}});
  EXPECT_THAT(series.labels(), ElementsAre(Label{"__name__", "k6_vus"}));
  EXPECT_EQ(series.ToString(), "k6_vus{}");
}

TEST(SeriesTest, EncodedLabelsParseAsTimeSeriesLabels) {
  Series series(std::vector<Label>{{"test_run_id", "run-1"},
                                   {"__name__", "k6_http_req_duration_p95"},
                                   {"name", "http://finance:9501/transaction"}});
  // The encoded labels are field 1 of prometheus.TimeSeries: the bytes alone parse as a
  // TimeSeries holding just those labels.
  prometheus::TimeSeries parsed;
  ASSERT_TRUE(parsed.ParseFromString(series.encoded_labels()));
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
  EXPECT_EQ(series.encoded_labels(), expected.SerializeAsString());
}

TEST(SeriesTest, EncodedLabelsCombineWithSamples) {
  // A request is built by appending the encoded labels and then the samples (field 2).
  Series series(std::vector<Label>{{"__name__", "k6_vus"}, {"scenario", "default"}});
  prometheus::TimeSeries samples;
  prometheus::Sample* sample = samples.add_samples();
  sample->set_value(7);
  sample->set_timestamp(1730305224000);
  prometheus::TimeSeries parsed;
  ASSERT_TRUE(parsed.ParseFromString(series.encoded_labels() + samples.SerializeAsString()));
  ASSERT_EQ(parsed.labels_size(), 2);
  EXPECT_EQ(parsed.labels(1).name(), "scenario");
  ASSERT_EQ(parsed.samples_size(), 1);
  EXPECT_EQ(parsed.samples(0).value(), 7);
  EXPECT_EQ(parsed.samples(0).timestamp(), 1730305224000);
}

TEST(SeriesTest, LongLabelValuesNeedMultiByteLengths) {
  // 300 bytes: the length varint takes two bytes.
  const std::string long_value(300, 'v');
  Series series(std::vector<Label>{{"__name__", "m"}, {"url", long_value}});
  prometheus::TimeSeries parsed;
  ASSERT_TRUE(parsed.ParseFromString(series.encoded_labels()));
  ASSERT_EQ(parsed.labels_size(), 2);
  EXPECT_EQ(parsed.labels(1).value(), long_value);
}

TEST(SeriesTest, ToStringShowsNameAndSortedLabels) {
  Series series(
      std::vector<Label>{{"status", "200"}, {"__name__", "k6_http_reqs_total"}, {"method", "GET"}});
  EXPECT_EQ(series.ToString(), "k6_http_reqs_total{method=\"GET\",status=\"200\"}");
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
  auto a = std::make_shared<const Series>(std::vector<Label>{{"__name__", "a"}});
  auto b = std::make_shared<const Series>(std::vector<Label>{{"__name__", "b"}});
  PointBatch batch;
  EXPECT_EQ(batch.point_count(), 0u);
  batch.series.push_back({a, {{1000, 1}, {2000, 2}}});
  batch.series.push_back({b, {{1000, StaleNaN()}}});
  EXPECT_EQ(batch.point_count(), 3u);
}

}  // namespace
}  // namespace rwexport
