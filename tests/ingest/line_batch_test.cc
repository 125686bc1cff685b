#include "lib/ingest/line_batch.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using Tags = std::vector<std::pair<std::string, std::string>>;

Tags TagsOf(const RawSample& sample) {
  std::vector<RawTag> raw;
  EXPECT_TRUE(ParseTags(sample.tags, &raw).ok());
  Tags out;
  for (const auto& [k, v] : raw) out.emplace_back(std::string(k), std::string(v));
  return out;
}

std::map<std::string, uint64_t> Counts(const Rejections& r) {
  std::map<std::string, uint64_t> out;
  for (const auto& [reason, c] : r) out[reason] = c.count;
  return out;
}

TEST(LineBatchTest, K6LinesBecomeSamplesWithTheirStringFieldsAsTags) {
  const std::string body =
      "http_reqs,method=GET,status=200 iter=\"3\",url=\"http://x/a?b=1\",value=1,vu=\"2\" 1000\n"
      "http_req_duration,method=GET,status=200 "
      "iter=\"3\",url=\"http://x/a?b=1\",value=12.5,vu=\"2\" 1000\n"
      "http_reqs,method=GET,status=500 url=\"http://x/a?b=1\",value=1 2000\n"
      "\n# a comment\n"
      "vus value=3i 3000";
  LineBatchBuilder builder;
  builder.Build(body, LineBatchOptions());
  EXPECT_EQ(builder.lines(), 4u);
  EXPECT_EQ(builder.bad_lines(), 0u);
  EXPECT_TRUE(builder.rejections().empty());
  const std::vector<RawSample>& samples = builder.batch().samples;
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(samples[0].metric, "http_reqs");
  EXPECT_EQ(TagsOf(samples[0]), (Tags{{"method", "GET"},
                                      {"status", "200"},
                                      {"iter", "3"},
                                      {"url", "http://x/a?b=1"},
                                      {"vu", "2"}}));
  EXPECT_EQ(samples[0].time_unix_nano, 1000);
  EXPECT_EQ(samples[0].value, 1);
  EXPECT_EQ(samples[1].metric, "http_req_duration");
  EXPECT_EQ(samples[1].value, 12.5);
  // Same tags as the sample before: the same run; other tags: the next.
  EXPECT_EQ(samples[1].tags_run, samples[0].tags_run);
  EXPECT_EQ(samples[2].tags_run, samples[1].tags_run + 1);
  EXPECT_EQ(samples[3].metric, "vus");
  EXPECT_EQ(TagsOf(samples[3]), Tags{});
  EXPECT_EQ(samples[3].value, 3);
}

// A line with the tag section of the line before reuses its tags; the string fields still
// count, and a line that was not a sample, or escaped tags, change nothing in the result.
TEST(LineBatchTest, RepeatedTagSectionsGiveTheSameTags) {
  const std::string body =
      "a,t=1 url=\"/x\",value=1 1\n"
      "b,t=1 url=\"/x\",value=2 1\n"
      "c,t=1 url=\"/y\",value=3 1\n"
      "d,t=1 url=\"/y\",value=4 1\n"
      "bad,t=1 value=\"s\" 1\n"
      "e,t=1 url=\"/y\",value=5 1\n"
      "f,t\\ 2=1 value=6 1\n"
      "g,t\\ 2=1 value=7 1\n"
      "h,t=1 value=8 1\n";
  LineBatchBuilder builder;
  builder.Build(body, LineBatchOptions());
  const std::vector<RawSample>& s = builder.batch().samples;
  ASSERT_EQ(s.size(), 8u);
  EXPECT_EQ(TagsOf(s[0]), (Tags{{"t", "1"}, {"url", "/x"}}));
  EXPECT_EQ(TagsOf(s[1]), (Tags{{"t", "1"}, {"url", "/x"}}));
  EXPECT_EQ(TagsOf(s[2]), (Tags{{"t", "1"}, {"url", "/y"}}));
  EXPECT_EQ(TagsOf(s[4]), (Tags{{"t", "1"}, {"url", "/y"}}));
  EXPECT_EQ(TagsOf(s[5]), (Tags{{"t 2", "1"}}));
  EXPECT_EQ(TagsOf(s[6]), (Tags{{"t 2", "1"}}));
  EXPECT_EQ(TagsOf(s[7]), (Tags{{"t", "1"}}));
  const std::vector<uint32_t> runs = {s[0].tags_run, s[1].tags_run, s[2].tags_run, s[3].tags_run,
                                      s[4].tags_run, s[5].tags_run, s[6].tags_run, s[7].tags_run};
  EXPECT_EQ(runs, (std::vector<uint32_t>{0, 0, 1, 1, 1, 2, 2, 3}));
}

