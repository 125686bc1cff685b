// DecodeSampleBatch and ParseTags on hand-encoded bytes: decoded values, unknown fields, and
// every malformed case with its message.
#include "lib/ingest/batch_decoder.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// A minimal protobuf encoder, written from the wire-format specification, independent of the
// decoder under test.
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Key(uint32_t field, int wire_type) {
  return Varint((uint64_t{field} << 3) | wire_type);
}
std::string Len(uint32_t field, absl::string_view bytes) {
  return Key(field, 2) + Varint(bytes.size()) + std::string(bytes);
}
std::string VarintField(uint32_t field, uint64_t v) { return Key(field, 0) + Varint(v); }
std::string Fixed64(uint64_t bits) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((bits >> (8 * i)) & 0xff);
  return out;
}
std::string DoubleField(uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  return Key(field, 1) + Fixed64(bits);
}
std::string Tag(absl::string_view key, absl::string_view value) {
  return Len(2, Len(1, key) + Len(2, value));
}

absl::Status Decode(const std::string& bytes, DecodedBatch* batch) {
  return DecodeSampleBatch(bytes, batch);
}

// The error message of decoding `bytes` ("" if it decodes).
std::string DecodeError(const std::string& bytes) {
  DecodedBatch batch;
  absl::Status status = DecodeSampleBatch(bytes, &batch);
  if (status.ok()) return "";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

std::string ParseTagsError(const std::string& bytes) {
  std::vector<RawTag> tags;
  absl::Status status = ParseTags(bytes, &tags);
  if (status.ok()) return "";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

TEST(BatchDecoderTest, DecodesSamplesAsViews) {
  const std::string tags = Tag("method", "GET") + Tag("status", "200");
  const std::string sample0 =
      Len(1, "http_reqs") + tags + VarintField(3, 1730305200123456789) + DoubleField(4, 1.5);
  const std::string sample1 = Len(1, "vus") + VarintField(3, 5) + DoubleField(4, -0.25);
  const std::string bytes = Len(1, "exp-1") + Len(3, sample0) + Len(3, sample1);

  DecodedBatch batch;
  ASSERT_TRUE(Decode(bytes, &batch).ok());
  EXPECT_EQ(batch.export_id, "exp-1");
  ASSERT_EQ(batch.samples.size(), 2u);
  EXPECT_EQ(batch.samples[0].metric, "http_reqs");
  EXPECT_EQ(batch.samples[0].tags, tags);
  // A view into the bytes, not a copy.
  EXPECT_GE(batch.samples[0].tags.data(), bytes.data());
  EXPECT_LT(batch.samples[0].tags.data(), bytes.data() + bytes.size());
  EXPECT_EQ(batch.samples[0].time_unix_nano, 1730305200123456789);
  EXPECT_EQ(batch.samples[0].value, 1.5);
  EXPECT_EQ(batch.samples[1].metric, "vus");
  EXPECT_EQ(batch.samples[1].tags, "");
  EXPECT_EQ(batch.samples[1].time_unix_nano, 5);
  EXPECT_EQ(batch.samples[1].value, -0.25);
  EXPECT_TRUE(batch.compact_refs.empty());
  EXPECT_EQ(batch.declarations.metrics_size(), 0);

  std::vector<RawTag> parsed;
  ASSERT_TRUE(ParseTags(batch.samples[0].tags, &parsed).ok());
  EXPECT_THAT(parsed, ElementsAre(Pair("method", "GET"), Pair("status", "200")));
}

TEST(BatchDecoderTest, ConsecutiveSamplesWithTheSameTagBytesShareARun) {
  const std::string a = Tag("status", "200");
  const std::string b = Tag("status", "404");
  // The same tags in another encoding (an unknown field inside) are other bytes: a new run.
  const std::string a2 = Len(2, Len(1, "status") + VarintField(9, 1) + Len(2, "200"));
  std::string bytes;
  for (const std::string* tags : {&a, &a, &b, &a, &a2, &a2}) {
    bytes += Len(3, Len(1, "http_reqs") + *tags + VarintField(3, 1));
  }
  DecodedBatch batch;
  ASSERT_TRUE(Decode(bytes, &batch).ok());
  std::vector<uint32_t> runs;
  for (const RawSample& s : batch.samples) runs.push_back(s.tags_run);
  EXPECT_THAT(runs, ElementsAre(0u, 0u, 1u, 2u, 3u, 3u));
}

TEST(BatchDecoderTest, MissingFieldsTakeDefaultsAndNegativeTimesDecode) {
  // A sample with nothing set, and one whose time is -1 (ten-byte varint).
  const std::string bytes = Len(3, "") + Len(3, VarintField(3, static_cast<uint64_t>(-1)));
  DecodedBatch batch;
  ASSERT_TRUE(Decode(bytes, &batch).ok());
  ASSERT_EQ(batch.samples.size(), 2u);
  EXPECT_EQ(batch.samples[0].metric, "");
  EXPECT_EQ(batch.samples[0].time_unix_nano, 0);
  EXPECT_EQ(batch.samples[0].value, 0);
  EXPECT_EQ(batch.samples[1].time_unix_nano, -1);
}

TEST(BatchDecoderTest, LastValueOfARepeatedScalarWins) {
  const std::string sample = Len(1, "first") + Len(1, "second") + VarintField(3, 1) +
                             VarintField(3, 2) + DoubleField(4, 1) + DoubleField(4, 2);
  const std::string bytes = Len(1, "a") + Len(3, sample) + Len(1, "b");
  DecodedBatch batch;
  ASSERT_TRUE(Decode(bytes, &batch).ok());
  EXPECT_EQ(batch.export_id, "b");
  ASSERT_EQ(batch.samples.size(), 1u);
  EXPECT_EQ(batch.samples[0].metric, "second");
  EXPECT_EQ(batch.samples[0].time_unix_nano, 2);
  EXPECT_EQ(batch.samples[0].value, 2);
}

TEST(BatchDecoderTest, SkipsUnknownFieldsOfEveryWireType) {
  const std::string unknown = VarintField(9, 300) + Key(10, 1) + Fixed64(7) + Len(11, "xyz") +
                              Key(12, 5) + "abcd" +
                              // a group holding a varint and a nested group
                              Key(13, 3) + VarintField(1, 1) + Key(2, 3) + Key(2, 4) + Key(13, 4);
  const std::string tag = Len(2, Len(1, "k") + unknown + Len(2, "v"));
  const std::string sample = Len(1, "m") + unknown + tag + VarintField(3, 10);
  const std::string compact = Len(1, Varint(4)) + unknown;
  const std::string bytes = unknown + Len(3, sample) + Len(5, compact) + unknown;

  DecodedBatch batch;
  ASSERT_TRUE(Decode(bytes, &batch).ok()) << DecodeError(bytes);
  ASSERT_EQ(batch.samples.size(), 1u);
  EXPECT_EQ(batch.samples[0].metric, "m");
  EXPECT_EQ(batch.samples[0].tags, tag);
  EXPECT_EQ(batch.samples[0].time_unix_nano, 10);
  EXPECT_THAT(batch.compact_refs, ElementsAre(4u));
  std::vector<RawTag> parsed;
  ASSERT_TRUE(ParseTags(batch.samples[0].tags, &parsed).ok());
  EXPECT_THAT(parsed, ElementsAre(Pair("k", "v")));
}

TEST(BatchDecoderTest, TagsSplitByAnotherFieldAreJoined) {
  const std::string a = Tag("a", "1");
  const std::string b = Tag("b", "2");
  const std::string c = Tag("c", "3");
  const std::string sample = a + VarintField(3, 7) + b + c + Len(1, "m");
  const std::string bytes = Len(3, sample);
  DecodedBatch batch;
  ASSERT_TRUE(Decode(bytes, &batch).ok());
  ASSERT_EQ(batch.samples.size(), 1u);
  EXPECT_EQ(batch.samples[0].tags, a + b + c);
  std::vector<RawTag> parsed;
  ASSERT_TRUE(ParseTags(batch.samples[0].tags, &parsed).ok());
  EXPECT_THAT(parsed, ElementsAre(Pair("a", "1"), Pair("b", "2"), Pair("c", "3")));
}

TEST(BatchDecoderTest, TagFieldsRepeatedKeepTheLastKeyAndValue) {
  const std::string bytes =
      Len(2, Len(1, "x") + Len(2, "1") + Len(1, "y") + Len(2, "2")) + Len(2, "");
  std::vector<RawTag> parsed;
  ASSERT_TRUE(ParseTags(bytes, &parsed).ok());
  EXPECT_THAT(parsed, ElementsAre(Pair("y", "2"), Pair("", "")));
}

TEST(BatchDecoderTest, CompactColumnsPackedAndUnpacked) {
  // Packed: refs 1, 300; deltas 1000, -3 (zigzag 2000, 5); values 0.5, 2.
  const std::string packed = Len(1, Varint(1) + Varint(300)) + Len(2, Varint(2000) + Varint(5)) +
                             Len(3, Fixed64(0x3fe0000000000000) + Fixed64(0x4000000000000000));
  // Unpacked, in a second compact field (appended, as protobuf merges a repeated message).
  const std::string unpacked =
      VarintField(1, 7) + VarintField(2, 1) + DoubleField(3, -1) +
      VarintField(1, uint64_t{0x100000005});  // uint32: the low 32 bits (5)
  DecodedBatch batch;
  ASSERT_TRUE(Decode(Len(5, packed) + Len(5, unpacked), &batch).ok());
  EXPECT_THAT(batch.compact_refs, ElementsAre(1u, 300u, 7u, 5u));
  EXPECT_THAT(batch.compact_deltas, ElementsAre(1000, -3, -1));
  EXPECT_THAT(batch.compact_values, ElementsAre(0.5, 2.0, -1.0));
}

TEST(BatchDecoderTest, EmptyPackedColumnsAddNothing) {
  // Zero-length packed columns are valid protobuf (found by batch_fuzz: an empty packed
  // `values` once reached memcpy with a null source).
  DecodedBatch batch;
  ASSERT_TRUE(
      Decode(Len(5, Len(1, "") + Len(2, "") + Len(3, "") + DoubleField(3, 4)), &batch).ok());
  EXPECT_TRUE(batch.compact_refs.empty());
  EXPECT_TRUE(batch.compact_deltas.empty());
  EXPECT_THAT(batch.compact_values, ElementsAre(4.0));
}

TEST(BatchDecoderTest, DeclarationsParsedLikeGeneratedCode) {
  v1::SampleBatch original;
  original.set_export_id("e");
  v1::MetricDeclaration* m = original.add_metrics();
  m->set_name("my_trend");
  m->set_type(v1::TREND);
  m->set_kind(v1::TIME);
  v1::SeriesDeclaration* d = original.add_series();
  d->set_ref(3);
  d->set_metric("my_trend");
  v1::Tag* t = d->add_tags();
  t->set_key("k");
  t->set_value("v");
  v1::Sample* s = original.add_samples();
  s->set_metric("my_trend");
  *s->mutable_tags() = d->tags();
  s->set_time_unix_nano(99);
  s->set_value(4.5);
  original.mutable_compact()->add_refs(3);
  original.mutable_compact()->add_time_unix_nano_delta(-9);
  original.mutable_compact()->add_values(8);

  // The decoded batch points into the bytes: they must outlive it.
  const std::string bytes = original.SerializeAsString();
  DecodedBatch batch;
  ASSERT_TRUE(Decode(bytes, &batch).ok());
  EXPECT_EQ(batch.export_id, "e");
  ASSERT_EQ(batch.declarations.metrics_size(), 1);
  EXPECT_EQ(batch.declarations.metrics(0).SerializeAsString(), m->SerializeAsString());
  // Series declarations stay encoded (checked), parsed one at a time when applied.
  EXPECT_EQ(batch.declarations.series_size(), 0);
  ASSERT_EQ(batch.series_declarations.size(), 1u);
  v1::SeriesDeclaration parsed;
  ASSERT_TRUE(ParseSeriesDeclaration(batch.series_declarations[0], &parsed));
  EXPECT_EQ(parsed.SerializeAsString(), d->SerializeAsString());
  EXPECT_EQ(batch.max_series_ref, d->ref());
  EXPECT_THAT(batch.series_declaration_refs, ElementsAre(d->ref()));
  ASSERT_EQ(batch.samples.size(), 1u);
  EXPECT_EQ(batch.samples[0].tags, Tag("k", "v"));
  EXPECT_EQ(batch.samples[0].time_unix_nano, 99);
  EXPECT_EQ(batch.samples[0].value, 4.5);
  EXPECT_THAT(batch.compact_refs, ElementsAre(3u));
  EXPECT_THAT(batch.compact_deltas, ElementsAre(-9));
  EXPECT_THAT(batch.compact_values, ElementsAre(8.0));

  // A reused batch is cleared by the next decode.
  const std::string next = Len(3, Len(1, "x"));
  ASSERT_TRUE(Decode(next, &batch).ok());
  EXPECT_EQ(batch.export_id, "");
  EXPECT_EQ(batch.declarations.metrics_size(), 0);
  EXPECT_TRUE(batch.series_declarations.empty());
  EXPECT_TRUE(batch.series_declaration_refs.empty());
  EXPECT_EQ(batch.max_series_ref, 0u);
  ASSERT_EQ(batch.samples.size(), 1u);
  EXPECT_TRUE(batch.compact_refs.empty());
}

TEST(BatchDecoderTest, MalformedBatchesNameWhatAndWhere) {
  const std::string ok_sample = Len(3, Len(1, "m") + VarintField(3, 1));
  // Each: bytes, the exact message.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\x80", "truncated field key"},
      {std::string("\x00\x01", 2), "invalid field key 0"},
      {Varint(uint64_t{1} << 33), "invalid field key 8589934592"},
      {"\x88\x80\x80\x80\x80\x00", "field key longer than 5 bytes"},  // protobuf's limit
      {Key(9, 2) + "\x80\x80\x80\x80\x80\x00", "truncated field 9"},  // so is a length's
      {"\x1a", "sample 0: field 3 (samples): truncated"},
      {ok_sample + "\x1a\x05\x0a", "sample 1: field 3 (samples): truncated"},
      {ok_sample + VarintField(3, 1),
       "sample 1: field 3 (samples): wire type 0 (varint), expected length-delimited"},
      {Len(3,
           "\x12\x05"
           "ab"),
       "sample 0: field 2 (tags): truncated"},
      {Len(3, Key(2, 0) + "\x01"),
       "sample 0: field 2 (tags): wire type 0 (varint), expected length-delimited"},
      {Len(3, Key(1, 5) + "abcd"),
       "sample 0: field 1 (metric): wire type 5 (fixed32), expected length-delimited"},
      {Len(3, Len(3, "x")),
       "sample 0: field 3 (time_unix_nano): wire type 2 (length-delimited), expected varint"},
      {Len(3, Key(3, 0) + "\xff\xff"), "sample 0: field 3 (time_unix_nano): truncated"},
      {Len(3, Key(3, 0) + std::string(10, '\xff') + "\x01"),
       "sample 0: field 3 (time_unix_nano): truncated"},  // an 11-byte varint
      {Len(3, VarintField(4, 1)),
       "sample 0: field 4 (value): wire type 0 (varint), expected fixed64"},
      {Len(3, Key(4, 1) + "1234567"), "sample 0: field 4 (value): truncated"},
      {ok_sample + Len(3, Len(1, "ok\xc3")), "sample 1: metric: invalid UTF-8"},
      {Len(1, "exp\xff"), "export_id: invalid UTF-8"},
      {VarintField(1, 3), "field 1 (export_id): wire type 0 (varint), expected length-delimited"},
      {Len(2, Len(1, "bad\xff")),
       "metric declaration 0: not a valid MetricDeclaration (bad encoding or invalid UTF-8)"},
      {Len(2, "\x08"),
       "metric declaration 0: not a valid MetricDeclaration (bad encoding or invalid UTF-8)"},
      {Len(4, "") + Len(4, Key(2, 2) + "\x09"),
       "series declaration 1: not a valid SeriesDeclaration (bad encoding or invalid UTF-8)"},
      {Key(2, 1) + Fixed64(0),
       "metric declaration 0: field 2 (metrics): wire type 1 (fixed64), expected "
       "length-delimited"},
      {Len(5, Len(3, "1234567890123")), "compact: values: packed length 13 is not a multiple of 8"},
      {Len(5, Len(1, "\x01\x80")), "compact: refs: truncated varint in packed element 1"},
      {Len(5, Key(3, 5) + "abcd"),
       "compact: field 3 (values): wire type 5 (fixed32), expected length-delimited"},
      {Len(5, Key(2, 1) + Fixed64(1)),
       "compact: field 2 (time_unix_nano_delta): wire type 1 (fixed64), expected "
       "length-delimited"},
      {VarintField(5, 1),
       "compact: field 5 (compact): wire type 0 (varint), expected "
       "length-delimited"},
      {Key(9, 6), "field 9: invalid wire type 6"},
      {Key(9, 7), "field 9: invalid wire type 7"},
      {Key(9, 4), "field 9: end-group without a start-group"},
      {Key(9, 3) + VarintField(1, 1), "field 9: truncated group"},
      {Key(9, 3) + Key(8, 4), "field 9: group ended by the end-group of field 8"},
      {Key(9, 1) + "1234", "truncated field 9"},
      {Key(9, 5) + "12", "truncated field 9"},
      {Key(9, 2) + "\x05"
                   "ab",
       "truncated field 9"},
      {Key(9, 2) + Varint(uint64_t{1} << 40), "truncated field 9"},
      {Len(3, Key(9, 3)), "sample 0: field 9: truncated group"},
  };
  for (const auto& [bytes, message] : cases) {
    EXPECT_EQ(DecodeError(bytes), message) << "bytes: " << testing::PrintToString(bytes);
  }

  // Groups nested 64 deep are skipped; 65 deep are refused (protobuf's limit of 100 counts
  // messages and groups together).
  std::string deep, deeper;
  for (int i = 0; i < 64; ++i) deep += Key(9, 3);
  for (int i = 0; i < 64; ++i) deep += Key(9, 4);
  EXPECT_EQ(DecodeError(deep), "");
  for (int i = 0; i < 65; ++i) deeper += Key(9, 3);
  EXPECT_EQ(DecodeError(deeper), "field 9: groups nested deeper than 64");
}

TEST(BatchDecoderTest, MalformedTagsNameTheTag) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {Tag("a", "1") + Tag("k\xff", "v"), "tag 1: key: invalid UTF-8"},
      {Tag("k", "\xed\xa0\x80"), "tag 0: value: invalid UTF-8"},  // a surrogate
      {Len(2, Key(1, 0) + "\x01"),
       "tag 0: field 1 (key): wire type 0 (varint), expected length-delimited"},
      {Len(2, Key(2, 2) + "\x05"
                          "ab"),
       "tag 0: field 2 (value): truncated"},
      {Len(2, Key(7, 7)), "tag 0: field 7: invalid wire type 7"},
      {Len(2, "\x80"), "tag 0: truncated field key"},
      {Tag("a", "1") + Len(3, "x"), "tag 1: not an encoded tags field"},
      {Tag("a", "1") + "\x12\x09", "tag 1: not an encoded tags field"},
  };
  for (const auto& [bytes, message] : cases) {
    EXPECT_EQ(ParseTagsError(bytes), message) << "bytes: " << testing::PrintToString(bytes);
  }
  EXPECT_EQ(ParseTagsError(""), "");
}

TEST(BatchDecoderTest, Utf8FollowsTheUnicodeDefinition) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9"));                  // é
  EXPECT_TRUE(IsValidUtf8("\xe2\x82\xac and more ascii"));  // €
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x98\x80"));             // U+1F600
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));             // U+10FFFF
  EXPECT_TRUE(IsValidUtf8("\xed\x9f\xbf"));                 // U+D7FF
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));                    // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));                // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));                // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));            // U+110000
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));                  // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));                      // lone continuation
  EXPECT_FALSE(IsValidUtf8("0123456789abcdefghij\xff"));  // past the ASCII fast path
  EXPECT_FALSE(IsValidUtf8("caf\xc3\xa9 \xc3("));         // bad second byte
}

}  // namespace
}  // namespace rwexport
