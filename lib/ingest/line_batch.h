// InfluxDB line protocol as k6 writes it (`k6 run --out influxdb=...`), turned into samples
// for the same ingest path as gRPC self-describing streams (StreamIngester::Ingest of a
// DecodedBatch).
//
// A line is a sample: measurement = metric name, tags = tags, field `value` = the value,
// timestamp in the request's precision (none: the server's now). k6 sends the tags named in
// its `tagsAsFields` option (default vu, iter, url) as fields; every field other than `value`
// becomes a tag again (a string's content, a number or boolean as written, an integer without
// its `i`), after the line's own tags, unless the line has a tag of that name already; an
// empty string adds no tag (k6 drops empty tags too). So `keepTags: ["url"]` and selectors on
// url work as they do over gRPC.
//
// Lines that cannot be a sample are not passed on; they are counted by reason, as the
// ingester counts rejected samples:
//   invalid_line   not line protocol (the parser's reason: "missing tag value", "invalid
//                  number" — NaN and infinities are not numbers in line protocol —, ...), or
//                  not UTF-8
//   line_too_long  longer than LineBatchOptions::max_line_bytes (not parsed)
//   missing_value  no field `value`
//   invalid_value  `value` is a string or a boolean
// The first bad line is kept (its number, counted from 1, its start and the reason) for the
// answer InfluxDB gives: a partial write naming it.
//
// Thread-compatible: one builder per thread; reuse it, its buffers keep their capacity.
#ifndef RWEXPORT_LIB_INGEST_LINE_BATCH_H_
#define RWEXPORT_LIB_INGEST_LINE_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "lib/aggregate/rejections.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/line_protocol.h"

namespace rwexport {

struct LineBatchOptions {
  // From LinePrecisionNanos.
  int64_t precision_ns = 1;
  // Longer lines are rejected unparsed (line_too_long).
  size_t max_line_bytes = 64 << 10;
  // The timestamp of a line without one.
  int64_t now_ns = 0;
};

struct BadLine {
  size_t number = 0;    // counted from 1 over every line of the body
  std::string excerpt;  // the line, cut to 120 bytes ("..." appended when cut)
  std::string reason;   // e.g. "missing tag value", "no field \"value\""
};

class LineBatchBuilder {
 public:
  // Parses `body`. The batch's views point into `body` and into the builder: both must
  // outlive its use (StreamIngester::Ingest copies what it keeps).
  void Build(absl::string_view body, const LineBatchOptions& options);

  // The good lines' samples (export_id and declarations empty).
  const DecodedBatch& batch() const { return batch_; }
  // Lines that are samples, good or bad (blank lines and comments are not).
  size_t lines() const { return lines_; }
  // Bad lines by reason; the example is the first such line's reason and number.
  const Rejections& rejections() const { return rejections_; }
  size_t bad_lines() const { return lines_ - batch_.samples.size(); }
  const std::optional<BadLine>& first_bad_line() const { return first_bad_; }

 private:
  // Checks the parsed line and appends its sample; false (and the reason) if it is not one.
  bool AddSample(const ParsedLine& line, std::string* why, RejectionReason* reason);
  void Reject(size_t number, absl::string_view line, RejectionReason reason, std::string why);
  static void AppendTag(std::string* out, absl::string_view key, absl::string_view value);

  LineProtocolParser parser_;
  ParsedLine line_;
  absl::string_view body_;  // of the current Build
  DecodedBatch batch_;
  // The samples' tags, encoded as v1::Sample's `tags` fields, one after the other; and each
  // sample's [begin, end) in it (views are made once the buffer stops growing).
  std::string tags_;
  std::vector<std::pair<uint32_t, uint32_t>> tag_ranges_;
  // The encoded field-derived tags of this line and of the last sample; whether the last line
  // parsed became the last sample (then "same tags as the previous line" means its range).
  std::string field_tags_;
  std::string previous_field_tags_;
  bool previous_is_last_sample_ = false;
  // Metric names the parser unescaped (its views die with the next line), copied here; and
  // (sample, [begin, end) in names_) for each.
  std::string names_;
  std::vector<std::pair<size_t, std::pair<uint32_t, uint32_t>>> copied_names_;
  size_t lines_ = 0;
  Rejections rejections_;
  std::optional<BadLine> first_bad_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_INGEST_LINE_BATCH_H_
