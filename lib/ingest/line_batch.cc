#include "lib/ingest/line_batch.h"

#include <cstring>
#include <functional>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

constexpr size_t kExcerptBytes = 120;

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

std::string Excerpt(absl::string_view line) {
  if (line.size() <= kExcerptBytes) return std::string(line);
  // Cut on a UTF-8 character boundary.
  size_t cut = kExcerptBytes;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xc0) == 0x80) --cut;
  return absl::StrCat(line.substr(0, cut), "...");
}

}  // namespace

void LineBatchBuilder::AppendTag(std::string* out, absl::string_view key, absl::string_view value) {
  // v1::Sample field 2 (tags), a v1::Tag message: field 1 key, field 2 value.
  const size_t message =
      1 + VarintSize(key.size()) + key.size() + 1 + VarintSize(value.size()) + value.size();
  out->push_back('\x12');
  AppendVarint(out, message);
  out->push_back('\x0a');
  AppendVarint(out, key.size());
  out->append(key.data(), key.size());
  out->push_back('\x12');
  AppendVarint(out, value.size());
  out->append(value.data(), value.size());
}

void LineBatchBuilder::Reject(size_t number, absl::string_view line, RejectionReason reason,
                              std::string why) {
  AddRejection(&rejections_, reason, absl::StrCat("line ", number, ": ", why));
  if (!first_bad_.has_value()) first_bad_ = BadLine{number, Excerpt(line), std::move(why)};
}

bool LineBatchBuilder::AddSample(const ParsedLine& line, std::string* why,
                                 RejectionReason* reason) {
  const LineField* value = nullptr;
  for (const LineField& f : line.fields) {
    if (f.key == "value") value = &f;
  }
  if (value == nullptr) {
    *reason = RejectionReason::kMissingValue;
    *why = "no field \"value\"";
    return false;
  }
  if (value->type == LineField::Type::kString || value->type == LineField::Type::kBoolean) {
    *reason = RejectionReason::kInvalidValue;
    *why = absl::StrCat("field \"value\" is a ",
                        value->type == LineField::Type::kString ? "string" : "boolean",
                        ", not a number");
    return false;
  }
  // Fields other than `value` become tags, after the line's own.
  field_tags_.clear();
  for (const LineField& f : line.fields) {
    if (&f == value || f.text.empty()) continue;
    bool taken = false;
    for (const auto& tag : line.tags) taken = taken || tag.first == f.key;
    if (!taken) AppendTag(&field_tags_, f.key, f.text);
  }
  // The same tags as the previous sample (k6 writes a request's samples one after the other):
  // the same encoded bytes, not encoded again.
  const bool same =
      previous_is_last_sample_ && line.tags_same_as_previous && field_tags_ == previous_field_tags_;
  uint32_t tags_begin;
  uint32_t tags_end;
  if (same) {
    std::tie(tags_begin, tags_end) = tag_ranges_.back();
  } else {
    tags_begin = static_cast<uint32_t>(tags_.size());
    for (const auto& [key, v] : line.tags) AppendTag(&tags_, key, v);
    tags_.append(field_tags_);
    tags_end = static_cast<uint32_t>(tags_.size());
    previous_field_tags_.swap(field_tags_);
  }
  RawSample sample;
  const char* name = line.measurement.data();
  if (name < body_.data() || name >= body_.data() + body_.size()) {
    copied_names_.push_back({batch_.samples.size(),
                             {static_cast<uint32_t>(names_.size()),
                              static_cast<uint32_t>(names_.size() + line.measurement.size())}});
    names_.append(line.measurement.data(), line.measurement.size());
  } else {
    sample.metric = line.measurement;
  }
  // The same tags as the previous sample: the same run (compared on the encoded bytes).
  if (!tag_ranges_.empty()) {
    const auto [prev_begin, prev_end] = tag_ranges_.back();
    const bool equal = same || (prev_end - prev_begin == tags_end - tags_begin &&
                                std::memcmp(tags_.data() + prev_begin, tags_.data() + tags_begin,
                                            tags_end - tags_begin) == 0);
    sample.tags_run = batch_.samples.back().tags_run + (equal ? 0 : 1);
  }
  tag_ranges_.emplace_back(tags_begin, tags_end);
  sample.time_unix_nano = line.timestamp_ns;
  sample.value = value->number;
  batch_.samples.push_back(sample);
  return true;
}

void LineBatchBuilder::Build(absl::string_view body, const LineBatchOptions& options) {
  batch_.Clear();
  tags_.clear();
  tag_ranges_.clear();
  names_.clear();
  copied_names_.clear();
  rejections_.clear();
  first_bad_.reset();
  lines_ = 0;
  previous_is_last_sample_ = false;
  previous_field_tags_.clear();
  body_ = body;
  parser_ = LineProtocolParser(options.precision_ns);
  size_t number = 0;
  size_t pos = 0;
  std::string why;
  while (pos < body.size()) {
    const void* nl = std::memchr(body.data() + pos, '\n', body.size() - pos);
    const size_t end = nl == nullptr ? body.size() : static_cast<const char*>(nl) - body.data();
    absl::string_view text = body.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (text.size() > options.max_line_bytes) {
      ++lines_;
      previous_is_last_sample_ = false;
      Reject(number, text, RejectionReason::kLineTooLong,
             absl::StrCat("line too long (", text.size(), " bytes; at most ",
                          options.max_line_bytes, ")"));
      continue;
    }
    if (LineProtocolParser::IsBlankOrComment(text)) continue;
    ++lines_;
    if (!IsValidUtf8(text)) {
      previous_is_last_sample_ = false;
      Reject(number, text, RejectionReason::kInvalidLine, "invalid UTF-8");
      continue;
    }
    if (const char* error = parser_.Parse(text, options.now_ns, &line_)) {
      Reject(number, text, RejectionReason::kInvalidLine, error);
      previous_is_last_sample_ = false;
      continue;
    }
    RejectionReason reason = RejectionReason::kInvalidLine;
    if (!AddSample(line_, &why, &reason)) {
      Reject(number, text, reason, why);
      previous_is_last_sample_ = false;
      continue;
    }
    previous_is_last_sample_ = true;
  }
  // The buffers have stopped growing: point the samples into them.
  for (size_t i = 0; i < batch_.samples.size(); ++i) {
    const auto [begin, end] = tag_ranges_[i];
    batch_.samples[i].tags = absl::string_view(tags_.data() + begin, end - begin);
  }
  for (const auto& [sample, range] : copied_names_) {
    batch_.samples[sample].metric =
        absl::string_view(names_.data() + range.first, range.second - range.first);
  }
}

}  // namespace rwexport
