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
#include "tests/testing/series.h"

namespace rwexport {
namespace {

uint64_t Bits(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

const Series* MakeSeries(std::vector<Label> labels) { return TestSeries(std::move(labels)); }

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

// A histogram point with every field set, negative schema and offsets included.
HistogramPoint FullHistogram() {
  HistogramPoint h;
  h.timestamp_ms = 1700000003000;
  h.count = 12;
  h.sum = 3.75;
  h.schema = -2;
  h.zero_threshold = 0x1p-128;
  h.zero_count = 2;
  h.reset_hint = HistogramPoint::ResetHint::kGauge;
  h.negative_spans = {{-3, 1}};
  h.negative_deltas = {1};
  h.positive_spans = {{-5, 2}, {3, 3}};
  h.positive_deltas = {2, -1, 4, -4, 3};  // counts 2, 1, 5, 1, 4
  return h;
}

TEST(EncodeWriteRequestTest, HistogramsDecodeWithTheGeneratedParser) {
  std::vector<SeriesPoints> series(2);
  series[0].series = MakeSeries({{"__name__", "k6_http_req_duration_seconds"}, {"a", "b"}});
  series[0].histograms.push_back(FullHistogram());
  series[0].histograms.push_back(StaleHistogramPoint(1700000003001));
  series[1].series = MakeSeries({{"__name__", "k6_vus"}});
  series[1].points.push_back({1700000003000, 4});

  const prometheus::WriteRequest request = Decode(EncodeWriteRequest(series));

  ASSERT_EQ(request.timeseries_size(), 2);
  const prometheus::TimeSeries& ts = request.timeseries(0);
  ASSERT_EQ(ts.labels_size(), 2);
  EXPECT_EQ(ts.labels(0).value(), "k6_http_req_duration_seconds");
  EXPECT_EQ(ts.samples_size(), 0);
  ASSERT_EQ(ts.histograms_size(), 2);
  const prometheus::Histogram& h = ts.histograms(0);
  EXPECT_EQ(h.count_case(), prometheus::Histogram::kCountInt);
  EXPECT_EQ(h.count_int(), 12u);
  EXPECT_EQ(h.sum(), 3.75);
  EXPECT_EQ(h.schema(), -2);
  EXPECT_EQ(h.zero_threshold(), 0x1p-128);
  EXPECT_EQ(h.zero_count_case(), prometheus::Histogram::kZeroCountInt);
  EXPECT_EQ(h.zero_count_int(), 2u);
  ASSERT_EQ(h.negative_spans_size(), 1);
  EXPECT_EQ(h.negative_spans(0).offset(), -3);
  EXPECT_EQ(h.negative_spans(0).length(), 1u);
  ASSERT_EQ(h.negative_deltas_size(), 1);
  EXPECT_EQ(h.negative_deltas(0), 1);
  ASSERT_EQ(h.positive_spans_size(), 2);
  EXPECT_EQ(h.positive_spans(0).offset(), -5);
  EXPECT_EQ(h.positive_spans(0).length(), 2u);
  EXPECT_EQ(h.positive_spans(1).offset(), 3);
  EXPECT_EQ(h.positive_spans(1).length(), 3u);
  ASSERT_EQ(h.positive_deltas_size(), 5);
  const int64_t deltas[] = {2, -1, 4, -4, 3};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(h.positive_deltas(i), deltas[i]) << i;
  EXPECT_EQ(h.reset_hint(), prometheus::Histogram::GAUGE);
  EXPECT_EQ(h.timestamp(), 1700000003000);

  // The stale marker: no observations, a StaleNaN sum, integer (zero) counts.
  const prometheus::Histogram& stale = ts.histograms(1);
  EXPECT_EQ(stale.count_case(), prometheus::Histogram::kCountInt);
  EXPECT_EQ(stale.count_int(), 0u);
  EXPECT_EQ(stale.zero_count_case(), prometheus::Histogram::kZeroCountInt);
  EXPECT_EQ(Bits(stale.sum()), 0x7ff0000000000002ULL);
  EXPECT_EQ(stale.positive_spans_size(), 0);
  EXPECT_EQ(stale.timestamp(), 1700000003001);

  ASSERT_EQ(request.timeseries(1).samples_size(), 1);
  EXPECT_EQ(request.timeseries(1).histograms_size(), 0);
  EXPECT_EQ(request.timeseries(1).samples(0).value(), 4);
}

TEST(EncodeWriteRequestTest, HistogramsMatchTheGeneratedSerializerByteForByte) {
  std::vector<SeriesPoints> series(1);
  series[0].series = MakeSeries({{"__name__", "h"}});
  series[0].histograms.push_back(FullHistogram());
  HistogramPoint large = FullHistogram();  // multi-byte varints and zigzag values
  large.timestamp_ms = -1;
  large.count = uint64_t{1} << 40;
  large.schema = 7;
  large.positive_spans = {{-300000, 70000}};
  large.positive_deltas = {int64_t{1} << 40, -(int64_t{1} << 40), 64, -65};
  series[0].histograms.push_back(large);
  HistogramPoint minimal;  // defaults: only the oneof counts are written
  minimal.timestamp_ms = 7;
  series[0].histograms.push_back(minimal);

  prometheus::WriteRequest expected;
  prometheus::TimeSeries* ts = expected.add_timeseries();
  prometheus::Label* label = ts->add_labels();
  label->set_name("__name__");
  label->set_value("h");
  for (const HistogramPoint& p : series[0].histograms) {
    prometheus::Histogram* h = ts->add_histograms();
    h->set_count_int(p.count);
    h->set_sum(p.sum);
    h->set_schema(p.schema);
    h->set_zero_threshold(p.zero_threshold);
    h->set_zero_count_int(p.zero_count);
    for (const HistogramSpan& span : p.negative_spans) {
      prometheus::BucketSpan* s = h->add_negative_spans();
      s->set_offset(span.offset);
      s->set_length(span.length);
    }
    for (int64_t d : p.negative_deltas) h->add_negative_deltas(d);
    for (const HistogramSpan& span : p.positive_spans) {
      prometheus::BucketSpan* s = h->add_positive_spans();
      s->set_offset(span.offset);
      s->set_length(span.length);
    }
    for (int64_t d : p.positive_deltas) h->add_positive_deltas(d);
    h->set_reset_hint(static_cast<prometheus::Histogram::ResetHint>(p.reset_hint));
    h->set_timestamp(p.timestamp_ms);
  }
  EXPECT_EQ(EncodeWriteRequest(series), expected.SerializeAsString());
}

TEST(EncodeWriteRequestTest, KnownBytesForOneHistogram) {
  // Histogram{count_int: 1, schema: -1 (zigzag 1), zero_count_int: 0,
  //           positive_spans: [{offset: 1 (zigzag 2), length: 1}], positive_deltas: [1],
  //           timestamp: 2}:
  //   08 01 | 20 01 | 30 00 | 5a 04 08 02 10 01 | 62 01 02 | 78 02   (17 bytes)
  std::vector<SeriesPoints> series(1);
  series[0].series = MakeSeries({{"__name__", "m"}});
  HistogramPoint h;
  h.timestamp_ms = 2;
  h.count = 1;
  h.schema = -1;
  h.positive_spans = {{1, 1}};
  h.positive_deltas = {1};
  series[0].histograms.push_back(h);
  const std::string labels = std::string("\x0a\x0d\x0a\x08__name__\x12\x01m", 15);
  const std::string histogram = std::string(
      "\x22\x11\x08\x01\x20\x01\x30\x00\x5a\x04\x08\x02\x10\x01\x62\x01\x02\x78\x02", 19);
  EXPECT_EQ(EncodeWriteRequest(series), std::string("\x0a\x22", 2) + labels + histogram);
}

TEST(EncodeWriteRequestTest, EncodedSizesAddUpForHistogramSeries) {
  std::vector<SeriesPoints> series(1);
  series[0].series = MakeSeries({{"__name__", "k6_x_seconds"}, {"method", "GET"}});
  series[0].histograms = {FullHistogram(), StaleHistogramPoint(1700000003001)};
  const size_t total = EncodeWriteRequest(series).size();
  EXPECT_EQ(EncodedSeriesSize(series[0]), total);
  // Tag and length of the TimeSeries, its labels, then one Histogram field per point.
  const size_t inner = series[0].series->encoded_labels().size() +
                       EncodedHistogramSize(series[0].histograms[0]) +
                       EncodedHistogramSize(series[0].histograms[1]);
  EXPECT_EQ(total, 2 + inner);  // inner < 128: a one-byte length
  EXPECT_EQ(EncodedHistogramSize(StaleHistogramPoint(1)), 2u + 2 + 9 + 2 + 2);
}

TEST(PointBatchTest, CountsFloatAndHistogramPoints) {
  PointBatch batch;
  batch.series.resize(2);
  batch.series[0].points = {{1, 1.0}, {2, 2.0}};
  batch.series[1].histograms.push_back(StaleHistogramPoint(3));
  EXPECT_EQ(batch.series[0].size(), 2u);
  EXPECT_EQ(batch.series[1].size(), 1u);
  EXPECT_FALSE(batch.series[1].empty());
  EXPECT_EQ(batch.point_count(), 3u);
  EXPECT_TRUE(SeriesPoints().empty());
}

TEST(PointBatchTest, SlicesAndTimestampsCoverBothKinds) {
  SeriesPoints sp;
  sp.series = MakeSeries({{"__name__", "h"}});
  for (int64_t t : {10, 20, 30}) {
    HistogramPoint h;
    h.timestamp_ms = t;
    sp.histograms.push_back(h);
  }
  EXPECT_EQ(sp.min_timestamp_ms(), 10);
  EXPECT_EQ(sp.max_timestamp_ms(), 30);
  const SeriesPoints tail = sp.Slice(1, 3);
  EXPECT_EQ(tail.series, sp.series);
  ASSERT_EQ(tail.histograms.size(), 2u);
  EXPECT_EQ(tail.histograms[0].timestamp_ms, 20);
  EXPECT_TRUE(tail.points.empty());
  EXPECT_TRUE(sp.Slice(2, 2).empty());

  SeriesPoints floats;
  floats.points = {{5, 1.0}, {6, 2.0}, {7, 3.0}};
  EXPECT_EQ(floats.min_timestamp_ms(), 5);
  EXPECT_EQ(floats.max_timestamp_ms(), 7);
  const SeriesPoints middle = floats.Slice(1, 2);
  ASSERT_EQ(middle.points.size(), 1u);
  EXPECT_EQ(middle.points[0].timestamp_ms, 6);
  EXPECT_TRUE(middle.histograms.empty());
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
