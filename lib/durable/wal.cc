#include "lib/durable/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/common/crash_point.h"
#include "lib/durable/crc32c.h"

namespace rwexport {
namespace {

constexpr char kMagic[8] = {'R', 'W', 'E', 'X', 'W', 'A', 'L', '\0'};
// New segments are written in version 2 (CRC-32C); version 1 (zlib's CRC-32) is still read.
constexpr uint32_t kVersion = 2;
constexpr uint32_t kVersionZlibCrc = 1;
constexpr size_t kReadBufferBytes = 1 << 20;

void PutU32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutU64(char* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetU32(const char* in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}
uint64_t GetU64(const char* in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

// Version 1's checksum.
uint32_t Crc32(const char* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib's crc32 takes a uInt length; feed it in pieces (records are < 4 GiB anyway).
  while (size > 0) {
    const uInt n = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), n);
    data += n;
    size -= n;
  }
  return static_cast<uint32_t>(crc);
}

using CrcFunction = uint32_t (*)(const char* data, size_t size);

// The checksum of segment format `version` (1 or 2).
CrcFunction CrcOf(uint32_t version) { return version == kVersionZlibCrc ? &Crc32 : &Crc32c; }

std::string ErrnoText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // the GNU variant returns the text
}

// A failed system call on a file of the log, as a Status a caller can act on.
absl::Status IoError(int err, absl::string_view verb, absl::string_view path) {
  const std::string text = ErrnoText(err);
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(absl::StrCat("disk full ", verb, " ", path, ": ", text));
    case EFBIG:
      return absl::ResourceExhaustedError(
          absl::StrCat("file size limit reached ", verb, " ", path, ": ", text));
    default:
      return absl::UnavailableError(absl::StrCat("I/O error ", verb, " ", path, ": ", text));
  }
}

std::string SegmentName(uint64_t segment) { return absl::StrFormat("%020d.wal", segment); }

// "<20 digits>.wal" (or, with `prefix_only`, any name starting with 20 digits: lost/ entries).
bool ParseSegmentName(absl::string_view name, uint64_t* segment, bool prefix_only = false) {
  if (name.size() < 20) return false;
  if (!prefix_only && (name.size() != 24 || !absl::EndsWith(name, ".wal"))) return false;
  uint64_t v = 0;
  for (int i = 0; i < 20; ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(name[i]))) return false;
    const uint64_t digit = static_cast<uint64_t>(name[i] - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  if (v == 0) return false;
  *segment = v;
  return true;
}

// Names in `dir` (not . and ..); NotFound/Unavailable when it cannot be read.
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return IoError(errno, "listing", dir);
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    const absl::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  closedir(d);
  return names;
}

absl::Status FsyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError(errno, "opening directory", dir);
  int rc;
  do {
    rc = fsync(fd);
  } while (rc != 0 && errno == EINTR);
  const int err = errno;
  close(fd);
  if (rc != 0) return IoError(err, "syncing directory", dir);
  return absl::OkStatus();
}

int Fdatasync(int fd) {
  int rc;
  do {
    rc = fdatasync(fd);
  } while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : errno;
}

