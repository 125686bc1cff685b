// Keeps the hand decoder (lib/ingest/batch_decoder.cc) in step with export.proto: every field
// of every message it decodes by hand must be one it knows, with the same number and name.
// A field added to one of those messages without teaching the decoder fails here (the
// decoder would silently skip it as unknown).
#include <set>
#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "lib/ingest/batch_decoder.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {
namespace {

using FieldKey = std::tuple<std::string, uint32_t, std::string>;

std::set<FieldKey> KnownFields() {
  std::set<FieldKey> known;
  for (const DecodedField& f : HandDecodedFields()) {
    known.emplace(std::string(f.message), f.number, std::string(f.name));
  }
  return known;
}

TEST(BatchDecoderFieldsTest, EveryFieldOfTheHandDecodedMessagesIsKnown) {
  const std::set<FieldKey> known = KnownFields();
  std::set<FieldKey> in_proto;
  for (const google::protobuf::Descriptor* message :
       {v1::SampleBatch::descriptor(), v1::Sample::descriptor(), v1::Tag::descriptor(),
        v1::CompactSamples::descriptor(), v1::IngestRequest::descriptor()}) {
    for (int i = 0; i < message->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* field = message->field(i);
      const FieldKey key{message->full_name(), static_cast<uint32_t>(field->number()),
                         field->name()};
      in_proto.insert(key);
      EXPECT_TRUE(known.count(key) == 1)
          << message->full_name() << "." << field->name() << " = " << field->number()
          << " is not decoded by lib/ingest/batch_decoder.cc: teach the decoder the field";
    }
    // The decoder skips extensions and oneofs it does not expect; there are none.
    EXPECT_EQ(message->extension_range_count(), 0) << message->full_name();
  }
  // And nothing the decoder knows is gone from the proto.
  for (const FieldKey& key : known) {
    EXPECT_TRUE(in_proto.count(key) == 1)
        << std::get<0>(key) << "." << std::get<2>(key) << " = " << std::get<1>(key)
        << " is known to the decoder but not in export.proto";
  }
}

}  // namespace
}  // namespace rwexport
