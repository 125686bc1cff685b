#include "lib/remote_write/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "lib/common/log.h"
#include "lib/common/stable_hash.h"

namespace rwexport {
namespace {

constexpr absl::string_view kMagic = "rwexport-spool 1";
constexpr absl::string_view kSuffix = ".rwspool";
constexpr absl::string_view kTempSuffix = ".tmp";
// A file written for a group commit (spool_index.h), renamed once the group is synced.
constexpr absl::string_view kPendingSuffix = ".pending";
// Headers are small; a file whose header does not end within this many bytes is corrupt.
constexpr size_t kMaxHeaderBytes = 64 << 10;

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int error = errno;
  return absl::ErrnoToStatus(error, absl::StrCat(what, " \"", path, "\""));
}

// Parses the header at the start of `data`; sets `*end` to the offset of the first request.
absl::StatusOr<SpoolFileHeader> ParseHeader(absl::string_view data, size_t* end) {
  const size_t blank = data.find("\n\n");
  if (blank == absl::string_view::npos) return absl::DataLossError("spool header not terminated");
  *end = blank + 2;
  std::vector<absl::string_view> lines = absl::StrSplit(data.substr(0, blank), '\n');
  if (lines.empty() || lines[0] != kMagic) return absl::DataLossError("not a spool file");
  SpoolFileHeader header;
  int seen = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t space = lines[i].find(' ');
    if (space == absl::string_view::npos) return absl::DataLossError("malformed spool header");
    const absl::string_view name = lines[i].substr(0, space);
    const absl::string_view value = lines[i].substr(space + 1);
    bool ok = true;
    if (name == "key") {
      ok = absl::SimpleHexAtoi(value, &header.key);
      seen |= 1;
    } else if (name == "url") {
      header.display_url = std::string(value);
    } else if (name == "points") {
      ok = absl::SimpleAtoi(value, &header.points);
      seen |= 2;
    } else if (name == "first_ts") {
      ok = absl::SimpleAtoi(value, &header.first_timestamp_ms);
    } else if (name == "last_ts") {
      ok = absl::SimpleAtoi(value, &header.last_timestamp_ms);
    } else if (name == "requests") {
      ok = absl::SimpleAtoi(value, &header.requests);
      seen |= 4;
    }  // unknown names are ignored: later versions may add some
    if (!ok) return absl::DataLossError(absl::StrCat("bad spool header field ", name));
  }
  if (seen != 7) return absl::DataLossError("spool header lacks key, points or requests");
  return header;
}

// "<16 hex>-<20 digits>.rwspool" -> sequence.
bool ParseFileName(absl::string_view name, uint64_t* sequence) {
  if (!absl::ConsumeSuffix(&name, kSuffix) || name.size() != 16 + 1 + 20 || name[16] != '-') {
    return false;
  }
  uint64_t key;
  return absl::SimpleHexAtoi(name.substr(0, 16), &key) &&
         absl::SimpleAtoi(name.substr(17), sequence);
}

}  // namespace

uint64_t SpoolKey(absl::string_view url,
                  const std::vector<std::pair<std::string, std::string>>& headers,
                  absl::string_view scope) {
  std::vector<std::pair<std::string, std::string>> sorted = headers;
  std::sort(sorted.begin(), sorted.end());
  uint64_t hash = kFnv1a64Offset;
  auto mix = [&hash](absl::string_view bytes) { hash = Fnv1a64(bytes, hash); };
  mix(url);
  for (const auto& [name, value] : sorted) {
    mix("\n");
    mix(absl::AsciiStrToLower(name));
    mix(": ");
    mix(value);
  }
  if (!scope.empty()) {
    mix("\nscope ");
    mix(scope);
  }
  return hash;
}

std::string SpoolFilePath(absl::string_view dir, uint64_t key, uint64_t sequence) {
  return absl::StrFormat("%s/%016x-%020d%s", dir, key, sequence, kSuffix);
}

