#include "lib/k6/line_source.h"

#include <zlib.h>

#include <vector>

namespace rwexport {
namespace k6_reader {
namespace {

constexpr size_t kCompressedChunkBytes = 256 << 10;

class GzipSource : public ByteSource {
 public:
  GzipSource(ByteSource* raw, std::string consumed) : raw_(raw), in_(std::move(consumed)) {
    std::memset(&stream_, 0, sizeof(stream_));
    // 16 + MAX_WBITS: a gzip header and trailer, not a raw or zlib stream.
    init_ = inflateInit2(&stream_, 16 + MAX_WBITS);
  }
  ~GzipSource() override {
    if (init_ == Z_OK) inflateEnd(&stream_);
  }

  absl::StatusOr<size_t> Read(char* dst, size_t n) override {
    if (init_ != Z_OK) return absl::InternalError("gzip: cannot initialise zlib");
    size_t produced = 0;
    while (produced == 0 && n > 0) {
      if (stream_.avail_in == 0) {
        if (pos_ < in_.size()) {
          SetInput();
        } else {
          if (raw_eof_) {
            if (in_member_) {
              return absl::DataLossError("gzip: the compressed data ends too early (truncated)");
            }
            return 0;
          }
          in_.resize(kCompressedChunkBytes);
          absl::StatusOr<size_t> got = raw_->Read(in_.data(), in_.size());
          if (!got.ok()) return got.status();
          in_.resize(*got);
          pos_ = 0;
          if (*got == 0) {
            raw_eof_ = true;
            continue;
          }
          SetInput();
        }
      }
      if (!in_member_) {
        // A new member begins (after the first: another gzip file appended to the first).
        if (inflateReset(&stream_) != Z_OK) return absl::InternalError("gzip: inflateReset");
        in_member_ = true;
      }
      stream_.next_out = reinterpret_cast<Bytef*>(dst + produced);
      stream_.avail_out = static_cast<uInt>(std::min<size_t>(n - produced, 1u << 30));
      const uInt avail_before = stream_.avail_in;
      const int rc = inflate(&stream_, Z_NO_FLUSH);
      produced = reinterpret_cast<char*>(stream_.next_out) - dst;
      pos_ += avail_before - stream_.avail_in;
      if (rc == Z_STREAM_END) {
        in_member_ = false;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return absl::DataLossError(absl::StrCat(
            "gzip: corrupt data (", stream_.msg != nullptr ? stream_.msg : "zlib error", ")"));
      }
    }
    return produced;
  }

 private:
  void SetInput() {
    stream_.next_in = reinterpret_cast<Bytef*>(in_.data() + pos_);
    stream_.avail_in = static_cast<uInt>(in_.size() - pos_);
  }

  ByteSource* raw_;
  std::string in_;  // compressed bytes; [pos_, size) not yet given to zlib
  size_t pos_ = 0;
  bool raw_eof_ = false;
  bool in_member_ = true;
  z_stream stream_;
  int init_ = Z_OK;
};

}  // namespace

bool IsGzip(absl::string_view head) {
  return head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
         static_cast<unsigned char>(head[1]) == 0x8b;
}

std::unique_ptr<ByteSource> GunzipSource(ByteSource* raw, std::string consumed) {
  return std::make_unique<GzipSource>(raw, std::move(consumed));
}

}  // namespace k6_reader
}  // namespace rwexport