// Writes every byte of `iov` at `offset`; 0 or the errno of the failure.
int PwritevAll(int fd, std::vector<struct iovec>* iov, uint64_t offset) {
  size_t first = 0;
  while (first < iov->size()) {
    const int count = static_cast<int>(std::min<size_t>(iov->size() - first, IOV_MAX));
    const ssize_t n = pwritev(fd, iov->data() + first, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (left > 0 && first < iov->size()) {
      struct iovec& v = (*iov)[first];
      if (left >= v.iov_len) {
        left -= v.iov_len;
        ++first;
      } else {
        v.iov_base = static_cast<char*>(v.iov_base) + left;
        v.iov_len -= left;
        left = 0;
      }
    }
    while (first < iov->size() && (*iov)[first].iov_len == 0) ++first;
  }
  return 0;
}

std::string MakeHeader(uint64_t segment, uint64_t prev) {
  std::string h(kWalHeaderBytes, '\0');
  std::memcpy(&h[0], kMagic, 8);
  PutU32(&h[8], kVersion);
  PutU64(&h[12], segment);
  PutU64(&h[20], prev);
  PutU32(&h[28], Crc32c(h.data(), 28));
  return h;
}

// Checks a header read from segment `expected`; false with `why` when it is not one.
// `version`: the segment's format version (1 or 2), which names its checksum.
bool ParseHeader(const char* h, uint64_t expected, uint64_t* prev, uint32_t* version,
                 std::string* why) {
  if (std::memcmp(h, kMagic, 8) != 0) {
    *why = "not a WAL segment header (bad magic)";
    return false;
  }
  *version = GetU32(h + 8);
  if (*version != kVersion && *version != kVersionZlibCrc) {
    // A damaged version field, or a segment of a newer build: either way not readable here.
    *why = absl::StrCat("unknown segment format version ", *version, " (this build reads ",
                        kVersionZlibCrc, " and ", kVersion, ")");
    return false;
  }
  if (GetU32(h + 28) != CrcOf(*version)(h, 28)) {
    *why = "header crc mismatch";
    return false;
  }
  if (GetU64(h + 12) != expected) {
    *why = absl::StrCat("header names segment ", GetU64(h + 12));
    return false;
  }
  *prev = GetU64(h + 20);
  return true;
}

// Reads the records of one segment file in order, from `start` up to `limit`, through a
// buffer; a payload view is valid until the next call.
class SegmentReader {
 public:
  enum class Result { kRecord, kEnd, kCorrupt, kIoError };

  SegmentReader(int fd, uint32_t version, uint64_t start, uint64_t limit)
      : fd_(fd), crc_(CrcOf(version)), file_offset_(start), limit_(limit), buf_(kReadBufferBytes) {}

  Result Next(uint64_t* offset, absl::string_view* payload, std::string* why) {
    *offset = file_offset_ + begin_;
    if (!Fill(kWalFrameBytes)) {
      if (err_ != 0) return Result::kIoError;
      if (end_ == begin_) return Result::kEnd;
      *why = absl::StrCat("truncated record frame (", end_ - begin_, " bytes) at offset ", *offset);
      return Result::kCorrupt;
    }
    const uint32_t length = GetU32(&buf_[begin_]);
    const uint32_t crc = GetU32(&buf_[begin_ + 4]);
    if (length == 0) {
      *why = absl::StrCat("record of length 0 at offset ", *offset);
      return Result::kCorrupt;
    }
    if (length > kMaxWalRecordBytes) {
      *why = absl::StrCat("record length ", length, " over the maximum ", kMaxWalRecordBytes,
                          " at offset ", *offset);
      return Result::kCorrupt;
    }
    if (!Fill(kWalFrameBytes + length)) {
      if (err_ != 0) return Result::kIoError;
      *why = absl::StrCat("truncated record at offset ", *offset, ": ", length, "-byte payload, ",
                          end_ - begin_ - kWalFrameBytes, " bytes present");
      return Result::kCorrupt;
    }
    const char* data = &buf_[begin_ + kWalFrameBytes];
    if (crc_(data, length) != crc) {
      *why = absl::StrCat("crc mismatch in the record at offset ", *offset);
      return Result::kCorrupt;
    }
    *payload = absl::string_view(data, length);
    begin_ += kWalFrameBytes + length;
    return Result::kRecord;
  }

  int error() const { return err_; }

 private:
  // Makes `need` bytes from begin_ available; false at the limit or end of file, or on error.
  bool Fill(size_t need) {
    if (end_ - begin_ >= need) return true;
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      file_offset_ += begin_;
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() < need) buf_.resize(need);
    while (end_ < need) {
      const uint64_t at = file_offset_ + end_;
      if (at >= limit_) return false;
      const size_t want = static_cast<size_t>(std::min<uint64_t>(buf_.size() - end_, limit_ - at));
      const ssize_t n = pread(fd_, buf_.data() + end_, want, static_cast<off_t>(at));
      if (n < 0) {
        if (errno == EINTR) continue;
        err_ = errno;
        return false;
      }
      if (n == 0) return false;
      end_ += static_cast<size_t>(n);
    }
    return true;
  }

  const int fd_;
  const CrcFunction crc_;
  uint64_t file_offset_;  // the file offset of buf_[0]
  const uint64_t limit_;
  std::vector<char> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
  int err_ = 0;
};

