#include "lib/k6/results_reader.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Tags = std::vector<std::pair<std::string, std::string>>;

// Everything a read delivered, in order.
struct Collected {
  std::vector<K6Metric> metrics;
  std::vector<K6Sample> samples;
  std::vector<ReadError> errors;
  // Metric names declared before each sample (checks that items arrive in file order).
  std::vector<bool> declared_before;

  K6ResultsReader::Callbacks Callbacks() {
    K6ResultsReader::Callbacks callbacks;
    callbacks.on_metric = [this](const K6Metric& metric) {
      metrics.push_back(metric);
      declared_.insert(metric.name);
    };
    callbacks.on_sample = [this](K6Sample&& sample) {
      declared_before.push_back(declared_.count(sample.metric) > 0);
      samples.push_back(std::move(sample));
    };
    callbacks.on_error = [this](const ReadError& error) { errors.push_back(error); };
    return callbacks;
  }

 private:
  std::set<std::string> declared_;
};

struct Stats {
  int count = 0;
  double sum = 0;
  double min = INFINITY;
  double max = -INFINITY;
};

std::map<std::string, Stats> StatsByMetric(const std::vector<K6Sample>& samples) {
  std::map<std::string, Stats> stats;
  for (const K6Sample& sample : samples) {
    Stats& s = stats[sample.metric];
    ++s.count;
    s.sum += sample.value;
    s.min = std::min(s.min, sample.value);
    s.max = std::max(s.max, sample.value);
  }
  return stats;
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

std::string WriteTemp(const std::string& name, const std::string& content) {
  std::string path = TempPath(name);
  std::ofstream out(path, std::ios::binary);
  out << content;
  return path;
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The tags of the first http_reqs point of finance-run.json, as written there.
const Tags& FirstHttpReqTags() {
  static const Tags* tags = new Tags{{"expected_response", "true"},
                                     {"group", ""},
                                     {"method", "POST"},
                                     {"name", "http://finance:9501/transaction"},
                                     {"proto", "HTTP/1.1"},
                                     {"scenario", "default"},
                                     {"status", "200"},
                                     {"url", "http://finance:9501/transaction"}};
  return *tags;
}

// 2024-10-30T16:20:21Z: 20026 days after the epoch (`date -u -d @1730305221`).
constexpr int64_t kFirstSecond = 1730305221;

TEST(K6JsonReaderTest, ReadsTheRealFinanceRun) {
  Collected got;
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadJsonFile(K6TestdataFile("finance-run.json"), got.Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->lines, 818);
  EXPECT_EQ(stats->metrics, 16);
  EXPECT_EQ(stats->samples, 802);
  EXPECT_EQ(stats->errors, 0);
  ASSERT_EQ(got.metrics.size(), 16u);
  ASSERT_EQ(got.samples.size(), 802u);
  EXPECT_THAT(got.errors, IsEmpty());

  // Declarations, in file order, with the types and kinds k6 wrote.
  std::vector<std::string> names;
  for (const K6Metric& m : got.metrics) names.push_back(m.name);
  EXPECT_THAT(names, ElementsAre("http_reqs", "http_req_duration", "http_req_blocked",
                                 "http_req_connecting", "http_req_tls_handshaking",
                                 "http_req_sending", "http_req_waiting", "http_req_receiving",
                                 "http_req_failed", "checks", "vus", "vus_max", "data_sent",
                                 "data_received", "iteration_duration", "iterations"));
  auto find = [&](const std::string& name) {
    return *std::find_if(got.metrics.begin(), got.metrics.end(),
                         [&](const K6Metric& m) { return m.name == name; });
  };
  EXPECT_EQ(find("http_reqs").type, MetricType::kCounter);
  EXPECT_EQ(find("http_reqs").kind, ValueKind::kDefault);
  EXPECT_EQ(find("http_req_duration").type, MetricType::kTrend);
  EXPECT_EQ(find("http_req_duration").kind, ValueKind::kTime);
  EXPECT_EQ(find("checks").type, MetricType::kRate);
  EXPECT_EQ(find("vus").type, MetricType::kGauge);
  EXPECT_EQ(find("data_sent").type, MetricType::kCounter);
  EXPECT_EQ(find("data_sent").kind, ValueKind::kData);

  // Every point of this file follows its metric's declaration.
  EXPECT_EQ(std::count(got.declared_before.begin(), got.declared_before.end(), true), 802);

  // Reference values from shared/testdata/k6/SOURCES.md.
  std::map<std::string, Stats> by_metric = StatsByMetric(got.samples);
  EXPECT_EQ(by_metric["http_reqs"].sum, 60);
  EXPECT_EQ(by_metric["iterations"].sum, 20);
  EXPECT_EQ(by_metric["data_received"].sum, 42039);
  EXPECT_EQ(by_metric["data_sent"].sum, 15980);
  EXPECT_EQ(by_metric["checks"].count, 60);
  EXPECT_EQ(by_metric["checks"].sum, 60);
  EXPECT_EQ(by_metric["http_req_failed"].sum, 0);
  EXPECT_EQ(by_metric["vus"].count, 61);
  EXPECT_EQ(by_metric["http_req_duration"].count, 60);
  EXPECT_EQ(by_metric["http_req_duration"].min, 8.657042);
  EXPECT_EQ(by_metric["http_req_duration"].max, 218.508);

  const K6Sample& first = got.samples.front();
  EXPECT_EQ(first.metric, "http_reqs");
  EXPECT_EQ(first.value, 1);
  EXPECT_EQ(first.time_unix_nano, kFirstSecond * 1000000000 + 635558127);
  EXPECT_EQ(first.tags, FirstHttpReqTags());  // the empty "group" is kept

  // The first vus point has `"tags":{}`; it follows points with 8 tags.
  auto vus = std::find_if(got.samples.begin(), got.samples.end(),
                          [](const K6Sample& s) { return s.metric == "vus"; });
  ASSERT_NE(vus, got.samples.end());
  EXPECT_THAT(vus->tags, IsEmpty());
  EXPECT_EQ(vus->time_unix_nano, (kFirstSecond + 1) * 1000000000 + 271926002);

  const K6Sample& last = got.samples.back();
  EXPECT_EQ(last.metric, "iterations");
  EXPECT_EQ(last.time_unix_nano, (kFirstSecond + 61) * 1000000000 + 830903836);
  EXPECT_EQ(last.tags, (Tags{{"group", ""}, {"scenario", "default"}}));
}

TEST(K6CsvReaderTest, ReadsTheRealFinanceRunLikeTheJson) {
  Collected csv;
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadCsvFile(K6TestdataFile("finance-run.csv"), csv.Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->lines, 803);
  EXPECT_EQ(stats->metrics, 0);
  EXPECT_EQ(stats->samples, 802);
  EXPECT_EQ(stats->errors, 0);
  EXPECT_THAT(csv.metrics, IsEmpty());
  EXPECT_THAT(csv.errors, IsEmpty());
  ASSERT_EQ(csv.samples.size(), 802u);

  std::map<std::string, Stats> by_metric = StatsByMetric(csv.samples);
  EXPECT_EQ(by_metric["http_reqs"].sum, 60);
  EXPECT_EQ(by_metric["iterations"].sum, 20);
  EXPECT_EQ(by_metric["data_received"].sum, 42039);
  EXPECT_EQ(by_metric["data_sent"].sum, 15980);
  EXPECT_EQ(by_metric["http_req_duration"].count, 60);
  EXPECT_EQ(by_metric["http_req_duration"].min, 8.657042);
  EXPECT_EQ(by_metric["http_req_duration"].max, 218.508);

  const K6Sample& first = csv.samples.front();
  EXPECT_EQ(first.metric, "http_reqs");
  EXPECT_EQ(first.time_unix_nano, kFirstSecond * 1000000000);
  // Column order; the empty group cell is no tag.
  EXPECT_EQ(first.tags, (Tags{{"expected_response", "true"},
                              {"method", "POST"},
                              {"name", "http://finance:9501/transaction"},
                              {"proto", "HTTP/1.1"},
                              {"scenario", "default"},
                              {"status", "200"},
                              {"url", "http://finance:9501/transaction"}}));
  EXPECT_EQ(csv.samples.back().time_unix_nano, (kFirstSecond + 61) * 1000000000);

  // Row by row, the CSV holds the JSON's points: same metric, value (to the CSV's 6
  // decimals), time truncated to the second, and tags less the empty ones.
  Collected json;
  ASSERT_TRUE(
      K6ResultsReader::ReadJsonFile(K6TestdataFile("finance-run.json"), json.Callbacks()).ok());
  ASSERT_EQ(json.samples.size(), csv.samples.size());
  for (size_t i = 0; i < csv.samples.size(); ++i) {
    const K6Sample& j = json.samples[i];
    const K6Sample& c = csv.samples[i];
    SCOPED_TRACE(absl::StrCat("sample ", i, " ", j.metric));
    EXPECT_EQ(c.metric, j.metric);
    EXPECT_NEAR(c.value, j.value, 5e-7);
    EXPECT_EQ(c.time_unix_nano, j.time_unix_nano / 1000000000 * 1000000000);
    Tags non_empty;
    for (const auto& tag : j.tags) {
      if (!tag.second.empty()) non_empty.push_back(tag);
    }
    Tags csv_tags = c.tags;
    std::sort(non_empty.begin(), non_empty.end());
    std::sort(csv_tags.begin(), csv_tags.end());
    EXPECT_EQ(csv_tags, non_empty);
  }
}

TEST(K6ResultsReaderTest, DetectsTheFormatAndReadsStreamsAndBuffers) {
  const std::string json = ReadWhole(K6TestdataFile("finance-run.json"));
  const std::string csv = ReadWhole(K6TestdataFile("finance-run.csv"));
  ASSERT_FALSE(json.empty());
  ASSERT_FALSE(csv.empty());

  // By extension, then by content when the extension says nothing.
  for (const std::string& path :
       {K6TestdataFile("finance-run.json"), K6TestdataFile("finance-run.csv"),
        WriteTemp("no-extension-json", json), WriteTemp("no-extension-csv", csv)}) {
    Collected got;
    absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadFile(path, got.Callbacks());
    ASSERT_TRUE(stats.ok()) << path << ": " << stats.status();
    EXPECT_EQ(stats->samples, 802) << path;
    EXPECT_EQ(stats->errors, 0) << path;
  }

  std::istringstream stream(json);
  Collected from_stream;
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadStream(stream, K6Format::kAuto, from_stream.Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->metrics, 16);
  EXPECT_EQ(stats->samples, 802);

  // Callbacks may be left empty: items are still counted.
  stats = K6ResultsReader::ReadBuffer(csv, K6Format::kCsv, K6ResultsReader::Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->samples, 802);
}

TEST(K6ResultsReaderTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = TempPath("does-not-exist.json");
  absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadFile(path, {});
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr(path));
}

TEST(K6ResultsReaderTest, CorruptGzipInputIsDataLossNamingThePath) {
  // More of this in gzip_reader_test.cc.
  const std::string path = WriteTemp("run.json.gz", std::string("\x1f\x8b\x08\x00rest", 8));
  absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadFile(path, {});
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("gzip"));
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr(path));
}