TEST(LineBatchTest, PrecisionAndDefaultTimestamp) {
  LineBatchOptions options;
  options.precision_ns = 1000000;  // ms
  options.now_ns = 777;
  LineBatchBuilder builder;
  builder.Build("a value=1 5\nb value=2", options);
  ASSERT_EQ(builder.batch().samples.size(), 2u);
  EXPECT_EQ(builder.batch().samples[0].time_unix_nano, 5000000);
  EXPECT_EQ(builder.batch().samples[1].time_unix_nano, 777);
}

TEST(LineBatchTest, EscapedNamesOutliveTheNextLine) {
  LineBatchBuilder builder;
  builder.Build("my\\ metric,t\\=1=a\\ b value=1 1\nother value=2 2\n", LineBatchOptions());
  ASSERT_EQ(builder.batch().samples.size(), 2u);
  EXPECT_EQ(builder.batch().samples[0].metric, "my metric");
  EXPECT_EQ(TagsOf(builder.batch().samples[0]), (Tags{{"t=1", "a b"}}));
  EXPECT_EQ(builder.batch().samples[1].metric, "other");
}

// Acceptance (issue 11, 3): every kind of bad line is counted by reason, the first is named,
// the good lines around them are kept.
TEST(LineBatchTest, BadLinesAreCountedAndGoodOnesKept) {
  std::string body = "good value=1 1\n";
  body += "bad,t value=1 1\n";                                  // 2: missing tag value
  body += "nofield,t=1 x=1 1\n";                                // 3: missing_value
  body += "str value=\"12\" 1\n";                               // 4: invalid_value (string)
  body += "boolean value=true 1\n";                             // 5: invalid_value (boolean)
  body += "nan value=NaN 1\n";                                  // 6: invalid number
  body += "m,t=1 value=1 x\n";                                  // 7: bad timestamp
  body += "m value=\"open 1\n";                                 // 8: unbalanced quotes
  body += std::string("bad\xff utf8 value=1 1\n");              // 9: invalid UTF-8
  body += "huge value=" + std::string(10 << 20, '1') + " 1\n";  // 10: 10 MB
  body += "also_good,t=x value=2 2";
  LineBatchBuilder builder;
  builder.Build(body, LineBatchOptions());
  EXPECT_EQ(builder.lines(), 11u);
  EXPECT_EQ(builder.bad_lines(), 9u);
  ASSERT_EQ(builder.batch().samples.size(), 2u);
  EXPECT_EQ(builder.batch().samples[0].metric, "good");
  EXPECT_EQ(builder.batch().samples[1].metric, "also_good");
  EXPECT_EQ(
      Counts(builder.rejections()),
      (std::map<std::string, uint64_t>{
          {"invalid_line", 5}, {"invalid_value", 2}, {"line_too_long", 1}, {"missing_value", 1}}));
  EXPECT_EQ(builder.rejections().at("invalid_line").example, "line 2: missing tag value");
  EXPECT_EQ(builder.rejections().at("missing_value").example, "line 3: no field \"value\"");
  EXPECT_EQ(builder.rejections().at("invalid_value").example,
            "line 4: field \"value\" is a string, not a number");
  EXPECT_EQ(builder.rejections().at("line_too_long").example,
            "line 10: line too long (10485773 bytes; at most 65536)");
  ASSERT_TRUE(builder.first_bad_line().has_value());
  EXPECT_EQ(builder.first_bad_line()->number, 2u);
  EXPECT_EQ(builder.first_bad_line()->excerpt, "bad,t value=1 1");
  EXPECT_EQ(builder.first_bad_line()->reason, "missing tag value");
}

}  // namespace
}  // namespace rwexport