std::string EncodeSpoolFile(SpoolFileHeader header, const std::vector<SpooledRequest>& requests) {
  header.requests = requests.size();
  header.points = 0;
  size_t body_bytes = 0;
  for (const SpooledRequest& r : requests) {
    header.points += r.points;
    body_bytes += r.body.size() + 64;
  }
  std::string url = header.display_url;
  std::replace_if(
      url.begin(), url.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  std::string out =
      absl::StrFormat("%s\nkey %016x\nurl %s\npoints %d\nfirst_ts %d\nlast_ts %d\nrequests %d\n\n",
                      kMagic, header.key, url, header.points, header.first_timestamp_ms,
                      header.last_timestamp_ms, header.requests);
  out.reserve(out.size() + body_bytes);
  for (const SpooledRequest& r : requests) {
    absl::StrAppendFormat(&out, "request %d %d %d %d\n", r.points, r.chain, r.max_timestamp_ms,
                          r.body.size());
    out.append(r.body);
  }
  return out;
}

namespace {

// Writes `contents` to a new file `path`; `sync`: fdatasync before closing. The file is removed
// on failure.
absl::Status WriteWholeFile(const std::string& path, absl::string_view contents, bool sync) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("cannot create spool file", path);
  absl::string_view left = contents;
  while (!left.empty()) {
    const ssize_t n = write(fd, left.data(), left.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status status = ErrnoError("cannot write spool file", path);
      close(fd);
      unlink(path.c_str());
      return status;
    }
    left.remove_prefix(static_cast<size_t>(n));
  }
  if ((sync && fdatasync(fd) != 0) || close(fd) != 0) {
    absl::Status status = ErrnoError("cannot flush spool file", path);
    unlink(path.c_str());
    return status;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SyncSpoolDir(const std::string& dir) {
  const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoError("cannot open spool directory", dir);
  const bool synced = fsync(dir_fd) == 0;
  absl::Status status = synced ? absl::OkStatus() : ErrnoError("cannot sync spool directory", dir);
  close(dir_fd);
  return status;
}

absl::Status WriteSpoolFile(const std::string& path, absl::string_view contents) {
  const std::string temp = absl::StrCat(path, kTempSuffix);
  if (absl::Status written = WriteWholeFile(temp, contents, /*sync=*/true); !written.ok()) {
    return written;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoError("cannot rename spool file", temp);
    unlink(temp.c_str());
    return status;
  }
  // The rename itself is durable only once the directory is synced.
  const size_t slash = path.rfind('/');
  return SyncSpoolDir(slash == std::string::npos ? "." : path.substr(0, slash));
}

std::string PendingSpoolFilePath(absl::string_view path) {
  return absl::StrCat(path, kPendingSuffix);
}

absl::Status WritePendingSpoolFile(const std::string& path, absl::string_view contents) {
  return WriteWholeFile(PendingSpoolFilePath(path), contents, /*sync=*/false);
}

absl::StatusOr<std::pair<SpoolFileHeader, std::vector<SpooledRequest>>> ReadSpoolFile(
    const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open spool file", path);
  std::string data;
  char chunk[64 << 10];
  while (true) {
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = ErrnoError("cannot read spool file", path);
      close(fd);
      return status;
    }
    if (n == 0) break;
    data.append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  size_t offset = 0;
  absl::StatusOr<SpoolFileHeader> header = ParseHeader(data, &offset);
  if (!header.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": ", header.status().message()));
  }
  std::vector<SpooledRequest> requests;
  uint64_t points = 0;
  for (uint64_t i = 0; i < header->requests; ++i) {
    const size_t eol = data.find('\n', offset);
    if (eol == std::string::npos) return absl::DataLossError(absl::StrCat(path, ": truncated"));
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(data).substr(offset, eol - offset), ' ');
    SpooledRequest r;
    size_t bytes = 0;
    if (fields.size() != 5 || fields[0] != "request" || !absl::SimpleAtoi(fields[1], &r.points) ||
        !absl::SimpleAtoi(fields[2], &r.chain) ||
        !absl::SimpleAtoi(fields[3], &r.max_timestamp_ms) || !absl::SimpleAtoi(fields[4], &bytes) ||
        bytes > data.size() - (eol + 1)) {
      return absl::DataLossError(absl::StrCat(path, ": malformed request ", i));
    }
    r.body = data.substr(eol + 1, bytes);
    offset = eol + 1 + bytes;
    points += r.points;
    requests.push_back(std::move(r));
  }
  if (offset != data.size() || points != header->points) {
    return absl::DataLossError(absl::StrCat(path, ": sizes do not add up"));
  }
  return std::make_pair(*std::move(header), std::move(requests));
}

absl::StatusOr<std::vector<SpoolFileInfo>> ScanSpoolDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoError("cannot create spool directory", dir);
  }
  DIR* listing = opendir(dir.c_str());
  if (listing == nullptr) return ErrnoError("cannot list spool directory", dir);
  std::vector<std::string> names;
  while (dirent* entry = readdir(listing)) names.emplace_back(entry->d_name);
  closedir(listing);

  std::vector<SpoolFileInfo> files;
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (absl::EndsWith(name, absl::StrCat(kSuffix, kTempSuffix)) ||
        absl::EndsWith(name, absl::StrCat(kSuffix, kPendingSuffix))) {
      unlink(path.c_str());  // a write interrupted by a crash, or a group commit that never ended
      continue;
    }
    SpoolFileInfo info;
    if (!ParseFileName(name, &info.sequence)) continue;
    info.path = path;
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st = {};
    fstat(fd, &st);
    info.bytes = static_cast<uint64_t>(st.st_size);
    std::string head(std::min<uint64_t>(info.bytes, kMaxHeaderBytes), '\0');
    const ssize_t n = head.empty() ? 0 : pread(fd, &head[0], head.size(), 0);
    close(fd);
    head.resize(std::max<ssize_t>(n, 0));
    size_t end = 0;
    absl::StatusOr<SpoolFileHeader> header = ParseHeader(head, &end);
    if (!header.ok()) {
      LogError("unreadable spool file set aside",
               {{"file", path}, {"error", std::string(header.status().message())}});
      rename(path.c_str(), absl::StrCat(path, ".corrupt").c_str());
      continue;
    }
    info.header = *std::move(header);
    files.push_back(std::move(info));
  }
  std::sort(files.begin(), files.end(),
            [](const SpoolFileInfo& a, const SpoolFileInfo& b) { return a.sequence < b.sequence; });
  return files;
}

}  // namespace rwexport
