#include "lib/ingest/line_protocol.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using Tags = std::vector<std::pair<std::string, std::string>>;

Tags TagsOf(const ParsedLine& line) {
  Tags out;
  for (const auto& [k, v] : line.tags) out.emplace_back(std::string(k), std::string(v));
  return out;
}

// Parses `text`; "" on success, else the parser's reason.
std::string Error(absl::string_view text, int64_t precision_ns = 1) {
  LineProtocolParser parser(precision_ns);
  ParsedLine line;
  const char* error = parser.Parse(text, 42, &line);
  return error == nullptr ? "" : error;
}

TEST(LineProtocolTest, ParsesTheLinesK6Writes) {
  LineProtocolParser parser;
  ParsedLine line;
  ASSERT_EQ(parser.Parse("http_req_duration,expected_response=true,method=POST,name=http://f:9501/"
                         "t,status=200 url=\"http://f:9501/t\",value=218.508 1730305221635558127",
                         0, &line),
            nullptr);
  EXPECT_EQ(line.measurement, "http_req_duration");
  EXPECT_EQ(TagsOf(line), (Tags{{"expected_response", "true"},
                                {"method", "POST"},
                                {"name", "http://f:9501/t"},
                                {"status", "200"}}));
  ASSERT_EQ(line.fields.size(), 2u);
  EXPECT_EQ(line.fields[0].key, "url");
  EXPECT_EQ(line.fields[0].type, LineField::Type::kString);
  EXPECT_EQ(line.fields[0].text, "http://f:9501/t");
  EXPECT_EQ(line.fields[1].key, "value");
  EXPECT_EQ(line.fields[1].type, LineField::Type::kFloat);
  EXPECT_EQ(line.fields[1].number, 218.508);
  EXPECT_TRUE(line.has_timestamp);
  EXPECT_EQ(line.timestamp_ns, 1730305221635558127);
}

TEST(LineProtocolTest, UnescapesPerTheSpec) {
  LineProtocolParser parser;
  ParsedLine line;
  // Measurement: comma and space; tag keys/values and field keys: comma, equals sign, space;
  // string values: double quote and backslash. Any other backslash stays.
  ASSERT_EQ(
      parser.Parse(
          R"(my\ metric\,x,ta\=g\ 1=v\,a\=l\ ue,path=C:\dir f\ k\=1="say \"hi\" \\ \n",value=1 5)",
          0, &line),
      nullptr);
  EXPECT_EQ(line.measurement, "my metric,x");
  EXPECT_EQ(TagsOf(line), (Tags{{"ta=g 1", "v,a=l ue"}, {"path", R"(C:\dir)"}}));
  ASSERT_EQ(line.fields.size(), 2u);
  EXPECT_EQ(line.fields[0].key, "f k=1");
  EXPECT_EQ(line.fields[0].text, R"(say "hi" \ \n)");
  EXPECT_EQ(line.timestamp_ns, 5);
}

TEST(LineProtocolTest, FieldTypes) {
  LineProtocolParser parser;
  ParsedLine line;
  ASSERT_EQ(parser.Parse("m a=-1.5e3,b=42i,c=7u,d=t,e=FALSE,f=\"\",g=.5", 99, &line), nullptr);
  ASSERT_EQ(line.fields.size(), 7u);
  EXPECT_EQ(line.fields[0].number, -1500);
  EXPECT_EQ(line.fields[1].type, LineField::Type::kInteger);
  EXPECT_EQ(line.fields[1].number, 42);
  EXPECT_EQ(line.fields[1].text, "42");
  EXPECT_EQ(line.fields[2].type, LineField::Type::kUnsigned);
  EXPECT_EQ(line.fields[3].type, LineField::Type::kBoolean);
  EXPECT_TRUE(line.fields[3].boolean);
  EXPECT_FALSE(line.fields[4].boolean);
  EXPECT_EQ(line.fields[5].type, LineField::Type::kString);
  EXPECT_EQ(line.fields[5].text, "");
  EXPECT_EQ(line.fields[6].number, 0.5);
  // No timestamp: the caller's now.
  EXPECT_FALSE(line.has_timestamp);
  EXPECT_EQ(line.timestamp_ns, 99);
}

