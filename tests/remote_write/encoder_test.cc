#include "lib/remote_write/encoder.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/model/series.h"
#include "prometheus/remote.pb.h"

namespace rwexport {
namespace {

uint64_t Bits(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

SeriesPtr MakeSeries(std::vector<Label> labels) {
  return std::make_shared<const Series>(std::move(labels));
}

prometheus::WriteRequest Decode(const std::string& bytes) {
  prometheus::WriteRequest request;
  EXPECT_TRUE(request.ParseFromString(bytes));
  return request;
}

TEST(EncodeWriteRequestTest, DecodesWithTheGeneratedParser) {
  std::vector<SeriesPoints> series;
  series.push_back(
      {MakeSeries({{"__name__", "k6_http_reqs_total"}, {"status", "200"}, {"method", "GET"}}),
       {{1700000000000, 42.0}, {1700000003000, 57.5}}});
  series.push_back({MakeSeries({{"__name__", "k6_vus"}}), {{1700000003000, -3.25}}});
  series.push_back({MakeSeries({{"__name__", "k6_zero"}}), {{0, 0.0}}});

  const prometheus::WriteRequest request = Decode(EncodeWriteRequest(series));

  ASSERT_EQ(request.timeseries_size(), 3);
  const prometheus::TimeSeries& first = request.timeseries(0);
  ASSERT_EQ(first.labels_size(), 3);
  EXPECT_EQ(first.labels(0).name(), "__name__");
  EXPECT_EQ(first.labels(0).value(), "k6_http_reqs_total");
  EXPECT_EQ(first.labels(1).name(), "method");
  EXPECT_EQ(first.labels(1).value(), "GET");
  EXPECT_EQ(first.labels(2).name(), "status");
  EXPECT_EQ(first.labels(2).value(), "200");
  ASSERT_EQ(first.samples_size(), 2);
  EXPECT_EQ(first.samples(0).timestamp(), 1700000000000);
  EXPECT_EQ(first.samples(0).value(), 42.0);
  EXPECT_EQ(first.samples(1).timestamp(), 1700000003000);
  EXPECT_EQ(first.samples(1).value(), 57.5);

  const prometheus::TimeSeries& second = request.timeseries(1);
  ASSERT_EQ(second.labels_size(), 1);
  EXPECT_EQ(second.labels(0).value(), "k6_vus");
  ASSERT_EQ(second.samples_size(), 1);
  EXPECT_EQ(second.samples(0).timestamp(), 1700000003000);
  EXPECT_EQ(second.samples(0).value(), -3.25);

  const prometheus::TimeSeries& third = request.timeseries(2);
  ASSERT_EQ(third.samples_size(), 1);
  EXPECT_EQ(third.samples(0).timestamp(), 0);
  EXPECT_EQ(third.samples(0).value(), 0.0);
}

TEST(EncodeWriteRequestTest, MatchesTheGeneratedSerializerByteForByte) {
  // The generated code omits zero-valued fields, so compare on non-zero values only.
  std::vector<SeriesPoints> series;
  series.push_back({MakeSeries({{"__name__", "m"}, {"a", "b"}}), {{5, 1.5}, {300, 2.5}}});
  series.push_back({MakeSeries({{"__name__", "n"}}), {{1700000000123, 1e300}}});

  prometheus::WriteRequest expected;
  prometheus::TimeSeries* ts = expected.add_timeseries();
  prometheus::Label* label = ts->add_labels();
  label->set_name("__name__");
  label->set_value("m");
  label = ts->add_labels();
  label->set_name("a");
  label->set_value("b");
  prometheus::Sample* sample = ts->add_samples();
  sample->set_value(1.5);
  sample->set_timestamp(5);
  sample = ts->add_samples();
  sample->set_value(2.5);
  sample->set_timestamp(300);
  ts = expected.add_timeseries();
  label = ts->add_labels();
  label->set_name("__name__");
  label->set_value("n");
  sample = ts->add_samples();
  sample->set_value(1e300);
  sample->set_timestamp(1700000000123);

  EXPECT_EQ(EncodeWriteRequest(series), expected.SerializeAsString());
}

TEST(EncodeWriteRequestTest, SpecialValuesKeepTheirBits) {
  std::vector<SeriesPoints> series;
  series.push_back({MakeSeries({{"__name__", "k6_vus"}}),
                    {{1000, StaleNaN()},
                     {2000, std::numeric_limits<double>::infinity()},
                     {3000, -0.0},
                     {-5, std::numeric_limits<double>::quiet_NaN()}}});

  const prometheus::WriteRequest request = Decode(EncodeWriteRequest(series));

  ASSERT_EQ(request.timeseries_size(), 1);
  ASSERT_EQ(request.timeseries(0).samples_size(), 4);
  EXPECT_EQ(Bits(request.timeseries(0).samples(0).value()), 0x7ff0000000000002ULL);
  EXPECT_TRUE(IsStaleNaN(request.timeseries(0).samples(0).value()));
  EXPECT_EQ(request.timeseries(0).samples(1).value(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(Bits(request.timeseries(0).samples(2).value()), 0x8000000000000000ULL);
  EXPECT_EQ(Bits(request.timeseries(0).samples(3).value()),
            Bits(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_EQ(request.timeseries(0).samples(3).timestamp(), -5);
}

TEST(EncodeWriteRequestTest, EmptyInputGivesAnEmptyRequest) {
  EXPECT_EQ(EncodeWriteRequest({}), "");
  std::vector<SeriesPoints> no_points;
  no_points.push_back({MakeSeries({{"__name__", "k6_vus"}}), {}});
  EXPECT_EQ(EncodeWriteRequest(no_points), "");
  EXPECT_EQ(Decode("").timeseries_size(), 0);
}

TEST(EncodeWriteRequestTest, KnownBytesForOneSample) {
  // TimeSeries{labels: {__name__: "m"}, samples: {value: 1.0, timestamp: 1}}, by hand:
  // label: 0a 0d | 0a 08 "__name__" 12 01 "m"  (15 bytes)
  // sample: 12 0b | 09 <1.0 as little-endian fixed64> 10 01  (13 bytes)
  // series: 0a 1c (28 bytes follow)
  std::vector<SeriesPoints> series;
  series.push_back({MakeSeries({{"__name__", "m"}}), {{1, 1.0}}});
  const std::string expected_labels = std::string("\x0a\x0d\x0a\x08__name__\x12\x01m", 15);
  const std::string expected_sample =
      std::string("\x12\x0b\x09\x00\x00\x00\x00\x00\x00\xf0\x3f\x10\x01", 13);
  const std::string expected_series =
      std::string("\x0a\x1c", 2) + expected_labels + expected_sample;
  EXPECT_EQ(EncodeWriteRequest(series), expected_series);
}

TEST(SnappyTest, RoundTrips) {
  std::string raw;
  for (int i = 0; i < 10000; ++i) raw += "k6_http_req_duration_p95{method=\"GET\"} ";
  absl::StatusOr<std::string> compressed = SnappyCompress(raw);
  ASSERT_TRUE(compressed.ok()) << compressed.status();
  EXPECT_LT(compressed->size(), raw.size() / 10);
  absl::StatusOr<std::string> back = SnappyUncompress(*compressed);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, raw);
}

TEST(SnappyTest, EmptyInput) {
  absl::StatusOr<std::string> compressed = SnappyCompress("");
  ASSERT_TRUE(compressed.ok());
  // The block format of nothing: a single varint 0 for the length.
  EXPECT_EQ(*compressed, std::string("\x00", 1));
  absl::StatusOr<std::string> back = SnappyUncompress(*compressed);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, "");
}

TEST(SnappyTest, KnownBlockFormatBytes) {
  // Length 3 as a varint, then a literal tag for 3 bytes ((3-1) << 2), then the bytes.
  absl::StatusOr<std::string> compressed = SnappyCompress("abc");
  ASSERT_TRUE(compressed.ok());
  EXPECT_EQ(*compressed, std::string("\x03\x08"
                                     "abc",
                                     5));
}

TEST(SnappyTest, RejectsCorruptAndOversizedInput) {
  EXPECT_FALSE(SnappyUncompress("\xff\xff\xff\xff\xff\xff").ok());
  EXPECT_FALSE(SnappyUncompress(std::string("\x05\x08"
                                            "ab",
                                            4))
                   .ok());
  absl::StatusOr<std::string> compressed = SnappyCompress(std::string(1000, 'x'));
  ASSERT_TRUE(compressed.ok());
  absl::StatusOr<std::string> limited = SnappyUncompress(*compressed, 999);
  EXPECT_FALSE(limited.ok());
  EXPECT_EQ(limited.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rwexport