TEST(K6JsonReaderTest, ReportsMalformedLinesWithTheirNumbersAndReadsTheRest) {
  const std::string content =
      // 1: a good declaration
      "{\"type\":\"Metric\",\"data\":{\"name\":\"my_trend\",\"type\":\"trend\","
      "\"contains\":\"time\",\"thresholds\":[],\"submetrics\":null},\"metric\":\"my_trend\"}\n"
      // 2: not JSON
      "this is not json\n"
      // 3: a good point, tags null
      "{\"metric\":\"my_trend\",\"type\":\"Point\",\"data\":{\"time\":"
      "\"2024-10-30T16:20:21.5Z\",\"value\":12.5,\"tags\":null}}\n"
      // 4: truncated
      "{\"metric\":\"my_trend\",\"type\":\"Point\",\"data\":{\"time\":\"2024-10-30T16:2\n"
      // 5: blank, skipped silently
      "\n"
      // 6: no value
      "{\"metric\":\"my_trend\",\"type\":\"Point\",\"data\":{\"time\":\"2024-10-30T16:20:21Z\"}}\n"
      // 7: bad time
      "{\"metric\":\"my_trend\",\"type\":\"Point\",\"data\":{\"time\":\"yesterday\",\"value\":1}}\n"
      // 8: unknown record type
      "{\"type\":\"Summary\",\"data\":{}}\n"
      // 9: a tag that is not a string
      "{\"metric\":\"my_trend\",\"type\":\"Point\",\"data\":{\"time\":\"2024-10-30T16:20:21Z\","
      "\"value\":1,\"tags\":{\"vu\":1}}}\n"
      // 10: a metric with an unknown type
      "{\"type\":\"Metric\",\"data\":{\"name\":\"x\",\"type\":\"histogram\"},\"metric\":\"x\"}\n"
      // 11: trailing garbage after the object
      "{\"metric\":\"my_trend\",\"type\":\"Point\",\"data\":{\"time\":\"2024-10-30T16:20:21Z\","
      "\"value\":1}} x\n"
      // 12: a point of an undeclared metric, keys in another order, CRLF, last line without \n
      "{\"data\":{\"tags\":{\"status\":\"200\",\"group\":\"\"},\"value\":3,"
      "\"time\":\"2024-10-30T18:20:21+02:00\"},\"type\":\"Point\",\"metric\":\"undeclared\"}\r";
  Collected got;
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadJsonFile(WriteTemp("malformed.json", content), got.Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->lines, 12);
  EXPECT_EQ(stats->metrics, 1);
  EXPECT_EQ(stats->samples, 2);
  EXPECT_EQ(stats->errors, 8);

  std::vector<int64_t> lines;
  for (const ReadError& e : got.errors) lines.push_back(e.line);
  EXPECT_THAT(lines, ElementsAre(2, 4, 6, 7, 8, 9, 10, 11));
  ASSERT_EQ(got.errors.size(), 8u);
  EXPECT_THAT(got.errors[0].message, HasSubstr("invalid JSON"));
  EXPECT_THAT(got.errors[2].message, HasSubstr("without \"value\""));
  EXPECT_THAT(got.errors[3].message, HasSubstr("yesterday"));
  EXPECT_THAT(got.errors[4].message, HasSubstr("Summary"));
  EXPECT_THAT(got.errors[5].message, HasSubstr("\"vu\""));
  EXPECT_THAT(got.errors[6].message, HasSubstr("histogram"));

  ASSERT_EQ(got.metrics.size(), 1u);
  EXPECT_EQ(got.metrics[0].name, "my_trend");
  EXPECT_EQ(got.metrics[0].type, MetricType::kTrend);
  EXPECT_EQ(got.metrics[0].kind, ValueKind::kTime);

  ASSERT_EQ(got.samples.size(), 2u);
  EXPECT_EQ(got.samples[0].metric, "my_trend");
  EXPECT_EQ(got.samples[0].value, 12.5);
  EXPECT_EQ(got.samples[0].time_unix_nano, kFirstSecond * 1000000000 + 500000000);
  EXPECT_THAT(got.samples[0].tags, IsEmpty());
  EXPECT_EQ(got.samples[1].metric, "undeclared");
  EXPECT_EQ(got.samples[1].value, 3);
  EXPECT_EQ(got.samples[1].time_unix_nano, kFirstSecond * 1000000000);
  EXPECT_EQ(got.samples[1].tags, (Tags{{"status", "200"}, {"group", ""}}));
  EXPECT_THAT(got.declared_before, ElementsAre(true, false));
}

