#include "lib/config/selector.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using Tags = std::vector<std::pair<std::string, std::string>>;

MetricSelector MustParse(absl::string_view text) {
  absl::StatusOr<MetricSelector> selector = MetricSelector::Parse(text);
  EXPECT_TRUE(selector.ok()) << text << ": " << selector.status();
  return selector.ok() ? *std::move(selector) : *MetricSelector::Parse("unparseable");
}

// Asserts that `text` fails to parse with InvalidArgument and a message containing `want`.
void ExpectError(absl::string_view text, absl::string_view want) {
  absl::StatusOr<MetricSelector> selector = MetricSelector::Parse(text);
  ASSERT_FALSE(selector.ok()) << text << " parsed as " << selector->ToString();
  EXPECT_EQ(selector.status().code(), absl::StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(std::string(selector.status().message()), HasSubstr(std::string(want))) << text;
}

bool Matches(const MetricSelector& selector, const Tags& tags) { return selector.Matches(tags); }

TEST(FindTagTest, FindsKeyInAnyOrder) {
  Tags tags = {{"method", "GET"}, {"status", "200"}};
  ASSERT_NE(FindTag(tags, "status"), nullptr);
  EXPECT_EQ(*FindTag(tags, "status"), "200");
  EXPECT_EQ(*FindTag(tags, "method"), "GET");
  EXPECT_EQ(FindTag(tags, "url"), nullptr);
  EXPECT_EQ(FindTag(Tags{}, "url"), nullptr);
}

TEST(SelectorParseTest, PlainMetric) {
  MetricSelector s = MustParse("http_req_duration");
  EXPECT_EQ(s.metric(), "http_req_duration");
  EXPECT_FALSE(s.has_matchers());
  EXPECT_EQ(s.ToString(), "http_req_duration");
  EXPECT_TRUE(Matches(s, {}));
  EXPECT_TRUE(Matches(s, {{"status", "500"}}));
}

TEST(SelectorParseTest, SurroundingWhitespaceIsTrimmed) {
  MetricSelector s = MustParse("  vus \t");
  EXPECT_EQ(s.metric(), "vus");
  EXPECT_EQ(s.ToString(), "vus");
}

TEST(SelectorParseTest, EmptyBracesMeanNoMatchers) {
  MetricSelector s = MustParse("http_reqs{}");
  EXPECT_EQ(s.metric(), "http_reqs");
  EXPECT_FALSE(s.has_matchers());
  EXPECT_EQ(s.ToString(), "http_reqs");
}

TEST(SelectorParseTest, TwoMatchers) {
  MetricSelector s = MustParse(R"(http_req_duration{status=~"2..",method!="OPTIONS"})");
  EXPECT_EQ(s.metric(), "http_req_duration");
  ASSERT_TRUE(s.has_matchers());
  ASSERT_EQ(s.matchers().size(), 2u);
  EXPECT_EQ(s.matchers()[0].tag, "status");
  EXPECT_EQ(s.matchers()[0].op, MatchOp::kRegexMatch);
  EXPECT_EQ(s.matchers()[0].value, "2..");
  EXPECT_EQ(s.matchers()[1].tag, "method");
  EXPECT_EQ(s.matchers()[1].op, MatchOp::kNotEqual);
  EXPECT_EQ(s.matchers()[1].value, "OPTIONS");
  EXPECT_EQ(s.ToString(), R"(http_req_duration{status=~"2..",method!="OPTIONS"})");
}

TEST(SelectorParseTest, ValueWithSpaces) {
  MetricSelector s = MustParse(R"(checks{check="login ok"})");
  EXPECT_EQ(s.metric(), "checks");
  ASSERT_EQ(s.matchers().size(), 1u);
  EXPECT_EQ(s.matchers()[0].value, "login ok");
  EXPECT_TRUE(Matches(s, {{"check", "login ok"}}));
  EXPECT_FALSE(Matches(s, {{"check", "login"}}));
}

TEST(SelectorParseTest, WhitespaceAroundTokensAndTrailingComma) {
  MetricSelector s = MustParse(" http_reqs { status = \"200\" , method !~ \"GET|HEAD\" , } ");
  EXPECT_EQ(s.metric(), "http_reqs");
  ASSERT_EQ(s.matchers().size(), 2u);
  EXPECT_EQ(s.matchers()[0].tag, "status");
  EXPECT_EQ(s.matchers()[0].op, MatchOp::kEqual);
  EXPECT_EQ(s.matchers()[1].tag, "method");
  EXPECT_EQ(s.matchers()[1].op, MatchOp::kRegexNoMatch);
  EXPECT_EQ(s.matchers()[1].value, "GET|HEAD");
  EXPECT_EQ(s.ToString(), R"(http_reqs{status="200",method!~"GET|HEAD"})");
}

TEST(SelectorParseTest, EscapesInDoubleQuotes) {
  MetricSelector s = MustParse(R"(checks{check="say \"hi\"\\ok\nnext\t\x41\u00e9"})");
  ASSERT_EQ(s.matchers().size(), 1u);
  EXPECT_EQ(s.matchers()[0].value, "say \"hi\"\\ok\nnext\tA\xC3\xA9");
  // The canonical form re-escapes and parses back to the same value.
  MetricSelector again = MustParse(s.ToString());
  ASSERT_EQ(again.matchers().size(), 1u);
  EXPECT_EQ(again.matchers()[0].value, s.matchers()[0].value);
}