// Recovery of one directory: what Wal::Open does before the writer starts.
class Recovery {
 public:
  // `replay`, if not null, gets every record kept at or after `from` during the scan.
  Recovery(const std::string& dir, WalRecoveryReport* report, WalPosition from,
           const Wal::ReplayCallback* replay)
      : dir_(dir), report_(report), from_(from), replay_(replay) {}

  absl::Status Run() {
    auto names = ListDir(dir_);
    if (!names.ok()) return names.status();
    std::vector<uint64_t> numbers;
    for (const std::string& name : *names) {
      uint64_t n;
      if (ParseSegmentName(name, &n)) numbers.push_back(n);
    }
    std::sort(numbers.begin(), numbers.end());
    for (uint64_t n : numbers) max_seen_ = std::max(max_seen_, n);
    auto lost = ListDir(LostDir());
    if (lost.ok()) {
      for (const std::string& name : *lost) {
        uint64_t n;
        if (ParseSegmentName(name, &n, /*prefix_only=*/true)) max_seen_ = std::max(max_seen_, n);
      }
    }

    bool gap = false;
    for (size_t i = 0; i < numbers.size(); ++i) {
      const uint64_t n = numbers[i];
      if (gap) {
        absl::Status s = MoveToLost(n, "it comes after the gap");
        if (!s.ok()) return s;
        continue;
      }
      absl::Status s = ScanSegment(n, /*last=*/i + 1 == numbers.size(), &gap);
      if (!s.ok()) return s;
    }
    if (changed_dir_) {
      absl::Status s = FsyncDir(dir_);
      if (!s.ok()) return s;
    }
    report_->segments = static_cast<int64_t>(kept_.size());
    report_->next_segment = max_seen_ + 1;
    return absl::OkStatus();
  }

  std::map<uint64_t, uint64_t>& kept() { return kept_; }
  uint64_t last_kept() const { return kept_.empty() ? 0 : kept_.rbegin()->first; }

 private:
  std::string Path(uint64_t n) const { return absl::StrCat(dir_, "/", SegmentName(n)); }
  std::string LostDir() const { return absl::StrCat(dir_, "/lost"); }

  absl::Status ScanSegment(uint64_t n, bool last, bool* gap) {
    const std::string path = Path(n);
    const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return IoError(errno, "opening", path);
    absl::Status status = ScanOpenSegment(fd, n, path, last, gap);
    close(fd);
    return status;
  }

  absl::Status ScanOpenSegment(int fd, uint64_t n, const std::string& path, bool last, bool* gap) {
    struct stat st;
    if (fstat(fd, &st) != 0) return IoError(errno, "reading", path);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    char header[kWalHeaderBytes];
    std::string why = "incomplete header";
    uint64_t prev = 0;
    uint32_t version = 0;
    bool header_ok = false;
    if (size >= kWalHeaderBytes) {
      const ssize_t r = pread(fd, header, kWalHeaderBytes, 0);
      if (r < 0) return IoError(errno, "reading", path);
      header_ok = static_cast<uint64_t>(r) == kWalHeaderBytes &&
                  ParseHeader(header, n, &prev, &version, &why);
    }
    if (!header_ok) {
      if (last && size <= kWalHeaderBytes) {
        // An interrupted segment creation: nothing was ever acknowledged in it.
        if (unlink(path.c_str()) != 0) return IoError(errno, "deleting", path);
        changed_dir_ = true;
        AddCut(n, 0, size, true,
               absl::StrCat(why, " (", size, " bytes): an interrupted segment creation; deleted"));
        return absl::OkStatus();
      }
      *gap = true;
      return MoveToLost(n, absl::StrCat("its header is unreadable: ", why));
    }
    if (!kept_.empty() && prev != last_kept()) {
      *gap = true;
      report_->messages.push_back(absl::StrCat("wal gap: segment ", n, " follows segment ", prev,
                                               " but the log before it ends at segment ",
                                               last_kept(), "; the log is read up to segment ",
                                               last_kept(), ", and segment ", n,
                                               " and every later one are moved to ", LostDir()));
      return MoveToLost(n, absl::StrCat("it follows missing segment ", prev));
    }

    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    SegmentReader reader(fd, version, kWalHeaderBytes, size);
    uint64_t good_end = kWalHeaderBytes;
    for (;;) {
      uint64_t offset;
      absl::string_view payload;
      const SegmentReader::Result r = reader.Next(&offset, &payload, &why);
      if (r == SegmentReader::Result::kRecord) {
        if (report_->records == 0) report_->first = {n, offset};
        report_->records++;
        report_->payload_bytes += static_cast<int64_t>(payload.size());
        good_end = offset + kWalFrameBytes + payload.size();
        if (replay_ != nullptr && WalPosition{n, offset} >= from_) {
          absl::Status s = (*replay_)(WalPosition{n, offset}, payload);
          if (!s.ok()) return s;
        }
        continue;
      }
      if (r == SegmentReader::Result::kIoError) return IoError(reader.error(), "reading", path);
      if (r == SegmentReader::Result::kCorrupt) {
        if (ftruncate(fd, static_cast<off_t>(good_end)) != 0) {
          return IoError(errno, "truncating", path);
        }
        const int err = Fdatasync(fd);
        if (err != 0) return IoError(err, "syncing", path);
        AddCut(n, good_end, size - good_end, last, why);
      }
      break;
    }
    kept_[n] = good_end;
    if (report_->records > 0 && good_end > kWalHeaderBytes) report_->end = {n, good_end};
    return absl::OkStatus();
  }