TEST(LineProtocolTest, Precision) {
  EXPECT_EQ(LinePrecisionNanos(""), 1);
  EXPECT_EQ(LinePrecisionNanos("n"), 1);
  EXPECT_EQ(LinePrecisionNanos("u"), 1000);
  EXPECT_EQ(LinePrecisionNanos("ms"), 1000000);
  EXPECT_EQ(LinePrecisionNanos("s"), 1000000000);
  EXPECT_EQ(LinePrecisionNanos("h"), int64_t{3600} * 1000000000);
  EXPECT_EQ(LinePrecisionNanos("d"), 0);
  LineProtocolParser parser(1000000000);
  ParsedLine line;
  ASSERT_EQ(parser.Parse("m value=1 1700000000", 0, &line), nullptr);
  EXPECT_EQ(line.timestamp_ns, int64_t{1700000000} * 1000000000);
  EXPECT_EQ(Error("m value=1 99999999999999999", 1000000000), "bad timestamp");
}

// Every malformation class, with InfluxDB's words.
TEST(LineProtocolTest, Malformations) {
  EXPECT_EQ(Error(",t=1 value=1"), "missing measurement");
  EXPECT_EQ(Error("m,=1 value=1"), "missing tag key");
  EXPECT_EQ(Error("m,t value=1"), "missing tag value");
  EXPECT_EQ(Error("m,t= value=1"), "missing tag value");
  EXPECT_EQ(Error("m,t=a=b value=1"), "invalid tag format");
  EXPECT_EQ(Error("m"), "missing fields");
  EXPECT_EQ(Error("m,t=1"), "missing fields");
  EXPECT_EQ(Error("m ,value=1"), "missing field key");
  EXPECT_EQ(Error("m value=1,"), "missing field key");
  EXPECT_EQ(Error("m value"), "invalid field format");
  EXPECT_EQ(Error("m value="), "missing field value");
  EXPECT_EQ(Error("m value=,x=1"), "missing field value");
  EXPECT_EQ(Error("m value=1.2.3"), "invalid number");
  EXPECT_EQ(Error("m value=NaN"), "invalid number");
  EXPECT_EQ(Error("m value=-nan"), "invalid number");
  EXPECT_EQ(Error("m value=inf"), "invalid number");
  EXPECT_EQ(Error("m value=1e999"), "invalid number");
  EXPECT_EQ(Error("m value=12xi"), "invalid number");
  EXPECT_EQ(Error("m value=99999999999999999999i"), "invalid number");
  EXPECT_EQ(Error("m value=-1u"), "invalid number");
  EXPECT_EQ(Error("m value=tru"), "invalid boolean");
  EXPECT_EQ(Error("m value=\"open"), "unbalanced quotes");
  EXPECT_EQ(Error("m value=\"a\"b"), "invalid field format");
  EXPECT_EQ(Error("m value=1 12a"), "bad timestamp");
  EXPECT_EQ(Error("m value=1 1 2"), "bad timestamp");
  EXPECT_EQ(Error("m value=1 +5"), "bad timestamp");
  // Well-formed edge cases.
  EXPECT_EQ(Error("m value=1 -5"), "");
  EXPECT_EQ(Error("m value=1  5  "), "");
  EXPECT_EQ(Error("m value=1\r"), "");
  EXPECT_EQ(Error("  m value=1"), "");
}

TEST(LineProtocolTest, BlankAndCommentLines) {
  EXPECT_TRUE(LineProtocolParser::IsBlankOrComment(""));
  EXPECT_TRUE(LineProtocolParser::IsBlankOrComment("  \t\r"));
  EXPECT_TRUE(LineProtocolParser::IsBlankOrComment("# comment"));
  EXPECT_FALSE(LineProtocolParser::IsBlankOrComment("m value=1"));
}

}  // namespace
}  // namespace rwexport
