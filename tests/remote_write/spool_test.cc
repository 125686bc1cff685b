#include "lib/remote_write/spool.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;

std::string NewTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/spool-XXXXXX");
  EXPECT_NE(mkdtemp(pattern.data()), nullptr);
  return pattern;
}

void WriteRaw(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

TEST(SpoolKeyTest, UrlAndHeadersNotTheirOrder) {
  const uint64_t key = SpoolKey("http://a/w", {{"X-Scope-OrgID", "1"}, {"X-B", "2"}});
  EXPECT_EQ(key, SpoolKey("http://a/w", {{"X-B", "2"}, {"X-Scope-OrgID", "1"}}));
  EXPECT_NE(key, SpoolKey("http://a/w", {{"X-Scope-OrgID", "2"}, {"X-B", "2"}}));
  EXPECT_NE(key, SpoolKey("http://a/w2", {{"X-Scope-OrgID", "1"}, {"X-B", "2"}}));
  // FNV-1a 64 of the empty string.
  EXPECT_EQ(SpoolKey("", {}), 14695981039346656037ull);
}

TEST(SpoolFileTest, RoundTrip) {
  const std::string dir = NewTempDir();
  const std::string path = SpoolFilePath(dir, 0xabcdef, 42);
  EXPECT_EQ(path, dir + "/0000000000abcdef-00000000000000000042.rwspool");
  SpoolFileHeader header;
  header.key = 0xabcdef;
  header.display_url = "http://x/w?token=REDACTED";
  header.first_timestamp_ms = 1000;
  header.last_timestamp_ms = 3000;
  const std::vector<SpooledRequest> requests = {{2, 0, 2000, std::string("ab\n\0cd", 6)},
                                                {1, 7, 3000, "\n\nxyz"}};
  ASSERT_TRUE(WriteSpoolFile(path, EncodeSpoolFile(header, requests)).ok());

  auto read = ReadSpoolFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->first.key, 0xabcdefu);
  EXPECT_EQ(read->first.display_url, "http://x/w?token=REDACTED");
  EXPECT_EQ(read->first.points, 3u);
  EXPECT_EQ(read->first.requests, 2u);
  EXPECT_EQ(read->first.first_timestamp_ms, 1000);
  EXPECT_EQ(read->first.last_timestamp_ms, 3000);
  ASSERT_EQ(read->second.size(), 2u);
  EXPECT_EQ(read->second[0].points, 2u);
  EXPECT_EQ(read->second[0].chain, 0u);
  EXPECT_EQ(read->second[0].max_timestamp_ms, 2000);
  EXPECT_EQ(read->second[0].body, std::string("ab\n\0cd", 6));
  EXPECT_EQ(read->second[1].chain, 7u);
  EXPECT_EQ(read->second[1].body, "\n\nxyz");

  // Truncated: data loss, not a short batch.
  std::string content = EncodeSpoolFile(header, requests);
  WriteRaw(path, content.substr(0, content.size() - 1));
  EXPECT_EQ(ReadSpoolFile(path).status().code(), absl::StatusCode::kDataLoss);
}

TEST(SpoolDirTest, ScanListsBySequenceAndSetsAsideWhatIsBroken) {
  const std::string dir = NewTempDir() + "/spool";  // created by the scan
  ASSERT_TRUE(ScanSpoolDir(dir).ok());
  SpoolFileHeader header;
  header.key = 7;
  for (uint64_t sequence : {30, 4, 100}) {
    ASSERT_TRUE(WriteSpoolFile(SpoolFilePath(dir, 7, sequence),
                               EncodeSpoolFile(header, {{sequence, 0, 1, "body"}}))
                    .ok());
  }
  WriteRaw(SpoolFilePath(dir, 7, 5) + ".tmp", "interrupted");
  WriteRaw(SpoolFilePath(dir, 7, 6), "garbage");
  WriteRaw(dir + "/notes.txt", "not ours");

  auto files = ScanSpoolDir(dir);
  ASSERT_TRUE(files.ok()) << files.status();
  std::vector<uint64_t> sequences, points;
  for (const SpoolFileInfo& f : *files) {
    sequences.push_back(f.sequence);
    points.push_back(f.header.points);
    EXPECT_EQ(f.bytes, std::filesystem::file_size(f.path));
  }
  EXPECT_THAT(sequences, ElementsAre(4, 30, 100));
  EXPECT_THAT(points, ElementsAre(4, 30, 100));
  EXPECT_FALSE(std::filesystem::exists(SpoolFilePath(dir, 7, 5) + ".tmp"));
  EXPECT_FALSE(std::filesystem::exists(SpoolFilePath(dir, 7, 6)));
  EXPECT_TRUE(std::filesystem::exists(SpoolFilePath(dir, 7, 6) + ".corrupt"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/notes.txt"));
}

}  // namespace
}  // namespace rwexport
