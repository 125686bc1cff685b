// Internal to the k6 results reader: where its bytes come from (a file descriptor, a stream, a
// buffer, or any of them gzip-compressed, inflated on the fly with zlib) and how they are cut
// into records (lines; CSV lines joined while a quoted field is open), in bounded memory.
// Not thread-safe: one reader per thread.
#ifndef RWEXPORT_LIB_K6_LINE_SOURCE_H_
#define RWEXPORT_LIB_K6_LINE_SOURCE_H_

#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <istream>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lib/k6/results_reader.h"

namespace rwexport {
namespace k6_reader {

inline constexpr size_t kInitialBufferBytes = 1 << 20;
// A longer line is no k6 output; stop rather than buffer a whole binary file.
inline constexpr size_t kMaxRecordBytes = 64 << 20;

// Where the bytes come from (lib/k6/results_reader.h: files, streams, buffers, live input).
using ByteSource = K6ByteSource;

class FdSource : public ByteSource {
 public:
  FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    for (;;) {
      ssize_t got = ::read(fd_, dst, n);
      if (got >= 0) return static_cast<size_t>(got);
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("reading ", name_));
    }
  }

 private:
  int fd_;
  std::string name_;
};

class StreamSource : public ByteSource {
 public:
  explicit StreamSource(std::istream& in) : in_(in) {}
  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    if (in_.eof()) return 0;
    in_.read(dst, static_cast<std::streamsize>(n));
    if (in_.bad()) return absl::DataLossError("reading the k6 results stream failed");
    return static_cast<size_t>(in_.gcount());
  }

 private:
  std::istream& in_;
};

class BufferSource : public ByteSource {
 public:
  explicit BufferSource(absl::string_view data) : data_(data) {}
  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    size_t take = std::min(n, data_.size());
    std::memcpy(dst, data_.data(), take);
    data_.remove_prefix(take);
    return take;
  }

 private:
  absl::string_view data_;
};

// Splits the input into records: lines, or for CSV lines joined while a quoted field is open.
// Every record handed out is followed in memory by at least SIMDJSON_PADDING readable bytes,
// so simdjson can parse it in place.
class RecordReader {
 public:
  explicit RecordReader(ByteSource* source) : source_(source) { Allocate(kInitialBufferBytes); }

  // Reads the first chunk, so that Buffered() can be inspected before the first Next().
  absl::Status Prime() { return Fill(); }
  absl::string_view Buffered() const {
    return absl::string_view(buf_.get() + begin_, end_ - begin_);
  }

  // The next record (without its line end) and its first line number; false at the end.
  absl::StatusOr<bool> Next(bool csv, absl::string_view* record, int64_t* first_line) {
    size_t scan = begin_;
    bool in_quotes = false;
    int64_t lines = 0;
    for (;;) {
      const char* base = buf_.get();
      const char* nl = static_cast<const char*>(std::memchr(base + scan, '\n', end_ - scan));
      if (nl != nullptr) {
        size_t nl_pos = static_cast<size_t>(nl - base);
        if (csv) in_quotes ^= (std::count(base + scan, nl, '"') & 1) != 0;
        ++lines;
        if (!in_quotes) {
          Emit(begin_, nl_pos, lines, record, first_line);
          begin_ = nl_pos + 1;
          return true;
        }
        scan = nl_pos + 1;
        continue;
      }
      if (eof_) {
        if (begin_ == end_) return false;
        // The last line has no line end (or, in CSV, a quote was left open).
        Emit(begin_, end_, lines + (scan < end_ ? 1 : 0), record, first_line);
        begin_ = end_;
        return true;
      }
      if (end_ - begin_ >= kMaxRecordBytes) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_ + 1, " is longer than ",
                                                       kMaxRecordBytes >> 20,
                                                       " MiB; this is not a k6 results file"));
      }
      size_t offset = scan - begin_;
      absl::Status status = Fill();
      if (!status.ok()) return status;
      scan = begin_ + offset;
    }
  }

  int64_t lines() const { return line_; }

 private:
  void Allocate(size_t capacity) {
    std::unique_ptr<char[]> fresh(new char[capacity + simdjson::SIMDJSON_PADDING]());
    if (buf_ != nullptr) std::memcpy(fresh.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    buf_ = std::move(fresh);
    capacity_ = capacity;
  }

  // Moves the pending bytes to the front (growing the buffer if they fill it) and reads more.
  absl::Status Fill() {
    if (begin_ > 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == capacity_) Allocate(capacity_ * 2);
    absl::StatusOr<size_t> got = source_->Read(buf_.get() + end_, capacity_ - end_);
    if (!got.ok()) return got.status();
    if (*got == 0) eof_ = true;
    end_ += *got;
    return absl::OkStatus();
  }

  void Emit(size_t from, size_t to, int64_t lines, absl::string_view* record, int64_t* first_line) {
    if (to > from && buf_[to - 1] == '\r') --to;
    *record = absl::string_view(buf_.get() + from, to - from);
    *first_line = line_ + 1;
    line_ += lines;
  }

  ByteSource* source_;
  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  int64_t line_ = 0;
};

// Whether `head` (the first bytes of the input) starts like a gzip file.
bool IsGzip(absl::string_view head);

// The gzip-compressed bytes of `raw`, inflated as they are read: `consumed` holds the bytes
// already read from `raw` (they come first). Concatenated gzip members are read one after
// the other, as gunzip does. A corrupt or truncated stream is a DataLossError.
std::unique_ptr<ByteSource> GunzipSource(ByteSource* raw, std::string consumed);

}  // namespace k6_reader
}  // namespace rwexport

#endif  // RWEXPORT_LIB_K6_LINE_SOURCE_H_