TEST(K6JsonReaderTest, LinesLongerThanTheReadBufferAndManyRefills) {
  // ~3 MiB: many refills of the 1 MiB buffer, and one 2 MiB line that makes it grow.
  const std::string point_prefix =
      "{\"metric\":\"m\",\"type\":\"Point\",\"data\":{\"time\":\"2024-10-30T16:20:21Z\","
      "\"value\":";
  std::string content;
  int64_t expected_sum = 0;
  for (int i = 0; i < 10000; ++i) {
    absl::StrAppend(&content, point_prefix, i, ",\"tags\":{\"i\":\"", i, "\"}}}\n");
    expected_sum += i;
  }
  const std::string huge(2 << 20, 'x');
  absl::StrAppend(&content, point_prefix, 7, ",\"tags\":{\"big\":\"", huge, "\"}}}\n");
  expected_sum += 7;
  Collected got;
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadBuffer(content, K6Format::kJson, got.Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->samples, 10001);
  EXPECT_EQ(stats->errors, 0);
  double sum = 0;
  for (const K6Sample& s : got.samples) sum += s.value;
  EXPECT_EQ(sum, expected_sum);
  EXPECT_EQ(got.samples[9999].tags, (Tags{{"i", "9999"}}));
  ASSERT_EQ(got.samples.back().tags.size(), 1u);
  EXPECT_EQ(got.samples.back().tags[0].second.size(), huge.size());
}

