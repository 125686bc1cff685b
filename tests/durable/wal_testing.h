// Helpers for the WAL tests: a fresh directory, synchronous appends, replaying everything.
#ifndef RWEXPORT_TESTS_DURABLE_WAL_TESTING_H_
#define RWEXPORT_TESTS_DURABLE_WAL_TESTING_H_

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "lib/common/mutex.h"
#include "lib/durable/wal.h"

namespace rwexport {
namespace testing_wal {

// A new empty directory under TEST_TMPDIR (or /tmp).
inline std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(base != nullptr ? base : "/tmp", "/wal.XXXXXX");
  if (mkdtemp(&templ[0]) == nullptr) return "";
  return templ;
}

// Appends one record and waits for its `done`. (lib/common/mutex.h, not absl::Notification:
// TSan sees only std::mutex.)
inline absl::StatusOr<WalPosition> AppendSync(Wal& wal, std::string payload) {
  Mutex mu;
  CondVar cv;
  bool notified = false;
  absl::Status status;
  WalPosition position;
  wal.Append(std::move(payload), [&](absl::Status s, WalPosition p) {
    MutexLock lock(&mu);
    status = std::move(s);
    position = p;
    notified = true;
    cv.Signal();
  });
  MutexLock lock(&mu);
  while (!notified) cv.Wait(&mu);
  if (!status.ok()) return status;
  return position;
}

struct Record {
  WalPosition position;
  std::string payload;
};

inline absl::StatusOr<std::vector<Record>> ReplayAll(const Wal& wal, WalPosition from = {}) {
  std::vector<Record> records;
  absl::Status s = wal.Replay(from, [&](WalPosition p, absl::string_view payload) {
    records.push_back({p, std::string(payload)});
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return records;
}

// "record-<i>-" padded with letters to `size` bytes.
inline std::string Payload(int i, size_t size) {
  std::string s = absl::StrCat("record-", i, "-");
  while (s.size() < size) s.push_back(static_cast<char>('a' + s.size() % 26));
  s.resize(size);
  return s;
}

inline int64_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return st.st_size;
}

inline bool FileExists(const std::string& path) { return FileSize(path) >= 0; }

}  // namespace testing_wal
}  // namespace rwexport

#endif  // RWEXPORT_TESTS_DURABLE_WAL_TESTING_H_