  void AddCut(uint64_t n, uint64_t offset, uint64_t bytes, bool last, const std::string& why) {
    report_->cuts.push_back({n, offset, bytes, last, why});
    report_->bytes_cut += static_cast<int64_t>(bytes);
    report_->messages.push_back(
        absl::StrCat("wal recovery cut ", bytes, " bytes of ", Path(n), " at offset ", offset, " (",
                     last ? "the tail of the last segment" : "NOT the last segment: the rest of it",
                     "): ", why));
  }

  absl::Status MoveToLost(uint64_t n, const std::string& why) {
    const std::string lost = LostDir();
    if (mkdir(lost.c_str(), 0700) != 0 && errno != EEXIST) {
      return IoError(errno, "creating directory", lost);
    }
    const std::string from = Path(n);
    struct stat st;
    const int64_t bytes = stat(from.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
    std::string to = absl::StrCat(lost, "/", SegmentName(n));
    for (int i = 2; i < 1000 && access(to.c_str(), F_OK) == 0; ++i) {
      to = absl::StrCat(lost, "/", SegmentName(n), ".", i);
    }
    if (rename(from.c_str(), to.c_str()) != 0) return IoError(errno, "moving", from);
    absl::Status s = FsyncDir(lost);
    if (!s.ok()) return s;
    changed_dir_ = true;
    report_->lost_segments++;
    report_->lost_bytes += bytes;
    report_->lost_files.push_back(to);
    report_->messages.push_back(
        absl::StrCat("wal recovery moved ", from, " (", bytes, " bytes) to ", to, ": ", why));
    return absl::OkStatus();
  }

  const std::string dir_;
  WalRecoveryReport* const report_;
  const WalPosition from_;
  const Wal::ReplayCallback* const replay_;
  std::map<uint64_t, uint64_t> kept_;  // segment -> size after recovery
  uint64_t max_seen_ = 0;
  bool changed_dir_ = false;
};

}  // namespace

std::ostream& operator<<(std::ostream& out, const WalPosition& position) {
  return out << WalPositionToString(position);
}

std::string WalPositionToString(const WalPosition& position) {
  return absl::StrCat(position.segment, ":", position.offset);
}

absl::StatusOr<FsyncPolicy> ParseFsyncPolicy(absl::string_view text) {
  FsyncPolicy policy;
  if (text == "always") return policy;
  constexpr absl::string_view kInterval = "interval:";
  if (absl::StartsWith(text, kInterval)) {
    absl::Duration d;
    const absl::string_view rest = text.substr(kInterval.size());
    if (!absl::ParseDuration(rest, &d) || d <= absl::ZeroDuration() ||
        d == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid fsync policy \"", text,
                       "\": the interval must be a positive duration such ", "as interval:100ms"));
    }
    policy.kind = FsyncPolicy::Kind::kInterval;
    policy.interval = d;
    return policy;
  }
  return absl::InvalidArgumentError(absl::StrCat("invalid fsync policy \"", text,
                                                 "\": want \"always\" or \"interval:<duration>\" "
                                                 "(e.g. interval:100ms)"));
}

std::string FsyncPolicyToString(const FsyncPolicy& policy) {
  if (policy.kind == FsyncPolicy::Kind::kAlways) return "always";
  return absl::StrCat("interval:", absl::FormatDuration(policy.interval));
}