TEST(K6CsvReaderTest, QuotingExtraTagsAndMalformedRows) {
  const std::string content =
      "metric_name,timestamp,metric_value,check,group,url,extra_tags,metadata\r\n"
      // 2: quoted fields with a comma, an escaped quote and a newline; extra tags
      "checks,1730305221,1.000000,\"status is \"\"200\"\", really\",,\"http://a/?x=1,2\","
      "vu=1&iter=2&flag,trace_id=abc\r\n"
      // 3: too few fields
      "checks,1730305221,1.000000\r\n"
      // 4: not a number
      "http_reqs,1730305221,one,,,,,\r\n"
      // 5: milliseconds
      "http_reqs,1730305221123,1,,::1,,,\r\n"
      // 6: a quoted field over two lines
      "checks,1730305221.25,0,\"line one\nline two\",,,,\r\n"
      // 8: bad timestamp
      "http_reqs,soon,1,,,,,\r\n"
      // 9: unterminated quote to the end of the file
      "http_reqs,1730305221,1,\"open,,,,\n";
  Collected got;
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadBuffer(content, K6Format::kAuto, got.Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->lines, 9);
  EXPECT_EQ(stats->samples, 3);
  EXPECT_EQ(stats->errors, 4);
  std::vector<int64_t> lines;
  for (const ReadError& e : got.errors) lines.push_back(e.line);
  EXPECT_THAT(lines, ElementsAre(3, 4, 8, 9));
  ASSERT_EQ(got.errors.size(), 4u);
  EXPECT_THAT(got.errors[0].message, HasSubstr("3 fields"));
  EXPECT_THAT(got.errors[1].message, HasSubstr("\"one\""));
  EXPECT_THAT(got.errors[2].message, HasSubstr("soon"));
  EXPECT_THAT(got.errors[3].message, HasSubstr("unterminated"));

  ASSERT_EQ(got.samples.size(), 3u);
  EXPECT_EQ(got.samples[0].metric, "checks");
  EXPECT_EQ(got.samples[0].value, 1);
  EXPECT_EQ(got.samples[0].time_unix_nano, kFirstSecond * 1000000000);
  EXPECT_EQ(got.samples[0].tags, (Tags{{"check", "status is \"200\", really"},
                                       {"url", "http://a/?x=1,2"},
                                       {"vu", "1"},
                                       {"iter", "2"},
                                       {"flag", ""}}));
  EXPECT_EQ(got.samples[1].time_unix_nano, kFirstSecond * 1000000000 + 123000000);
  EXPECT_EQ(got.samples[1].tags, (Tags{{"group", "::1"}}));
  EXPECT_EQ(got.samples[2].value, 0);
  EXPECT_EQ(got.samples[2].time_unix_nano, kFirstSecond * 1000000000 + 250000000);
  EXPECT_EQ(got.samples[2].tags, (Tags{{"check", "line one\nline two"}}));
}

