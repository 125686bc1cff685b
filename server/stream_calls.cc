#include "server/stream_calls.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/export_service.h"  // ToGrpcStatus

namespace rwexport {

void OpenStreams::Remove(StoppableCall* call) {
  MutexLock lock(&mu);
  open.erase(call);
  removed.SignalAll();
}

absl::string_view MessageBytes(grpc::ByteBuffer& message, grpc::Slice* slice, std::string* buffer) {
  if (message.TrySingleSlice(slice).ok()) {
    return absl::string_view(reinterpret_cast<const char*>(slice->begin()), slice->size());
  }
  buffer->clear();
  std::vector<grpc::Slice> slices;
  if (message.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      buffer->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return *buffer;
}

void ReleaseMessageBytes(grpc::ByteBuffer* message, grpc::Slice* slice, std::string* buffer) {
  message->Clear();
  *slice = grpc::Slice();
  if (buffer->capacity() > kMaxKeptMessageBuffer) std::string().swap(*buffer);
}

size_t CallRetainedBytes(const StreamIngester& ingester, const DecodedBatch& batch,
                         const std::string& buffer) {
  return ingester.RetainedBytes() + batch.CapacityBytes() + buffer.capacity();
}

std::shared_ptr<const void> KeepMessageBytes(const grpc::Slice& slice, std::string* buffer,
                                             absl::string_view* view) {
  const char* const data = view->data();
  if (data >= buffer->data() && data + view->size() <= buffer->data() + buffer->size() &&
      !buffer->empty()) {
    const size_t offset = static_cast<size_t>(data - buffer->data());
    auto kept = std::make_shared<std::string>(std::move(*buffer));
    buffer->clear();
    *view = absl::string_view(kept->data() + offset, view->size());
    return kept;
  }
  return std::make_shared<grpc::Slice>(slice);
}

grpc::Status OpenExportStream(ExportRegistry& registry, const std::string& export_id,
                              std::shared_ptr<Export>* out) {
  absl::StatusOr<std::shared_ptr<Export>> found = registry.Lookup(export_id);
  if (!found.ok()) {  // NOT_FOUND, or UNAVAILABLE naming the replica that owns it
    return ToGrpcStatus(found.status());
  }
  std::shared_ptr<Export> e = *std::move(found);
  const int max_streams = registry.options().max_streams_per_export;
  if (!e->StreamOpened(max_streams)) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("export \"", export_id, "\" already has ", max_streams,
                                     " streams (--max_streams_per_export)"));
  }
  *out = std::move(e);
  return grpc::Status::OK;
}

}  // namespace rwexport