std::string WalRecoveryReport::Summary() const {
  return absl::StrCat("wal recovered: ", segments, " segments, ", records, " records (",
                      payload_bytes, " payload bytes) from ", WalPositionToString(first), " to ",
                      WalPositionToString(end), "; cut ", bytes_cut, " bytes in ", cuts.size(),
                      " places; ", lost_segments, " segments (", lost_bytes,
                      " bytes) moved to lost/; appending to segment ", next_segment);
}

absl::StatusOr<std::unique_ptr<Wal>> Wal::Open(const WalOptions& options,
                                               WalRecoveryReport* report) {
  return Open(options, report, WalPosition(), nullptr);
}

absl::StatusOr<std::unique_ptr<Wal>> Wal::Open(const WalOptions& options, WalRecoveryReport* report,
                                               WalPosition from, const ReplayCallback& replay) {
  return Open(options, report, from, &replay);
}

absl::StatusOr<std::unique_ptr<Wal>> Wal::Open(const WalOptions& options, WalRecoveryReport* report,
                                               WalPosition from, const ReplayCallback* replay) {
  if (options.dir.empty()) return absl::InvalidArgumentError("WAL directory not set");
  if (options.segment_bytes == 0) {
    return absl::InvalidArgumentError("WAL segment size must be positive");
  }
  if (options.fsync.kind == FsyncPolicy::Kind::kInterval &&
      options.fsync.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("WAL fsync interval must be positive");
  }
  if (mkdir(options.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return IoError(errno, "creating directory", options.dir);
  }
  struct stat st;
  if (stat(options.dir.c_str(), &st) != 0) return IoError(errno, "reading", options.dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("WAL directory ", options.dir, " is not a directory"));
  }
  WalRecoveryReport local;
  if (report == nullptr) report = &local;
  *report = WalRecoveryReport();
  Recovery recovery(options.dir, report, from, replay);
  absl::Status s = recovery.Run();
  if (!s.ok()) return s;
  const uint64_t last_kept = recovery.last_kept();
  std::unique_ptr<Wal> wal(new Wal(options, std::move(recovery.kept()), report->next_segment));
  wal->prev_segment_ = last_kept;
  wal->writer_ = std::thread(&Wal::WriterLoop, wal.get());
  return wal;
}

Wal::Wal(const WalOptions& options, std::map<uint64_t, uint64_t> segments, uint64_t next_segment)
    : options_(options), next_segment_(next_segment) {
  MutexLock lock(&mu_);
  segments_ = std::move(segments);
  if (!segments_.empty()) {
    figures_.durable_end = {segments_.rbegin()->first, segments_.rbegin()->second};
  }
}

Wal::~Wal() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  wake_.SignalAll();
  if (writer_.joinable()) writer_.join();
}

std::string Wal::SegmentPath(uint64_t segment) const {
  return absl::StrCat(options_.dir, "/", SegmentName(segment));
}

void Wal::Append(std::string payload, DoneCallback done) {
  Append(std::move(payload), absl::string_view(), nullptr, std::move(done));
}

void Wal::Append(std::string head, absl::string_view body, std::shared_ptr<const void> body_owner,
                 DoneCallback done) {
  Pending p;
  const size_t size = head.size() + body.size();
  if (size == 0) {
    p.error = absl::InvalidArgumentError("empty WAL record");
  } else if (size > kMaxWalRecordBytes) {
    p.error = absl::InvalidArgumentError(
        absl::StrCat("WAL record of ", size, " bytes over the maximum of ", kMaxWalRecordBytes));
  } else {
    p.head = std::move(head);
    p.body = body;
    p.body_owner = std::move(body_owner);
  }
  p.done = std::move(done);
  {
    MutexLock lock(&mu_);
    queue_.push_back(std::move(p));
    figures_.queued_records++;
  }
  wake_.Signal();
}

