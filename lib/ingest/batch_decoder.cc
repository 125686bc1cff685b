#include "lib/ingest/batch_decoder.h"

#include <algorithm>
#include <cstring>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "lib/common/wire.h"

namespace rwexport {
namespace {

// The field numbers this decoder knows, each checked against the generated code, so a
// renumbered field breaks the build here. A field added to one of these messages in
// export.proto must be taught to the decoder too (batch_decoder_fields_test finds it).
constexpr uint32_t kBatchExportId = 1;
constexpr uint32_t kBatchMetrics = 2;
constexpr uint32_t kBatchSamples = 3;
constexpr uint32_t kBatchSeries = 4;
constexpr uint32_t kBatchCompact = 5;
constexpr uint32_t kSampleMetric = 1;
constexpr uint32_t kSampleTags = 2;
constexpr uint32_t kSampleTime = 3;
constexpr uint32_t kSampleValue = 4;
constexpr uint32_t kTagKey = 1;
constexpr uint32_t kTagValue = 2;
constexpr uint32_t kCompactRefs = 1;
constexpr uint32_t kCompactDeltas = 2;
constexpr uint32_t kCompactValues = 3;
constexpr uint32_t kRequestExportId = 1;
constexpr uint32_t kRequestStreamId = 2;
constexpr uint32_t kRequestSequence = 3;
constexpr uint32_t kRequestBatch = 4;
static_assert(kBatchExportId == v1::SampleBatch::kExportIdFieldNumber);
static_assert(kBatchMetrics == v1::SampleBatch::kMetricsFieldNumber);
static_assert(kBatchSamples == v1::SampleBatch::kSamplesFieldNumber);
static_assert(kBatchSeries == v1::SampleBatch::kSeriesFieldNumber);
static_assert(kBatchCompact == v1::SampleBatch::kCompactFieldNumber);
static_assert(kSampleMetric == v1::Sample::kMetricFieldNumber);
static_assert(kSampleTags == v1::Sample::kTagsFieldNumber);
static_assert(kSampleTime == v1::Sample::kTimeUnixNanoFieldNumber);
static_assert(kSampleValue == v1::Sample::kValueFieldNumber);
static_assert(kTagKey == v1::Tag::kKeyFieldNumber);
static_assert(kTagValue == v1::Tag::kValueFieldNumber);
static_assert(kCompactRefs == v1::CompactSamples::kRefsFieldNumber);
static_assert(kCompactDeltas == v1::CompactSamples::kTimeUnixNanoDeltaFieldNumber);
static_assert(kCompactValues == v1::CompactSamples::kValuesFieldNumber);
static_assert(kRequestExportId == v1::IngestRequest::kExportIdFieldNumber);
static_assert(kRequestStreamId == v1::IngestRequest::kStreamIdFieldNumber);
static_assert(kRequestSequence == v1::IngestRequest::kSequenceFieldNumber);
static_assert(kRequestBatch == v1::IngestRequest::kBatchFieldNumber);

constexpr DecodedField kDecodedFields[] = {
    {"rwexport.v1.SampleBatch", kBatchExportId, "export_id"},
    {"rwexport.v1.SampleBatch", kBatchMetrics, "metrics"},
    {"rwexport.v1.SampleBatch", kBatchSamples, "samples"},
    {"rwexport.v1.SampleBatch", kBatchSeries, "series"},
    {"rwexport.v1.SampleBatch", kBatchCompact, "compact"},
    {"rwexport.v1.Sample", kSampleMetric, "metric"},
    {"rwexport.v1.Sample", kSampleTags, "tags"},
    {"rwexport.v1.Sample", kSampleTime, "time_unix_nano"},
    {"rwexport.v1.Sample", kSampleValue, "value"},
    {"rwexport.v1.Tag", kTagKey, "key"},
    {"rwexport.v1.Tag", kTagValue, "value"},
    {"rwexport.v1.CompactSamples", kCompactRefs, "refs"},
    {"rwexport.v1.CompactSamples", kCompactDeltas, "time_unix_nano_delta"},
    {"rwexport.v1.CompactSamples", kCompactValues, "values"},
    {"rwexport.v1.IngestRequest", kRequestExportId, "export_id"},
    {"rwexport.v1.IngestRequest", kRequestStreamId, "stream_id"},
    {"rwexport.v1.IngestRequest", kRequestSequence, "sequence"},
    {"rwexport.v1.IngestRequest", kRequestBatch, "batch"},
};

// Groups nested deeper are refused. Protobuf allows 100 levels of groups and messages
// together; staying well below keeps this decoder stricter than protobuf whatever the
// messages around the group (the fuzz target checks that it never accepts what protobuf
// refuses).
constexpr int kMaxDepth = 64;

absl::string_view WireTypeName(int wire_type) {
  switch (wire_type) {
    case kVarint:
      return "varint";
    case kFixed64:
      return "fixed64";
    case kLengthDelimited:
      return "length-delimited";
    case kStartGroup:
      return "start-group";
    case kEndGroup:
      return "end-group";
    case kFixed32:
      return "fixed32";
  }
  return "invalid";
}

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// Prefixes `status`'s message with `where`.
absl::Status Within(absl::string_view where, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", status.message()));
}

// A cursor over the bytes of one message. Every read checks the bounds; a failed read leaves
// the cursor unspecified and the caller returns the error.
class Reader {
 public:
  explicit Reader(absl::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool done() const { return p_ == end_; }
  const char* position() const { return reinterpret_cast<const char*>(p_); }

  // False when the bytes end inside the varint or it is longer than 10 bytes.
  bool ReadVarint(uint64_t* value) {
    return rwexport::ReadVarint(&p_, end_, value) == VarintRead::kOk;
  }

  bool ReadFixed64(uint64_t* value) {
    if (end_ - p_ < 8) return false;
    std::memcpy(value, p_, 8);  // little-endian host (x86-64, arm64)
    p_ += 8;
    return true;
  }

  // A key of one byte (field 1 to 15), the usual case. False (nothing read) otherwise.
  bool ReadSmallKey(uint32_t* field, int* wire_type) {
    if (p_ == end_ || *p_ >= 0x80 || *p_ < 8) return false;
    *field = KeyField(*p_);
    *wire_type = KeyWireType(*p_);
    ++p_;
    return true;
  }

  // Protobuf reads field keys and lengths as varints of at most 5 bytes (32 bits).
  VarintRead ReadVarint5(uint64_t* value) { return rwexport::ReadVarint(&p_, end_, value, 5); }

  bool Skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }

