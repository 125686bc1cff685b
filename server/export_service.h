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

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "lib/common/mutex.h"
#include "lib/export/export.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/security.h"

namespace rwexport {

// Same code, same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

class ExportServiceImpl final : public v1::ExportService::WithRawCallbackMethod_StreamSamples<
                                    v1::ExportService::CallbackService> {
 public:
  // `registry` must outlive the service. Every RPC of the service is checked by `auth`
  // (UNAUTHENTICATED when it refuses); health checks and reflection are not.
  explicit ExportServiceImpl(ExportRegistry* registry,
                             TokenAuthenticator auth = TokenAuthenticator(""));
  // Waits for StopExport calls still running.
  ~ExportServiceImpl() override;

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

  ExportRegistry* const registry_;
  const TokenAuthenticator auth_;
  Mutex mu_;
  CondVar cv_;
  int stops_running_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_EXPORT_SERVICE_H_
