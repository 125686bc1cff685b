// EncodeSelfDescribingBatch (lib/ingest/batch_encoder.h): what DecodeSampleBatch reads back
// from it is the batch that was encoded, as the WAL's replay of an influx write needs.
#include "lib/ingest/batch_encoder.h"

#include <string>

#include "gtest/gtest.h"
#include "lib/ingest/line_batch.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace {

TEST(BatchEncoderTest, InfluxLinesRoundTripThroughTheEncoding) {
  LineBatchBuilder lines;
  LineBatchOptions options;
  options.now_ns = 1700000000123456789;
  lines.Build(
      "http_req_duration,method=GET,status=200 value=12.5 1700000000000000001\n"
      "http_reqs,method=GET,status=200 value=1\n"
      "vus value=-3 1700000000000000002\n",
      options);
  ASSERT_EQ(lines.batch().samples.size(), 3u);
  std::string bytes;
  EncodeSelfDescribingBatch(lines.batch(), &bytes);

  // Generated code agrees with the encoding.
  v1::SampleBatch parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  ASSERT_EQ(parsed.samples_size(), 3);
  EXPECT_EQ(parsed.samples(0).metric(), "http_req_duration");
  EXPECT_EQ(parsed.samples(0).time_unix_nano(), 1700000000000000001);
  EXPECT_EQ(parsed.samples(0).value(), 12.5);
  ASSERT_EQ(parsed.samples(0).tags_size(), 2);
  EXPECT_EQ(parsed.samples(0).tags(1).key(), "status");
  EXPECT_EQ(parsed.samples(0).tags(1).value(), "200");
  EXPECT_EQ(parsed.samples(1).time_unix_nano(), 1700000000123456789);
  EXPECT_EQ(parsed.samples(2).value(), -3);
  EXPECT_EQ(parsed.samples(2).tags_size(), 0);

  // And so does the hot-path decoder, view for view.
  DecodedBatch decoded;
  ASSERT_TRUE(DecodeSampleBatch(bytes, &decoded).ok());
  ASSERT_EQ(decoded.samples.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const RawSample& a = lines.batch().samples[i];
    const RawSample& b = decoded.samples[i];
    EXPECT_EQ(a.metric, b.metric) << i;
    EXPECT_EQ(a.tags, b.tags) << i;
    EXPECT_EQ(a.time_unix_nano, b.time_unix_nano) << i;
    EXPECT_EQ(a.value, b.value) << i;
  }
}

}  // namespace
}  // namespace rwexport