  // A length-delimited value: its length (below 2^31, as protobuf requires), then its bytes.
  bool ReadBytes(absl::string_view* bytes) {
    uint64_t length;
    if (p_ != end_ && *p_ < 0x80) {
      length = *p_++;
    } else if (ReadVarint5(&length) != VarintRead::kOk) {
      return false;
    }
    if (length > static_cast<uint64_t>(end_ - p_)) return false;
    *bytes = absl::string_view(position(), length);
    p_ += length;
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Reads a field's key. Errors name the byte where it starts.
absl::Status ReadKeySlow(Reader& r, uint32_t* field, int* wire_type) {
  uint64_t key;
  switch (r.ReadVarint5(&key)) {
    case VarintRead::kOk:
      break;
    case VarintRead::kTruncated:
      return absl::InvalidArgumentError("truncated field key");
    case VarintRead::kTooLong:
      return absl::InvalidArgumentError("field key longer than 5 bytes");
  }
  if (key > 0xffffffffu || (key >> 3) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid field key ", key));
  }
  *field = KeyField(key);
  *wire_type = KeyWireType(key);
  return absl::OkStatus();
}

// Every field of SampleBatch, Sample, Tag and CompactSamples has a one-byte key: inline.
inline absl::Status ReadKey(Reader& r, uint32_t* field, int* wire_type) {
  if (r.ReadSmallKey(field, wire_type)) return absl::OkStatus();
  return ReadKeySlow(r, field, wire_type);
}

// Skips the value of field `field` whose key was just read, as protobuf skips unknown fields
// (groups included, nested at most kMaxDepth).
absl::Status SkipField(Reader& r, uint32_t field, int wire_type, int depth = 0) {
  uint64_t ignored;
  absl::string_view bytes;
  switch (wire_type) {
    case kVarint:
      if (!r.ReadVarint(&ignored)) break;
      return absl::OkStatus();
    case kFixed64:
      if (!r.Skip(8)) break;
      return absl::OkStatus();
    case kLengthDelimited:
      if (!r.ReadBytes(&bytes)) break;
      return absl::OkStatus();
    case kFixed32:
      if (!r.Skip(4)) break;
      return absl::OkStatus();
    case kStartGroup: {
      if (depth >= kMaxDepth) {
        return absl::InvalidArgumentError(
            absl::StrCat("field ", field, ": groups nested deeper than ", kMaxDepth));
      }
      for (;;) {
        if (r.done())
          return absl::InvalidArgumentError(absl::StrCat("field ", field, ": truncated group"));
        uint32_t inner;
        int inner_type;
        if (absl::Status s = ReadKey(r, &inner, &inner_type); !s.ok()) {
          return Within(absl::StrCat("field ", field), s);
        }
        if (inner_type == kEndGroup) {
          if (inner == field) return absl::OkStatus();
          return absl::InvalidArgumentError(
              absl::StrCat("field ", field, ": group ended by the end-group of field ", inner));
        }
        if (absl::Status s = SkipField(r, inner, inner_type, depth + 1); !s.ok()) return s;
      }
    }
    case kEndGroup:
      return absl::InvalidArgumentError(
          absl::StrCat("field ", field, ": end-group without a start-group"));
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("field ", field, ": invalid wire type ", wire_type));
  }
  return absl::InvalidArgumentError(absl::StrCat("truncated field ", field));
}

absl::Status WrongWireType(uint32_t field, absl::string_view name, int wire_type, int expected) {
  return absl::InvalidArgumentError(absl::StrCat("field ", field, " (", name, "): wire type ",
                                                 wire_type, " (", WireTypeName(wire_type),
                                                 "), expected ", WireTypeName(expected)));
}

absl::Status Truncated(uint32_t field, absl::string_view name) {
  return absl::InvalidArgumentError(absl::StrCat("field ", field, " (", name, "): truncated"));
}

// A string field's value (UTF-8 checked).
absl::Status ReadString(Reader& r, uint32_t field, absl::string_view name, int wire_type,
                        absl::string_view* value) {
  if (wire_type != kLengthDelimited) return WrongWireType(field, name, wire_type, kLengthDelimited);
  if (!r.ReadBytes(value)) return Truncated(field, name);
  if (!IsValidUtf8(*value)) return Invalid(name, "invalid UTF-8");
  return absl::OkStatus();
}

absl::Status DecodeSample(absl::string_view bytes, RawSample* sample,
                          std::deque<std::string>* scratch) {
  Reader r(bytes);
  const char* tags_begin = nullptr;
  const char* tags_end = nullptr;
  std::string* copied = nullptr;  // when the tag fields are not adjacent
  while (!r.done()) {
    const char* field_begin = r.position();
    uint32_t field;
    int wire_type;
    if (absl::Status s = ReadKey(r, &field, &wire_type); !s.ok()) return s;
    switch (field) {
      case kSampleMetric:
        if (absl::Status s = ReadString(r, kSampleMetric, "metric", wire_type, &sample->metric);
            !s.ok()) {
          return s;
        }
        break;
      case kSampleTags: {
        absl::string_view tag;
        if (wire_type != kLengthDelimited) {
          return WrongWireType(kSampleTags, "tags", wire_type, kLengthDelimited);
        }
        if (!r.ReadBytes(&tag)) return Truncated(kSampleTags, "tags");
        const char* field_end = r.position();
        if (copied != nullptr) {
          copied->append(field_begin, field_end);
        } else if (tags_begin == nullptr) {
          tags_begin = field_begin;
          tags_end = field_end;
        } else if (field_begin == tags_end) {
          tags_end = field_end;
        } else {
          copied = &scratch->emplace_back(tags_begin, tags_end);
          copied->append(field_begin, field_end);
        }
        break;
      }
      case kSampleTime: {
        if (wire_type != kVarint) {
          return WrongWireType(kSampleTime, "time_unix_nano", wire_type, kVarint);
        }
        uint64_t time;
        if (!r.ReadVarint(&time)) return Truncated(kSampleTime, "time_unix_nano");
        sample->time_unix_nano = static_cast<int64_t>(time);
        break;
      }
      case kSampleValue: {
        if (wire_type != kFixed64) return WrongWireType(kSampleValue, "value", wire_type, kFixed64);
        uint64_t bits;
        if (!r.ReadFixed64(&bits)) return Truncated(kSampleValue, "value");
        std::memcpy(&sample->value, &bits, sizeof bits);
        break;
      }
      default:
        if (absl::Status s = SkipField(r, field, wire_type); !s.ok()) return s;
    }
  }
  if (copied != nullptr) {
    sample->tags = *copied;
  } else if (tags_begin != nullptr) {
    sample->tags = absl::string_view(tags_begin, tags_end - tags_begin);
  }
  return absl::OkStatus();
}

// One column of CompactSamples: packed (length-delimited) or one element per field.
template <typename T, typename Convert>
absl::Status DecodeVarintColumn(Reader& r, uint32_t field, absl::string_view name, int wire_type,
                                std::vector<T>* column, Convert convert) {
  uint64_t v;
  if (wire_type == kVarint) {
    if (!r.ReadVarint(&v)) return Truncated(field, name);
    column->push_back(convert(v));
    return absl::OkStatus();
  }
  if (wire_type != kLengthDelimited) return WrongWireType(field, name, wire_type, kLengthDelimited);
  absl::string_view packed;
  if (!r.ReadBytes(&packed)) return Truncated(field, name);
  Reader elements(packed);
  while (!elements.done()) {
    if (!elements.ReadVarint(&v)) {
      return Invalid(name, absl::StrCat("truncated varint in packed element ", column->size()));
    }
    column->push_back(convert(v));
  }
  return absl::OkStatus();
}

absl::Status DecodeCompact(absl::string_view bytes, DecodedBatch* batch) {
  Reader r(bytes);
  while (!r.done()) {
    uint32_t field;
    int wire_type;
    if (absl::Status s = ReadKey(r, &field, &wire_type); !s.ok()) return s;
    switch (field) {
      case kCompactRefs:
        if (absl::Status s =
                DecodeVarintColumn(r, kCompactRefs, "refs", wire_type, &batch->compact_refs,
                                   [](uint64_t v) { return static_cast<uint32_t>(v); });
            !s.ok()) {
          return s;
        }
        break;
      case kCompactDeltas:
        if (absl::Status s = DecodeVarintColumn(r, kCompactDeltas, "time_unix_nano_delta",
                                                wire_type, &batch->compact_deltas,
                                                [](uint64_t v) { return ZigZagDecode64(v); });
            !s.ok()) {
          return s;
        }
        break;
      case kCompactValues: {
        uint64_t bits;
        double value;
        if (wire_type == kFixed64) {
          if (!r.ReadFixed64(&bits)) return Truncated(kCompactValues, "values");
          std::memcpy(&value, &bits, sizeof bits);
          batch->compact_values.push_back(value);
          break;
        }
        if (wire_type != kLengthDelimited) {
          return WrongWireType(kCompactValues, "values", wire_type, kLengthDelimited);
        }
        absl::string_view packed;
        if (!r.ReadBytes(&packed)) return Truncated(kCompactValues, "values");
        if (packed.size() % 8 != 0) {
          return Invalid("values",
                         absl::StrCat("packed length ", packed.size(), " is not a multiple of 8"));
        }
        if (packed.empty()) break;  // nothing to copy (and data() may be null)
        const size_t old_size = batch->compact_values.size();
        batch->compact_values.resize(old_size + packed.size() / 8);
        std::memcpy(batch->compact_values.data() + old_size, packed.data(), packed.size());
        break;
      }
      default:
        if (absl::Status s = SkipField(r, field, wire_type); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// A declaration, by generated code. Nested no deeper than what this decoder allows, so a
// declaration refused inside the whole batch by protobuf is refused here too.
bool ParseDeclaration(absl::string_view bytes, google::protobuf::MessageLite* message) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  in.SetRecursionLimit(kMaxDepth);
  return message->ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
}

// Index of the first byte at or after `i` that is not ASCII, or text.size().
size_t SkipAscii(absl::string_view text, size_t i) {
  constexpr uint64_t kHighBits = 0x8080808080808080u;
  while (i + 8 <= text.size()) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    if ((word & kHighBits) != 0) break;
    i += 8;
  }
  while (i < text.size() && static_cast<unsigned char>(text[i]) < 0x80) ++i;
  return i;
}

}  // namespace

size_t DecodedBatch::CapacityBytes() const {
  size_t bytes =
      export_id.capacity() + series_declarations.capacity() * sizeof(absl::string_view) +
      series_declaration_refs.capacity() * sizeof(uint32_t) +
      samples.capacity() * sizeof(RawSample) + compact_refs.capacity() * sizeof(uint32_t) +
      compact_deltas.capacity() * sizeof(int64_t) + compact_values.capacity() * sizeof(double);
  // Reflection: only for a batch that declared metrics.
  if (declarations.metrics_size() > 0) bytes += declarations.SpaceUsedLong();
  for (const std::string& s : scratch) bytes += s.capacity();
  return bytes;
}

void DecodedBatch::Clear() {
  export_id.clear();
  // Released, not cleared: a cleared repeated field keeps every message and string it held
  // for reuse, and a stream declares its series once (100k series: about 100 MB kept).
  if (declarations.metrics_size() > 0 || declarations.series_size() > 0) {
    declarations = v1::SampleBatch();
  }
  series_declarations.clear();
  // The views of one large declaration batch are not kept for the stream's life.
  series_declaration_refs.clear();
  if (series_declarations.capacity() > 1024) {
    series_declarations.shrink_to_fit();
    series_declaration_refs.shrink_to_fit();
  }
  max_series_ref = 0;
  samples.clear();
  compact_refs.clear();
  compact_deltas.clear();
  compact_values.clear();
  scratch.clear();
}

bool ParseSeriesDeclaration(absl::string_view bytes, v1::SeriesDeclaration* decl) {
  return ParseDeclaration(bytes, decl);
}

bool IsValidUtf8(absl::string_view text) {
  size_t i = SkipAscii(text, 0);
  const size_t n = text.size();
  const auto byte = [&text](size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < n) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      i = SkipAscii(text, i);
      continue;
    }
    // The second byte's range depends on the first (Unicode Table 3-7, well-formed UTF-8).
    size_t length;
    unsigned char low = 0x80, high = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c == 0xe0) low = 0xa0;
      if (c == 0xed) high = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c == 0xf0) low = 0x90;
      if (c == 0xf4) high = 0x8f;  // not beyond U+10FFFF
    } else {
      return false;
    }
    if (n - i < length) return false;
    if (byte(i + 1) < low || byte(i + 1) > high) return false;
    for (size_t k = 2; k < length; ++k) {
      if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return false;
    }
    i += length;
  }
  return true;
}