TEST(K6CsvReaderTest, FileWithoutAHeaderIsAnError) {
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadBuffer("http_reqs,1730305221,1\n", K6Format::kCsv, {});
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("metric_name"));
}

TEST(K6ResultsReaderTest, EmptyInputReadsNothing) {
  for (K6Format format : {K6Format::kAuto, K6Format::kJson, K6Format::kCsv}) {
    absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadBuffer("", format, {});
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->samples, 0);
    EXPECT_EQ(stats->lines, 0);
  }
}

// 2024-10-30T16:20:21Z = 1730305221 s (checked with `date -u -d @1730305221`).
TEST(ParseRfc3339UnixNanosTest, ExactNanoseconds) {
  const int64_t base = kFirstSecond * 1000000000;
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30T16:20:21.635558127Z"), base + 635558127);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30T18:20:21.635558127+02:00"), base + 635558127);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30T12:50:21.635558127-03:30"), base + 635558127);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30T16:20:21Z"), base);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30T16:20:21.6Z"), base + 600000000);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30T16:20:21.0635Z"), base + 63500000);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30T16:20:21.000000001Z"), base + 1);
  // Past nanoseconds the digits are truncated, as Go does.
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30T16:20:21.1234567899Z"), base + 123456789);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30t16:20:21z"), base);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-10-30 16:20:21+00:00"), base);
  EXPECT_EQ(*ParseRfc3339UnixNanos("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339UnixNanos("1969-12-31T23:59:59.5Z"), -500000000);
  // Leap day 2024-02-29 = 19782 days after the epoch.
  EXPECT_EQ(*ParseRfc3339UnixNanos("2024-02-29T00:00:00Z"), int64_t{19782} * 86400 * 1000000000);
  EXPECT_EQ(*ParseRfc3339UnixNanos("2262-04-11T23:47:16.854775807Z"), INT64_MAX);
}

TEST(ParseRfc3339UnixNanosTest, RejectsMalformedTimes) {
  for (const char* bad :
       {"", "2024-10-30", "2024-10-30T16:20:21", "2024-10-30T16:20:21.Z", "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2024-10-30T24:00:00Z", "2024-10-30T16:60:00Z",
        "2024-10-30T16:20:60Z", "2024-10-30T16:20:21+2:00", "2024-10-30T16:20:21+02",
        "2024-10-30T16:20:21Zjunk", "2024/10/30T16:20:21Z", "2262-04-11T23:47:16.854775808Z",
        "1600-01-01T00:00:00Z"}) {
    absl::StatusOr<int64_t> parsed = ParseRfc3339UnixNanos(bad);
    EXPECT_FALSE(parsed.ok()) << bad << " -> " << *parsed;
    if (!parsed.ok()) {
      EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(bad));
    }
  }
}

