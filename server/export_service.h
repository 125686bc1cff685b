// The gRPC face of rwexport: rwexport.v1.ExportService over an ExportRegistry.
//
// Thin by design: it maps RPCs onto the registry and absl::Status onto grpc::Status. The
// ingest RPC is a callback reactor that never blocks: it hands each batch to the aggregator's
// workers and reads the next batch only when they are done, so a stream whose export is
// behind simply waits (back-pressure through gRPC flow control). It is served through the raw
// callback API: each batch arrives as gRPC's bytes and is decoded by DecodeSampleBatch
// (lib/ingest/batch_decoder.h) instead of generated code, which would build a string per
// tag and clear them all again for the next batch. A batch that is not a valid SampleBatch ends
// the stream with INVALID_ARGUMENT naming the batch and the place in it (counted from 0:
// "batch 3: sample 17: metric: invalid UTF-8"); earlier batches stay applied. Thread-safe.
#ifndef RWEXPORT_SERVER_EXPORT_SERVICE_H_
#define RWEXPORT_SERVER_EXPORT_SERVICE_H_

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "lib/common/mutex.h"
#include "lib/export/export.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/security.h"

namespace rwexport {

// Same code, same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Trailing metadata of a StreamSamples call ended because the server is stopping (status
// UNAVAILABLE): the stream's counts, a serialized v1::StreamSamplesResponse.
inline constexpr absl::string_view kStoppingResponseKey = "rwexport-stream-response-bin";

class IngestReactor;

// The StreamSamples calls gRPC holds, so that a stopping server can answer them.
struct OpenStreams {
  void Remove(IngestReactor* reactor);

  Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  absl::flat_hash_set<IngestReactor*> open ABSL_GUARDED_BY(mu);
};

class ExportServiceImpl final : public v1::ExportService::WithRawCallbackMethod_StreamSamples<
                                    v1::ExportService::CallbackService> {
 public:
  // `registry` must outlive the service. Every RPC of the service is checked by `auth`
  // (UNAUTHENTICATED when it refuses); health checks and reflection are not.
  explicit ExportServiceImpl(ExportRegistry* registry,
                             TokenAuthenticator auth = TokenAuthenticator(""));
  // Waits for StopExport calls still running.
  ~ExportServiceImpl() override;

  // For a server that is stopping: ends every open StreamSamples call, once its batches being
  // applied are done, with UNAVAILABLE and its counts (see kStoppingResponseKey); later calls
  // are refused UNAVAILABLE. Call before stopping the exports. Returns how many were open.
  size_t StopStreams();

  grpc::ServerUnaryReactor* StartExport(grpc::CallbackServerContext* context,
                                        const v1::StartExportRequest* request,
                                        v1::StartExportResponse* response) override;
  // Reads serialized v1::SampleBatch messages, answers a serialized v1::StreamSamplesResponse.
  grpc::ServerReadReactor<grpc::ByteBuffer>* StreamSamples(grpc::CallbackServerContext* context,
                                                           grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* StopExport(grpc::CallbackServerContext* context,
                                       const v1::StopExportRequest* request,
                                       v1::StopExportResponse* response) override;
  grpc::ServerUnaryReactor* GetExport(grpc::CallbackServerContext* context,
                                      const v1::GetExportRequest* request,
                                      v1::ExportStatus* response) override;
  grpc::ServerUnaryReactor* ListExports(grpc::CallbackServerContext* context,
                                        const v1::ListExportsRequest* request,
                                        v1::ListExportsResponse* response) override;

 private:
  // The reactor answering `status` at once, for calls refused before they start.
  grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context,
                                   const grpc::Status& status);
  // Removes an export whose StartExport answer did not reach the client (off the callback
  // thread; the destructor waits for it).
  void RemoveOrphan(const std::string& id);

  ExportRegistry* const registry_;
  const TokenAuthenticator auth_;
  Mutex mu_;
  CondVar cv_;
  int stops_running_ ABSL_GUARDED_BY(mu_) = 0;
  OpenStreams streams_;
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_EXPORT_SERVICE_H_