absl::Status DecodeSampleBatch(absl::string_view bytes, DecodedBatch* batch) {
  batch->Clear();
  // Each series declaration is checked by parsing it here; one message is reused for all.
  v1::SeriesDeclaration series_scratch;
  Reader r(bytes);
  while (!r.done()) {
    uint32_t field;
    int wire_type;
    if (absl::Status s = ReadKey(r, &field, &wire_type); !s.ok()) return s;
    absl::string_view value;
    switch (field) {
      case kBatchExportId:
        if (absl::Status s = ReadString(r, kBatchExportId, "export_id", wire_type, &value);
            !s.ok()) {
          return s;
        }
        batch->export_id.assign(value.data(), value.size());
        break;
      case kBatchMetrics: {
        const int index = batch->declarations.metrics_size();
        const std::string where = absl::StrCat("metric declaration ", index);
        if (wire_type != kLengthDelimited) {
          return Within(where,
                        WrongWireType(kBatchMetrics, "metrics", wire_type, kLengthDelimited));
        }
        if (!r.ReadBytes(&value)) return Within(where, Truncated(kBatchMetrics, "metrics"));
        if (!ParseDeclaration(value, batch->declarations.add_metrics())) {
          return Invalid(where, "not a valid MetricDeclaration (bad encoding or invalid UTF-8)");
        }
        break;
      }
      case kBatchSamples: {
        const size_t index = batch->samples.size();
        if (wire_type != kLengthDelimited) {
          return Within(absl::StrCat("sample ", index),
                        WrongWireType(kBatchSamples, "samples", wire_type, kLengthDelimited));
        }
        if (!r.ReadBytes(&value)) {
          return Within(absl::StrCat("sample ", index), Truncated(kBatchSamples, "samples"));
        }
        RawSample& sample = batch->samples.emplace_back();
        if (absl::Status s = DecodeSample(value, &sample, &batch->scratch); !s.ok()) {
          return Within(absl::StrCat("sample ", index), s);
        }
        if (index > 0) {
          const RawSample& previous = batch->samples[index - 1];
          sample.tags_run = previous.tags_run + (sample.tags == previous.tags ? 0 : 1);
        }
        break;
      }
      case kBatchSeries: {
        const size_t index = batch->series_declarations.size();
        const std::string where = absl::StrCat("series declaration ", index);
        if (wire_type != kLengthDelimited) {
          return Within(where, WrongWireType(kBatchSeries, "series", wire_type, kLengthDelimited));
        }
        if (!r.ReadBytes(&value)) return Within(where, Truncated(kBatchSeries, "series"));
        if (!ParseDeclaration(value, &series_scratch)) {
          return Invalid(where, "not a valid SeriesDeclaration (bad encoding or invalid UTF-8)");
        }
        batch->series_declarations.push_back(value);
        batch->series_declaration_refs.push_back(series_scratch.ref());
        batch->max_series_ref = std::max(batch->max_series_ref, series_scratch.ref());
        break;
      }
      case kBatchCompact:
        if (wire_type != kLengthDelimited) {
          return Within("compact",
                        WrongWireType(kBatchCompact, "compact", wire_type, kLengthDelimited));
        }
        if (!r.ReadBytes(&value)) return Within("compact", Truncated(kBatchCompact, "compact"));
        if (absl::Status s = DecodeCompact(value, batch); !s.ok()) return Within("compact", s);
        break;
      default:
        if (absl::Status s = SkipField(r, field, wire_type); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ParseTags(absl::string_view encoded, std::vector<RawTag>* tags) {
  Reader r(encoded);
  for (int index = 0; !r.done(); ++index) {
    const std::string where = absl::StrCat("tag ", index);
    uint32_t field;
    int wire_type;
    if (absl::Status s = ReadKey(r, &field, &wire_type); !s.ok()) return Within(where, s);
    absl::string_view bytes;
    if (field != kSampleTags || wire_type != kLengthDelimited || !r.ReadBytes(&bytes)) {
      return Invalid(where, "not an encoded tags field");
    }
    Reader tag(bytes);
    RawTag& out = tags->emplace_back();
    while (!tag.done()) {
      uint32_t inner;
      int inner_type;
      if (absl::Status s = ReadKey(tag, &inner, &inner_type); !s.ok()) return Within(where, s);
      absl::Status s;
      if (inner == kTagKey) {
        s = ReadString(tag, kTagKey, "key", inner_type, &out.first);
      } else if (inner == kTagValue) {
        s = ReadString(tag, kTagValue, "value", inner_type, &out.second);
      } else {
        s = SkipField(tag, inner, inner_type);
      }
      if (!s.ok()) return Within(where, s);
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeIngestRequest(absl::string_view bytes, IngestEnvelope* request) {
  *request = IngestEnvelope();
  Reader r(bytes);
  while (!r.done()) {
    uint32_t field;
    int wire_type;
    if (absl::Status s = ReadKey(r, &field, &wire_type); !s.ok()) return s;
    absl::Status s;
    switch (field) {
      case kRequestExportId:
        s = ReadString(r, field, "export_id", wire_type, &request->export_id);
        break;
      case kRequestStreamId:
        s = ReadString(r, field, "stream_id", wire_type, &request->stream_id);
        break;
      case kRequestSequence:
        if (wire_type != kVarint) {
          s = WrongWireType(field, "sequence", wire_type, kVarint);
        } else if (!r.ReadVarint(&request->sequence)) {
          s = Truncated(field, "sequence");
        }
        break;
      case kRequestBatch:
        // Repeated occurrences of a message field merge: only one is expected.
        if (wire_type != kLengthDelimited) {
          s = WrongWireType(field, "batch", wire_type, kLengthDelimited);
        } else if (request->has_batch) {
          s = absl::InvalidArgumentError("field 4 (batch): more than once");
        } else if (!r.ReadBytes(&request->batch)) {
          s = Truncated(field, "batch");
        }
        request->has_batch = true;
        break;
      default:
        s = SkipField(r, field, wire_type);
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

bool IsValidStreamId(absl::string_view stream_id) {
  if (stream_id.empty() || stream_id.size() > kMaxIngestStreamIdLength) return false;
  for (const char c : stream_id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

absl::Span<const DecodedField> HandDecodedFields() { return kDecodedFields; }

}  // namespace rwexport