TEST(SelectorParseTest, SingleQuotesAndBackticks) {
  MetricSelector s = MustParse(R"(checks{check='it\'s "fine"', name=`C:\path\n`})");
  ASSERT_EQ(s.matchers().size(), 2u);
  EXPECT_EQ(s.matchers()[0].value, "it's \"fine\"");
  // Backticks are raw: no escape processing.
  EXPECT_EQ(s.matchers()[1].value, "C:\\path\\n");
  EXPECT_EQ(s.ToString(), R"(checks{check="it's \"fine\"",name="C:\\path\\n"})");
}

TEST(SelectorParseTest, QuotedAndDottedTagNames) {
  MetricSelector s = MustParse(R"(my_metric{"my tag"="a", x.y-z="b"})");
  ASSERT_EQ(s.matchers().size(), 2u);
  EXPECT_EQ(s.matchers()[0].tag, "my tag");
  EXPECT_EQ(s.matchers()[1].tag, "x.y-z");
  EXPECT_EQ(s.ToString(), R"(my_metric{"my tag"="a",x.y-z="b"})");
  EXPECT_TRUE(Matches(s, {{"x.y-z", "b"}, {"my tag", "a"}}));
}

TEST(SelectorParseTest, MetricNameIsNotValidatedHere) {
  // Naming rules are the validator's business (it skips such entries, it does not fail).
  MetricSelector s = MustParse("my-metric.name");
  EXPECT_EQ(s.metric(), "my-metric.name");
  MetricSelector no_name = MustParse(R"({status="200"})");
  EXPECT_EQ(no_name.metric(), "");
  EXPECT_TRUE(no_name.has_matchers());
}

TEST(SelectorParseTest, ParseOfToStringIsIdentity) {
  for (absl::string_view text :
       {R"(a{b="c"})", R"(a{b!="",c=~".*",d!~"x|y"})", R"(http_reqs{"we\"ird"="\\"})"}) {
    MetricSelector s = MustParse(text);
    EXPECT_EQ(MustParse(s.ToString()).ToString(), s.ToString()) << text;
    EXPECT_EQ(s.ToString(), text);
  }
}

TEST(SelectorErrorTest, UnterminatedString) {
  // The opening quote is at byte 26: 17 (name) + 1 ({) + 6 (status) + 2 (=~).
  ExpectError(R"(http_req_duration{status=~"2..)", "unterminated string at offset 26");
  ExpectError(R"(a{b='x})", "unterminated string at offset 4");
  ExpectError("a{b=`x}", "unterminated string at offset 4");
  ExpectError(R"(a{b="x\)", "unterminated string at offset 4");
}

