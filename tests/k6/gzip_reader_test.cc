// Gzip-compressed k6 result files (`k6 run --out json=results.json.gz`): the real k6 files of
// the test data, gzipped here by zlib, read back item for item as the plain files are.
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/k6/results_reader.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;

struct Items {
  std::vector<std::string> metrics;  // "name type kind"
  std::vector<K6Sample> samples;
  int errors = 0;

  K6ResultsReader::Callbacks Callbacks() {
    K6ResultsReader::Callbacks callbacks;
    callbacks.on_metric = [this](const K6Metric& m) {
      metrics.push_back(
          absl::StrCat(m.name, " ", static_cast<int>(m.type), " ", static_cast<int>(m.kind)));
    };
    callbacks.on_sample = [this](K6Sample&& s) { samples.push_back(std::move(s)); };
    callbacks.on_error = [this](const ReadError&) { ++errors; };
    return callbacks;
  }
};

bool SameSamples(const std::vector<K6Sample>& a, const std::vector<K6Sample>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].metric != b[i].metric || a[i].tags != b[i].tags ||
        a[i].time_unix_nano != b[i].time_unix_nano || a[i].value != b[i].value) {
      return false;
    }
  }
  return true;
}

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// `data` gzipped by zlib (a gzip header and trailer, as gzip(1) and k6 write them).
std::string Gzip(const std::string& data, int level = Z_DEFAULT_COMPRESSION) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string WriteTemp(const std::string& name, const std::string& content) {
  const std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

class GzipReaderTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GzipReaderTest, RealK6FileGzippedReadsExactlyAsThePlainFile) {
  const std::string plain_path = K6TestdataFile(GetParam());
  const std::string plain = ReadWhole(plain_path);
  ASSERT_FALSE(plain.empty());
  const std::string gz_path = WriteTemp(absl::StrCat(GetParam(), ".gz"), Gzip(plain));

  Items from_plain;
  absl::StatusOr<K6ReadStats> plain_stats =
      K6ResultsReader::ReadFile(plain_path, from_plain.Callbacks());
  ASSERT_TRUE(plain_stats.ok()) << plain_stats.status();
  Items from_gz;
  absl::StatusOr<K6ReadStats> gz_stats = K6ResultsReader::ReadFile(gz_path, from_gz.Callbacks());
  ASSERT_TRUE(gz_stats.ok()) << gz_stats.status();

  // finance-run: 802 samples (and, in JSON, 16 declarations), no malformed line.
  EXPECT_EQ(gz_stats->samples, 802);
  EXPECT_EQ(gz_stats->metrics, absl::EndsWith(GetParam(), ".json") ? 16 : 0);
  EXPECT_EQ(gz_stats->errors, 0);
  EXPECT_EQ(gz_stats->lines, plain_stats->lines);
  EXPECT_EQ(from_gz.metrics, from_plain.metrics);
  EXPECT_TRUE(SameSamples(from_gz.samples, from_plain.samples));
}

TEST_P(GzipReaderTest, ConcatenatedMembersAndAnyNameAreRead) {
  // `cat a.gz b.gz > c.gz` is valid gzip (gunzip reads both); the name need not end in .gz.
  const std::string plain = ReadWhole(K6TestdataFile(GetParam()));
  const size_t half = plain.find('\n', plain.size() / 2) + 1;
  const std::string path = WriteTemp(absl::StrCat("two-members-", GetParam()),
                                     Gzip(plain.substr(0, half), 1) + Gzip(plain.substr(half), 9));
  Items items;
  absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadFile(path, items.Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->samples, 802);
  EXPECT_EQ(stats->errors, 0);
}

INSTANTIATE_TEST_SUITE_P(JsonAndCsv, GzipReaderTest,
                         ::testing::Values("finance-run.json", "finance-run.csv"));

TEST(GzipReaderTest, StreamAndBufferInputsAreInflatedToo) {
  const std::string gz = Gzip(ReadWhole(K6TestdataFile("finance-run.json")));
  std::istringstream stream(gz);
  absl::StatusOr<K6ReadStats> stats =
      K6ResultsReader::ReadStream(stream, K6Format::kAuto, K6ResultsReader::Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->samples, 802);
  stats = K6ResultsReader::ReadBuffer(gz, K6Format::kJson, K6ResultsReader::Callbacks());
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->samples, 802);
}

TEST(GzipReaderTest, TruncatedFileIsDataLossAfterTheSamplesBeforeTheCut) {
  const std::string gz = Gzip(ReadWhole(K6TestdataFile("finance-run.json")));
  const std::string path = WriteTemp("truncated.json.gz", gz.substr(0, gz.size() * 2 / 3));
  Items items;
  absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadFile(path, items.Callbacks());
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("truncated"));
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr(path));
  // What came before the cut was delivered, as k6 wrote it.
  EXPECT_GT(items.samples.size(), 100u);
  EXPECT_LT(items.samples.size(), 802u);
}

TEST(GzipReaderTest, CorruptDataIsDataLoss) {
  std::string gz = Gzip(ReadWhole(K6TestdataFile("finance-run.csv")));
  for (size_t i = gz.size() / 2; i < gz.size() / 2 + 64; ++i) gz[i] = static_cast<char>(~gz[i]);
  const std::string path = WriteTemp("corrupt.csv.gz", gz);
  absl::StatusOr<K6ReadStats> stats = K6ResultsReader::ReadFile(path, {});
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("gzip"));
}

}  // namespace
}  // namespace rwexport
