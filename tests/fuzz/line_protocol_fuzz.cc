// Fuzz target: InfluxDB line protocol, the body of the influx endpoint's POST /write.
// Input: a request body. It goes through LineBatchBuilder (every line parsed by
// LineProtocolParser) with a precision picked from the first byte. Checks the documented
// contracts: every line that is a sample is either a sample of the batch or a bad line counted
// by reason; each sample's encoded tags parse back (ParseTags) and are valid UTF-8, as are its
// metric name; a body parsed twice gives the same batch; the first bad line is named.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/line_batch.h"
#include "lib/ingest/line_protocol.h"

namespace {

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "line_protocol_fuzz: contract broken: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using rwexport::LineBatchBuilder;
  using rwexport::LineBatchOptions;
  const absl::string_view body(reinterpret_cast<const char*>(data), size);
  static const char* const kPrecisions[] = {"ns", "u", "ms", "s", "m", "h"};
  LineBatchOptions options;
  options.precision_ns = rwexport::LinePrecisionNanos(kPrecisions[size > 0 ? data[0] % 6 : 0]);
  options.max_line_bytes = 512;  // so long lines are reachable
  options.now_ns = 1700000000000000000;
  LineBatchBuilder builder;
  builder.Build(body, options);
  const rwexport::DecodedBatch& batch = builder.batch();
  Require(batch.samples.size() + builder.bad_lines() == builder.lines(), "lines accounted for");
  uint64_t rejected = 0;
  for (const auto& [reason, r] : builder.rejections()) rejected += r.count;
  Require(rejected == builder.bad_lines(), "bad lines counted by reason");
  Require(builder.first_bad_line().has_value() == (builder.bad_lines() > 0), "first bad line");
  uint32_t previous_run = 0;
  for (size_t i = 0; i < batch.samples.size(); ++i) {
    const rwexport::RawSample& s = batch.samples[i];
    Require(!s.metric.empty() && rwexport::IsValidUtf8(s.metric), "metric name");
    std::vector<rwexport::RawTag> tags;
    Require(rwexport::ParseTags(s.tags, &tags).ok(), "encoded tags parse back");
    for (const auto& [key, value] : tags) Require(!key.empty() && !value.empty(), "tag not empty");
    Require(i == 0 || s.tags_run == previous_run ||
                (s.tags_run == previous_run + 1 && s.tags != batch.samples[i - 1].tags),
            "tag runs");
    Require(i == 0 || s.tags_run != previous_run || s.tags == batch.samples[i - 1].tags,
            "same run, same tags");
    previous_run = s.tags_run;
  }
  // Deterministic: the same body again gives the same samples.
  const std::vector<rwexport::RawSample> first(batch.samples.begin(), batch.samples.end());
  std::vector<std::string> first_tags;
  for (const auto& s : first) first_tags.emplace_back(s.tags);
  LineBatchBuilder again;
  again.Build(body, options);
  Require(again.batch().samples.size() == first.size(), "same sample count");
  for (size_t i = 0; i < first.size(); ++i) {
    const rwexport::RawSample& s = again.batch().samples[i];
    Require(
        s.metric == first[i].metric && s.tags == first_tags[i] &&
            s.time_unix_nano == first[i].time_unix_nano &&
            (s.value == first[i].value || (s.value != s.value && first[i].value != first[i].value)),
        "same samples");
  }
  return 0;
}