void Wal::WriterLoop() {
  for (;;) {
    std::deque<Pending> group;
    bool stopping;
    {
      MutexLock lock(&mu_);
      while (queue_.empty() && !stop_) {
        if (unsynced_.empty()) {
          wake_.Wait(&mu_);
          continue;
        }
        // Interval policy, records waiting for their fsync: wake up when it is due.
        const auto due = last_sync_ + absl::ToChronoNanoseconds(options_.fsync.interval);
        const auto now = std::chrono::steady_clock::now();
        if (now >= due) break;
        wake_.WaitFor(&mu_, due - now);
      }
      group.swap(queue_);
      stopping = stop_;
    }
    if (!group.empty()) WriteGroup(&group);
    if (!unsynced_.empty()) {
      const bool due = stopping || options_.fsync.kind == FsyncPolicy::Kind::kAlways ||
                       !synced_once_ ||
                       std::chrono::steady_clock::now() >=
                           last_sync_ + absl::ToChronoNanoseconds(options_.fsync.interval);
      if (due) SyncAndComplete();
    }
    if (stopping) {
      MutexLock lock(&mu_);
      if (queue_.empty() && unsynced_.empty()) break;
    }
  }
  CloseSegment();
}

void Wal::WriteGroup(std::deque<Pending>* group) {
  std::vector<Pending> valid;
  valid.reserve(group->size());
  for (Pending& p : *group) {
    if (p.error.ok()) {
      valid.push_back(std::move(p));
      continue;
    }
    {
      MutexLock lock(&mu_);
      figures_.records_failed++;
      figures_.queued_records--;
    }
    p.done(std::move(p.error), WalPosition());
  }
  group->clear();
  if (valid.empty()) return;

  // Rotation at the first record boundary at or past segment_bytes, within a group too.
  size_t next = 0;
  while (next < valid.size()) {
    if (fd_ >= 0 && size_ >= options_.segment_bytes) CloseSegment();
    if (fd_ < 0) {
      absl::Status s = CreateSegment();
      if (!s.ok()) {
        RecordError(s);
        std::vector<Written> failed;
        for (size_t i = next; i < valid.size(); ++i) {
          failed.push_back({std::move(valid[i].done), WalPosition(), 0});
        }
        FailUnsynced(s, &failed);
        return;
      }
    }
    size_t end = next;
    uint64_t offset = size_;
    while (end < valid.size() && (end == next || offset < options_.segment_bytes)) {
      offset += kWalFrameBytes + valid[end].size();
      ++end;
    }
    absl::Status s = WriteRecords(&valid, next, end);
    if (!s.ok()) {
      std::vector<Written> failed;
      for (size_t i = end; i < valid.size(); ++i) {
        failed.push_back({std::move(valid[i].done), WalPosition(), 0});
      }
      FailUnsynced(s, &failed);
      return;
    }
    next = end;
  }
}

absl::Status Wal::WriteRecords(std::vector<Pending>* records, size_t begin, size_t end) {
  const size_t count = end - begin;
  std::string frames(kWalFrameBytes * count, '\0');
  std::vector<struct iovec> iov;
  iov.reserve(3 * count);
  std::vector<Written> written;
  written.reserve(count);
  uint64_t offset = size_;
  for (size_t i = begin; i < end; ++i) {
    const Pending& record = (*records)[i];
    const size_t size = record.size();
    char* frame = &frames[kWalFrameBytes * (i - begin)];
    PutU32(frame, static_cast<uint32_t>(size));
    PutU32(frame + 4, Crc32cExtend(Crc32c(record.head.data(), record.head.size()),
                                   record.body.data(), record.body.size()));
    iov.push_back({frame, kWalFrameBytes});
    if (!record.head.empty())
      iov.push_back({const_cast<char*>(record.head.data()), record.head.size()});
    if (!record.body.empty())
      iov.push_back({const_cast<char*>(record.body.data()), record.body.size()});
    written.push_back(
        {std::move((*records)[i].done), WalPosition{segment_, offset}, static_cast<int64_t>(size)});
    offset += kWalFrameBytes + size;
  }
  {
    MutexLock lock(&mu_);
    figures_.groups++;
    figures_.largest_group = std::max<int64_t>(figures_.largest_group, static_cast<int64_t>(count));
  }
  const int err = PwritevAll(fd_, &iov, size_);
  if (err != 0) {
    const absl::Status s = IoError(err, "writing", SegmentPath(segment_));
    RecordError(s);
    FailUnsynced(s, &written);
    return s;
  }
  size_ = offset;
  for (Written& w : written) unsynced_.push_back(std::move(w));
  return absl::OkStatus();
}

