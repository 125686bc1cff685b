// A hand-written decoder of the v1::SampleBatch wire format, for the StreamSamples hot path.
//
// Generated protobuf code builds a std::string per metric name, tag key and tag value, and
// the next batch starts by clearing them all; most of a self-describing sample's server cost.
// DecodeSampleBatch instead walks the serialized bytes once and yields each sample as views
// into them: its metric, its time and value, and its tags as the raw bytes of their encoded
// fields, so "same tags as the previous sample" is one memcmp and the bytes themselves can key
// a tag-set cache. Compact columns are decoded into vectors; metric and series declarations
// (rare) are parsed with generated code.
//
// What is checked, and when (the rest of a batch is checked before any of it is used):
//   - DecodeSampleBatch: the wire format of the whole batch (truncation, wire types of known
//     fields, field numbers, group nesting), UTF-8 of export_id and of every sample's metric,
//     the declarations (generated code), the packed columns. Unknown fields are skipped as
//     protobuf skips them. A known field with another wire type is refused (protobuf would
//     keep it as an unknown field; no sender does that on purpose).
//   - ParseTags: the encoded Tag messages of one sample and the UTF-8 of their keys and values.
//     It is left to the caller, which only needs it for tag bytes it has not seen before
//     (StreamIngester: a cache hit means the same bytes passed before).
// Errors are InvalidArgument naming the place, e.g. "sample 17: tags: tag 2: value: invalid
// UTF-8" or "sample 3: field 3 (time_unix_nano): wire type 2, expected varint".
//
// Thread-safety: the functions are reentrant; a DecodedBatch is used by one thread at a time.
#ifndef RWEXPORT_LIB_INGEST_BATCH_DECODER_H_
#define RWEXPORT_LIB_INGEST_BATCH_DECODER_H_

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "lib/model/metric.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// One self-describing sample (v1::Sample), as views into the batch's bytes.
struct RawSample {
  absl::string_view metric;
  // The sample's `tags` fields exactly as encoded (each: field key, length, Tag message), in
  // order. Equal bytes mean equal tags; different bytes may still mean equal tags.
  absl::string_view tags;
  // Consecutive samples with the same tag bytes share a run: a sample's run is the previous
  // sample's, plus one when its tags differ (the first sample's is 0). So "same tags as the
  // sample before" is compared once, here.
  uint32_t tags_run = 0;
  int64_t time_unix_nano = 0;
  double value = 0;
};

// A decoded v1::SampleBatch. Views point into the decoded bytes (or into `scratch`): the bytes
// must outlive every use of the batch. Reuse one DecodedBatch for a stream's batches: its
// vectors keep their capacity.
struct DecodedBatch {
  // Empty when the batch has none.
  std::string export_id;
  // Only `metrics` is set (parsed with generated code).
  v1::SampleBatch declarations;
  // The series declarations, each the bytes of a v1::SeriesDeclaration already checked (parsed
  // once with generated code, then dropped): a stream declares its series in one batch, and
  // 100k parsed declarations would take about 120 MB at once. ParseSeriesDeclaration reads
  // one. series_declaration_refs: their refs, in the same order; max_series_ref: the highest
  // (0 if none).
  std::vector<absl::string_view> series_declarations;
  std::vector<uint32_t> series_declaration_refs;
  uint32_t max_series_ref = 0;
  std::vector<RawSample> samples;
  // The compact columns (v1::CompactSamples), as sent (lengths may differ).
  std::vector<uint32_t> compact_refs;
  std::vector<int64_t> compact_deltas;
  std::vector<double> compact_values;
  // Tag fields of a sample that were not adjacent in the bytes (another field between them),
  // copied together so RawSample::tags stays one view. Real encoders never need it.
  std::deque<std::string> scratch;

  void Clear();
  // The bytes its vectors and scratch hold (capacity), for a stream's retained figure.
  size_t CapacityBytes() const;
};

// Decodes `bytes`, a serialized v1::SampleBatch, into `batch` (cleared first). On error the
// batch's content is unspecified.
absl::Status DecodeSampleBatch(absl::string_view bytes, DecodedBatch* batch);

// Parses one of DecodedBatch::series_declarations into `decl` (cleared first; reuse one).
// False only for bytes DecodeSampleBatch did not check.
bool ParseSeriesDeclaration(absl::string_view bytes, v1::SeriesDeclaration* decl);
// A v1::IngestRequest's fields, as views into its bytes: `batch` is the embedded SampleBatch's
// encoding, ready for DecodeSampleBatch without a copy.
struct IngestEnvelope {
  absl::string_view export_id;
  absl::string_view stream_id;
  uint64_t sequence = 0;
  absl::string_view batch;
  bool has_batch = false;
};

// Decodes `bytes`, a serialized v1::IngestRequest, into `request`: the wire format and the
// UTF-8 of the two ids; the batch's own bytes are left to DecodeSampleBatch.
absl::Status DecodeIngestRequest(absl::string_view bytes, IngestEnvelope* request);

// IngestRequest.stream_id: 1 to this many printable ASCII characters (0x21..0x7e).
inline constexpr size_t kMaxIngestStreamIdLength = 128;
bool IsValidStreamId(absl::string_view stream_id);

// Parses RawSample::tags into (key, value) pairs in order, appended to `tags`; checks the
// encoding and that keys and values are UTF-8. Errors name the tag ("tag 2: value: invalid
// UTF-8"), without the sample.
absl::Status ParseTags(absl::string_view encoded, std::vector<RawTag>* tags);

// A field of a message this decoder decodes by hand (SampleBatch, Sample, Tag,
// CompactSamples), by the message's full name, the field's number and name.
struct DecodedField {
  absl::string_view message;
  uint32_t number;
  absl::string_view name;
};
// Every field the decoder knows; any other field of those messages would be skipped as
// unknown. For the test that keeps the decoder in step with export.proto.
absl::Span<const DecodedField> HandDecodedFields();

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or values beyond
// U+10FFFF), as protobuf requires of string fields. Fast on ASCII.
bool IsValidUtf8(absl::string_view text);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_INGEST_BATCH_DECODER_H_
