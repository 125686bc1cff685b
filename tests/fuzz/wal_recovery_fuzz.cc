// Fuzz target: recovery of a damaged write-ahead log (lib/durable/wal.h).
// Input: [segments][damage kind and format version][damage segment][offset u16][length]
// [records...], records as [u8 length][bytes]. The target writes the segments as the format in
// wal.h describes them (written here independently of wal.cc, in version 1 with zlib's CRC-32
// or version 2 with CRC-32C), damages one (none, truncate, xor bytes, overwrite
// with input bytes, append input bytes), then opens the log. Contracts: Open never fails; the
// replay returns report.records records; every record of the segments before the damaged one
// and every record of the damaged segment wholly before the damage comes back, in order, as
// the start of the replay (after them, only damaged data may have passed its CRC); without
// damage the replay is exactly what was written and the report is clean; a second Open finds
// nothing more to repair and replays the same records.
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "lib/durable/wal.h"
#include "tests/durable/wal_segment_bytes.h"

namespace {

using rwexport::testing_wal::Crc32cReference;
using rwexport::testing_wal::SegmentBytes;
using rwexport::testing_wal::ZlibCrc;

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "wal_recovery_fuzz: contract broken: %s\n", what);
  std::abort();
}

std::string Dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string templ = std::string(base != nullptr ? base : "/tmp") + "/wal_fuzz.XXXXXX";
    Require(mkdtemp(&templ[0]) != nullptr, "a temporary directory");
    return templ;
  }();
  return dir;
}

std::vector<std::string> ReplayAll(const rwexport::Wal& wal) {
  std::vector<std::string> out;
  const absl::Status s = wal.Replay({}, [&](rwexport::WalPosition, absl::string_view payload) {
    out.emplace_back(payload);
    return absl::OkStatus();
  });
  Require(s.ok(), "Replay succeeds");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 6) return 0;
  const int segments = 1 + data[0] % 3;
  const int kind = data[1] % 5;  // 0 none, 1 truncate, 2 xor, 3 overwrite, 4 append
  const uint32_t version = 1 + (data[1] / 5) % 2;
  uint32_t (*const crc)(const std::string&) = version == 1 ? &ZlibCrc : &Crc32cReference;
  const int damaged = data[2] % segments;
  const size_t damage_offset = static_cast<size_t>(data[3]) | (static_cast<size_t>(data[4]) << 8);
  const size_t damage_length = 1 + data[5] % 64;
  std::vector<std::string> records;
  for (size_t i = 6; i < size;) {
    const size_t n = std::min<size_t>(1 + data[i] % 64, size - i - 1);
    if (n == 0) break;
    records.emplace_back(reinterpret_cast<const char*>(data + i + 1), n);
    i += 1 + n;
  }

  const std::string dir = Dir();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directory(dir);

  // Segment s holds records [first[s], first[s + 1]); ends[s][j]: the end of its j-th record.
  std::vector<size_t> first(segments + 1);
  for (int s = 0; s <= segments; ++s) first[s] = records.size() * s / segments;
  std::vector<std::string> files(segments);
  std::vector<std::vector<size_t>> ends(segments);
  for (int s = 0; s < segments; ++s) {
    const std::vector<std::string> in_segment(records.begin() + first[s],
                                              records.begin() + first[s + 1]);
    files[s] = SegmentBytes(version, static_cast<uint64_t>(s + 1), static_cast<uint64_t>(s),
                            in_segment, crc, &ends[s]);
  }
  // The damage, and the records that must survive it.
  std::string& target = files[damaged];
  size_t intact_end = target.size();  // bytes of the damaged segment left as written
  const size_t at = std::min(damage_offset, target.size());
  switch (kind) {
    case 1:
      target.resize(at);
      intact_end = at;
      break;
    case 2:
    case 3:
      if (at < target.size()) {
        for (size_t i = 0; i < damage_length && at + i < target.size(); ++i) {
          const char b = static_cast<char>(data[(6 + i) % size]);
          target[at + i] = kind == 2 ? static_cast<char>(target[at + i] ^ (b | 1)) : b;
        }
        intact_end = at;
      }
      break;
    case 4:
      target.append(reinterpret_cast<const char*>(data), std::min(damage_length, size));
      break;
    default:
      break;
  }
  for (int s = 0; s < segments; ++s) {
    std::ofstream out(absl::StrFormat("%s/%020d.wal", dir, s + 1), std::ios::binary);
    out.write(files[s].data(), static_cast<std::streamsize>(files[s].size()));
  }
  std::vector<std::string> must;  // what must come back first, in order
  for (int s = 0; s < damaged; ++s) {
    for (size_t r = first[s]; r < first[s + 1]; ++r) must.push_back(records[r]);
  }
  const bool header_intact = intact_end >= rwexport::kWalHeaderBytes;
  for (size_t j = 0; header_intact && j < ends[damaged].size(); ++j) {
    if (ends[damaged][j] > intact_end) break;
    must.push_back(records[first[damaged] + j]);
  }

  rwexport::WalOptions options;
  options.dir = dir;
  std::vector<std::string> replayed;
  {
    rwexport::WalRecoveryReport report;
    auto wal = rwexport::Wal::Open(options, &report);
    Require(wal.ok(), "Open never fails on a damaged log");
    replayed = ReplayAll(**wal);
    Require(static_cast<int64_t>(replayed.size()) == report.records, "report counts the records");
    Require(replayed.size() >= must.size(), "the records before the damage survive");
    for (size_t i = 0; i < must.size(); ++i) {
      Require(replayed[i] == must[i], "the records before the damage come back in order");
    }
    if (kind == 0) {
      Require(replayed == records, "an undamaged log replays exactly");
      Require(report.clean(), "an undamaged log needs no repair");
    }
  }
  {
    rwexport::WalRecoveryReport report;
    auto wal = rwexport::Wal::Open(options, &report);
    Require(wal.ok(), "the second Open succeeds");
    Require(report.bytes_cut == 0 && report.lost_segments == 0, "recovery is idempotent");
    Require(ReplayAll(**wal) == replayed, "the second Open replays the same records");
  }
  return 0;
}