void Wal::SyncAndComplete() {
  if (fd_ < 0 || unsynced_.empty()) return;
  const int err = Fdatasync(fd_);
  last_sync_ = std::chrono::steady_clock::now();
  synced_once_ = true;
  {
    MutexLock lock(&mu_);
    figures_.fsyncs++;
  }
  if (err != 0) {
    const absl::Status s = IoError(err, "syncing", SegmentPath(segment_));
    RecordError(s);
    FailUnsynced(s, nullptr);
    return;
  }
  durable_size_ = size_;
  std::vector<Written> done;
  done.swap(unsynced_);
  {
    MutexLock lock(&mu_);
    segments_[segment_] = durable_size_;
    figures_.durable_end = {segment_, durable_size_};
    figures_.records_appended += static_cast<int64_t>(done.size());
    for (const Written& w : done) figures_.bytes_appended += w.payload_bytes;
    figures_.queued_records -= static_cast<int64_t>(done.size());
  }
  CrashPoint("wal.after_sync");  // durable, not yet acknowledged
  for (Written& w : done) w.done(absl::OkStatus(), w.position);
  DropWrittenPages(/*to_end=*/false);
}

void Wal::DropWrittenPages(bool to_end) {
  if (!options_.drop_written_pages || fd_ < 0) return;
  // Advisory: the pages are clean (fdatasync'ed), so this only frees them; errors are ignored.
  if (to_end) {
    (void)posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);  // the whole segment
    dropped_size_ = durable_size_;
    return;
  }
  // Whole pages only: the partial last page is written again by the next group. The kernel
  // drops only folios (of up to 2 MiB) wholly inside the range, so a folio that straddled the
  // previous end was kept then: start at the 2 MiB boundary below it to drop it now.
  constexpr uint64_t kPage = 4096;
  constexpr uint64_t kLargestFolio = 2u << 20;
  const uint64_t end = durable_size_ / kPage * kPage;
  if (end <= dropped_size_) return;
  const uint64_t start = dropped_size_ / kLargestFolio * kLargestFolio;
  (void)posix_fadvise(fd_, static_cast<off_t>(start), static_cast<off_t>(end - start),
                      POSIX_FADV_DONTNEED);
  dropped_size_ = end;
}

absl::Status Wal::CreateSegment() {
  const uint64_t n = next_segment_;
  const std::string path = SegmentPath(n);
  // The number is above every segment ever seen here, so an existing file can only be a
  // creation of ours that failed half way: truncate it.
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return IoError(errno, "creating", path);
  const std::string header = MakeHeader(n, prev_segment_);
  std::vector<struct iovec> iov = {{const_cast<char*>(header.data()), header.size()}};
  int err = PwritevAll(fd, &iov, 0);
  if (err == 0) err = Fdatasync(fd);
  absl::Status status = err == 0 ? FsyncDir(options_.dir) : IoError(err, "creating", path);
  if (!status.ok()) {
    close(fd);
    unlink(path.c_str());
    (void)FsyncDir(options_.dir);
    return status;
  }
  fd_ = fd;
  segment_ = n;
  prev_segment_ = n;
  next_segment_ = n + 1;
  size_ = durable_size_ = kWalHeaderBytes;
  dropped_size_ = 0;
  MutexLock lock(&mu_);
  segments_[n] = kWalHeaderBytes;
  open_segment_ = n;
  return absl::OkStatus();
}

void Wal::CloseSegment() {
  if (fd_ < 0) return;
  SyncAndComplete();
  if (fd_ < 0) return;  // the sync failed and the segment could not be truncated
  if (durable_size_ == size_) DropWrittenPages(/*to_end=*/true);
  close(fd_);
  fd_ = -1;
  MutexLock lock(&mu_);
  open_segment_ = 0;
}

