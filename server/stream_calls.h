// What the two ingest RPCs (StreamSamples, IngestSamples) share in server/: the registry of
// open calls that a stopping server ends, a received message's bytes without a copy, and the
// opening of an export for a new stream. Thread-safe.
#ifndef RWEXPORT_SERVER_STREAM_CALLS_H_
#define RWEXPORT_SERVER_STREAM_CALLS_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "lib/common/mutex.h"
#include "lib/export/export.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/stream_ingester.h"

namespace rwexport {

// An ingest call that a stopping server ends (with UNAVAILABLE, once what it took is applied).
class StoppableCall {
 public:
  // Called with OpenStreams::mu held, before the call's OnDone.
  virtual void ServerStopping() = 0;

 protected:
  ~StoppableCall() = default;
};

// The ingest calls gRPC holds, so that a stopping server can answer them.
struct OpenStreams {
  void Remove(StoppableCall* call);

  Mutex mu;
  CondVar removed;  // signalled by Remove
  bool stopping ABSL_GUARDED_BY(mu) = false;
  absl::flat_hash_set<StoppableCall*> open ABSL_GUARDED_BY(mu);
};

// The bytes of a received message: its only slice when gRPC received it in one (kept in
// `slice`, no copy), else its slices copied into `buffer`. Valid while those live.
absl::string_view MessageBytes(grpc::ByteBuffer& message, grpc::Slice* slice, std::string* buffer);

// Before the next read into `message`: drops the message and `slice`, and releases `buffer`
// if its capacity is past kMaxKeptMessageBuffer (a batch of 100k series declarations is
// ~25 MB in several slices: not kept for the stream's life once read).
inline constexpr size_t kMaxKeptMessageBuffer = 1 << 20;
void ReleaseMessageBytes(grpc::ByteBuffer* message, grpc::Slice* slice, std::string* buffer);

// What an ingest call keeps for its stream, as it reports it to its export
// (ExportStatus.stream_retained_bytes): its ingester's declarations, its reused decoded batch
// and its message buffer.
size_t CallRetainedBytes(const StreamIngester& ingester, const DecodedBatch& batch,
                         const std::string& buffer);

// Keeps bytes that MessageBytes returned alive past the next message, without copying them:
// `*view` (a part of them) is re-pointed if need be, and stays valid while the returned owner
// lives. A message kept in `slice` is referenced (gRPC's slices are reference counted); one in
// `buffer` is moved out of it (`buffer` is left empty). For the write-ahead log, which writes
// a batch from the request that carried it.
std::shared_ptr<const void> KeepMessageBytes(const grpc::Slice& slice, std::string* buffer,
                                             absl::string_view* view);

// The export `export_id` for a new stream, counted as one of its streams (Export::StreamOpened):
// NOT_FOUND, UNAVAILABLE naming the owner for an id of another replica (ExportRegistry::Lookup),
// or RESOURCE_EXHAUSTED beyond --max_streams_per_export.
grpc::Status OpenExportStream(ExportRegistry& registry, const std::string& export_id,
                              std::shared_ptr<Export>* out);

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_STREAM_CALLS_H_