TEST(ParseK6CsvTimestampTest, UnitsByMagnitudeAndRfc3339) {
  const int64_t base = kFirstSecond * 1000000000;
  EXPECT_EQ(*ParseK6CsvTimestamp("1730305221"), base);
  EXPECT_EQ(*ParseK6CsvTimestamp("1730305221635"), base + 635000000);
  EXPECT_EQ(*ParseK6CsvTimestamp("1730305221635558"), base + 635558000);
  EXPECT_EQ(*ParseK6CsvTimestamp("1730305221635558127"), base + 635558127);
  EXPECT_EQ(*ParseK6CsvTimestamp("1730305221.635558127"), base + 635558127);
  EXPECT_EQ(*ParseK6CsvTimestamp("1730305221.5"), base + 500000000);
  EXPECT_EQ(*ParseK6CsvTimestamp("2024-10-30T16:20:21Z"), base);
  EXPECT_EQ(*ParseK6CsvTimestamp("2024-10-30T18:20:21.25+02:00"), base + 250000000);
  EXPECT_EQ(*ParseK6CsvTimestamp("0"), 0);
  for (const char* bad : {"", "abc", "12x", "-5", "1.", "1730305221.5x", "99999999999999999999"}) {
    EXPECT_FALSE(ParseK6CsvTimestamp(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace rwexport