void Wal::FailUnsynced(const absl::Status& status, std::vector<Written>* group) {
  // Always: a failed write may have written part of its bytes past size_.
  if (fd_ >= 0) {
    if (ftruncate(fd_, static_cast<off_t>(durable_size_)) == 0) {
      size_ = durable_size_;
    } else {
      // The segment may hold bytes that were never acknowledged; stop writing to it. Recovery
      // either reads them as (unacknowledged, harmless) records or cuts them.
      RecordError(IoError(errno, "truncating", SegmentPath(segment_)));
      close(fd_);
      fd_ = -1;
      MutexLock lock(&mu_);
      open_segment_ = 0;
    }
  }
  std::vector<Written> failed;
  failed.swap(unsynced_);
  if (group != nullptr) {
    for (Written& w : *group) failed.push_back(std::move(w));
  }
  {
    MutexLock lock(&mu_);
    figures_.records_failed += static_cast<int64_t>(failed.size());
    figures_.queued_records -= static_cast<int64_t>(failed.size());
  }
  // A Status of its own per callback, so the writer keeps no reference to what a callback
  // moves away (TSan cannot see the reference count inside Debian's Abseil).
  for (Written& w : failed) w.done(absl::Status(status.code(), status.message()), WalPosition());
}

void Wal::RecordError(const absl::Status& status) {
  MutexLock lock(&mu_);
  figures_.write_errors++;
  figures_.last_error = std::string(status.message());
}

absl::Status Wal::Replay(WalPosition from, const ReplayCallback& callback) const {
  std::map<uint64_t, uint64_t> segments;
  {
    MutexLock lock(&mu_);
    segments = segments_;
  }
  for (auto it = segments.lower_bound(from.segment); it != segments.end(); ++it) {
    const uint64_t n = it->first;
    const std::string path = SegmentPath(n);
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoError(errno, "opening", path);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    const uint64_t start =
        n == from.segment ? std::max<uint64_t>(from.offset, kWalHeaderBytes) : kWalHeaderBytes;
    // The header again, for the segment's version (Open validated it).
    char header[kWalHeaderBytes];
    uint64_t prev = 0;
    uint32_t version = 0;
    std::string why;
    const ssize_t got = pread(fd, header, kWalHeaderBytes, 0);
    if (got < 0) {
      const int err = errno;
      close(fd);
      return IoError(err, "reading", path);
    }
    if (static_cast<uint64_t>(got) != kWalHeaderBytes ||
        !ParseHeader(header, n, &prev, &version, &why)) {
      close(fd);
      return absl::DataLossError(
          absl::StrCat("WAL segment ", path, " changed on disk since it was opened: ",
                       static_cast<uint64_t>(got) == kWalHeaderBytes ? why : "incomplete header"));
    }
    SegmentReader reader(fd, version, start, it->second);
    absl::Status status;
    for (;;) {
      uint64_t offset;
      absl::string_view payload;
      std::string why;
      const SegmentReader::Result r = reader.Next(&offset, &payload, &why);
      if (r == SegmentReader::Result::kRecord) {
        status = callback(WalPosition{n, offset}, payload);
        if (!status.ok()) break;
        continue;
      }
      if (r == SegmentReader::Result::kIoError) {
        status = IoError(reader.error(), "reading", path);
      } else if (r == SegmentReader::Result::kCorrupt) {
        status = absl::DataLossError(
            absl::StrCat("WAL segment ", path, " changed on disk since it was opened: ", why));
      }
      break;
    }
    close(fd);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Wal::TruncateBefore(WalPosition position) {
  std::vector<std::pair<uint64_t, uint64_t>> victims;  // segment, size
  {
    MutexLock lock(&mu_);
    for (auto it = segments_.begin(); it != segments_.end() && it->first < position.segment;) {
      if (it->first == open_segment_) break;
      victims.push_back(*it);
      it = segments_.erase(it);
    }
  }
  // Oldest first, so a crash half way leaves the log contiguous.
  int deleted = 0;
  absl::Status status;
  for (const auto& victim : victims) {
    const std::string path = SegmentPath(victim.first);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      status = IoError(errno, "deleting", path);
      MutexLock lock(&mu_);
      for (size_t i = static_cast<size_t>(deleted); i < victims.size(); ++i) {
        segments_.insert(victims[i]);
      }
      break;
    }
    ++deleted;
  }
  if (deleted > 0) {
    absl::Status s = FsyncDir(options_.dir);
    if (status.ok()) status = s;
  }
  if (!status.ok()) return status;
  return deleted;
}

WalFigures Wal::Figures() const {
  MutexLock lock(&mu_);
  WalFigures f = figures_;
  f.segments = static_cast<int64_t>(segments_.size());
  f.bytes_on_disk = 0;
  for (const auto& s : segments_) f.bytes_on_disk += static_cast<int64_t>(s.second);
  return f;
}

}  // namespace rwexport