TEST(SelectorErrorTest, InvalidRegexNamesRegexAndTag) {
  ExpectError(R"(http_req_duration{status=~"2(.."})", "invalid regex \"2(..\" for tag status");
  ExpectError(R"(http_req_duration{status=~"2(.."})", "missing )");
  ExpectError(R"(a{b!~"[z-a]"})", "invalid regex \"[z-a]\" for tag b");
}

TEST(SelectorErrorTest, UnknownOperator) {
  ExpectError(R"(a{b=="c"})", "unknown operator \"==\" (expected =, !=, =~ or !~) at offset 3");
  ExpectError(R"(a{b>"c"})", "unknown operator \">\"");
  ExpectError(R"(a{b~="c"})", "unknown operator \"~=\"");
  ExpectError(R"(a{b "c"})", "expected an operator (=, !=, =~, !~) after tag b");
}

TEST(SelectorErrorTest, StructuralErrors) {
  ExpectError(R"(a{b="c")", "missing '}' to close the selector opened at offset 1");
  ExpectError(R"(a{b="c" c="d"})", "expected ',' or '}', found 'c' at offset 8");
  ExpectError(R"(a{b="c"} extra)", "unexpected text after '}' at offset 9");
  ExpectError(R"(a{b="c"}})", "unexpected text after '}' at offset 8");
  ExpectError(R"(a{="c"})", "expected a tag name, found '=' at offset 2");
  ExpectError(R"(a{,})", "expected a tag name, found ',' at offset 2");
  ExpectError(R"(a{b=c})", "expected a quoted value for tag b, found 'c' at offset 4");
  ExpectError(R"(a{b=})", "expected a quoted value for tag b, found '}' at offset 4");
  ExpectError(R"(a{b="c",,})", "expected a tag name, found ',' at offset 8");
  ExpectError(R"(a{""="c"})", "empty tag name at offset 2");
  ExpectError("a}", "unexpected '}' at offset 1");
  ExpectError(R"(a{b="\q"})", "unknown escape sequence \\q at offset 5");
  ExpectError(R"(a{b="\x4"})", "invalid \\x escape");
}

TEST(SelectorMatchTest, RegexIsFullyAnchored) {
  MetricSelector s = MustParse(R"(http_reqs{status=~"2.."})");
  EXPECT_TRUE(Matches(s, {{"status", "200"}}));
  EXPECT_TRUE(Matches(s, {{"status", "299"}}));
  EXPECT_FALSE(Matches(s, {{"status", "1200"}}));
  EXPECT_FALSE(Matches(s, {{"status", "2000"}}));
  EXPECT_FALSE(Matches(s, {{"status", "20"}}));
  EXPECT_FALSE(Matches(s, {{"status", "500"}}));
  EXPECT_FALSE(Matches(s, {}));
}

TEST(SelectorMatchTest, AlternationIsAnchoredAsAWhole) {
  // Textual ^a|b$ would accept "ax" and "xb"; PromQL's ^(?:a|b)$ does not.
  MetricSelector s = MustParse(R"(m{t=~"a|b"})");
  EXPECT_TRUE(Matches(s, {{"t", "a"}}));
  EXPECT_TRUE(Matches(s, {{"t", "b"}}));
  EXPECT_FALSE(Matches(s, {{"t", "ax"}}));
  EXPECT_FALSE(Matches(s, {{"t", "xb"}}));
}

TEST(SelectorMatchTest, NegativeOperators) {
  MetricSelector not_equal = MustParse(R"(m{method!="OPTIONS"})");
  EXPECT_TRUE(Matches(not_equal, {{"method", "GET"}}));
  EXPECT_FALSE(Matches(not_equal, {{"method", "OPTIONS"}}));
  EXPECT_TRUE(Matches(not_equal, {}));  // Missing reads as "", which is not "OPTIONS".

  MetricSelector not_regex = MustParse(R"(m{status!~"5.."})");
  EXPECT_TRUE(Matches(not_regex, {{"status", "200"}}));
  EXPECT_FALSE(Matches(not_regex, {{"status", "503"}}));
  EXPECT_TRUE(Matches(not_regex, {{"status", "5030"}}));  // Anchored: "5030" is not 5..
  EXPECT_TRUE(Matches(not_regex, {}));
}

TEST(SelectorMatchTest, MissingTagMatchesEmptyString) {
  MetricSelector missing = MustParse(R"(m{status=""})");
  EXPECT_TRUE(Matches(missing, {}));
  EXPECT_TRUE(Matches(missing, {{"method", "GET"}}));
  EXPECT_TRUE(Matches(missing, {{"status", ""}}));
  EXPECT_FALSE(Matches(missing, {{"status", "200"}}));

  MetricSelector present = MustParse(R"(m{status!=""})");
  EXPECT_FALSE(Matches(present, {}));
  EXPECT_FALSE(Matches(present, {{"method", "GET"}}));
  EXPECT_TRUE(Matches(present, {{"status", "200"}}));

  MetricSelector maybe = MustParse(R"(m{status=~"2..|"})");
  EXPECT_TRUE(Matches(maybe, {}));
  EXPECT_TRUE(Matches(maybe, {{"status", "201"}}));
  EXPECT_FALSE(Matches(maybe, {{"status", "404"}}));

  MetricSelector equal = MustParse(R"(m{status="200"})");
  EXPECT_FALSE(Matches(equal, {}));
}

TEST(SelectorMatchTest, AllMatchersMustPass) {
  MetricSelector s = MustParse(R"(http_req_duration{status=~"2..",method!="OPTIONS"})");
  EXPECT_TRUE(Matches(s, {{"method", "GET"}, {"status", "200"}}));
  EXPECT_TRUE(Matches(s, {{"status", "204"}, {"url", "x"}, {"method", "POST"}}));
  EXPECT_FALSE(Matches(s, {{"method", "OPTIONS"}, {"status", "200"}}));
  EXPECT_FALSE(Matches(s, {{"method", "GET"}, {"status", "404"}}));
  EXPECT_FALSE(Matches(s, {{"method", "GET"}}));
}

TEST(SelectorMatchTest, CopiesShareRegexesAndBehaveAlike) {
  MetricSelector original = MustParse(R"(m{status=~"2.."})");
  MetricSelector copy = original;
  ASSERT_EQ(copy.matchers().size(), 1u);
  EXPECT_EQ(copy.matchers()[0].regex.get(), original.matchers()[0].regex.get());
  EXPECT_TRUE(Matches(copy, {{"status", "200"}}));
  EXPECT_FALSE(Matches(copy, {{"status", "1200"}}));
}

}  // namespace
}  // namespace rwexport
