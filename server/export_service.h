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
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/common/mutex.h"
#include "lib/export/export.h"
#include "lib/ingest/ingest_journal.h"
#include "rwexport/v1/export.grpc.pb.h"
#include "server/security.h"
#include "server/stream_calls.h"

namespace rwexport {

// Same code, same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Trailing metadata of a StreamSamples call ended because the server is stopping (status
// UNAVAILABLE): the stream's counts, a serialized v1::StreamSamplesResponse.
inline constexpr absl::string_view kStoppingResponseKey = "rwexport-stream-response-bin";

// Acknowledged ingest (IngestSamples).
struct IngestOptions {
  // Where batches are recorded before they are acknowledged; nullptr: ImmediateJournal (no
  // durability beyond memory). Must outlive the service.
  IngestJournal* journal = nullptr;
  // The most batches of a call read beyond its last ack (rwexport_server --ingest_window).
  uint32_t window = 32;
};

// The generated CallbackService with the two ingest methods raw. Spelled out: a raw bidi
// method cannot be layered over its typed form (same parameters, other return type).
using ExportServiceBase = v1::ExportService::WithRawCallbackMethod_StreamSamples<
    v1::ExportService::WithRawCallbackMethod_IngestSamples<
        v1::ExportService::WithCallbackMethod_StartExport<
            v1::ExportService::WithCallbackMethod_StopExport<
                v1::ExportService::WithCallbackMethod_GetExport<
                    v1::ExportService::WithCallbackMethod_ListExports<
                        v1::ExportService::Service>>>>>>;

class ExportServiceImpl final : public ExportServiceBase {
 public:
  // `registry` must outlive the service. Every RPC of the service is checked by `auth`
  // (UNAUTHENTICATED when it refuses); health checks and reflection are not.
  explicit ExportServiceImpl(ExportRegistry* registry,
                             TokenAuthenticator auth = TokenAuthenticator(""),
                             IngestOptions ingest = {});
  // Waits for StopExport calls still running.
  ~ExportServiceImpl() override;

  // For a server that is stopping: ends every open StreamSamples and IngestSamples call (the
  // latter after acknowledging what was applied), once its batches being
  // applied are done, with UNAVAILABLE and its counts (see kStoppingResponseKey); later calls
  // are refused UNAVAILABLE. Call before stopping the exports. Returns how many were open.
  size_t StopStreams();
  // After StopStreams(): waits until every ingest call has ended (its last batches applied and
  // answered), or until `deadline`. Returns how many are still open.
  size_t AwaitStreamsEnded(absl::Time deadline);

  grpc::ServerUnaryReactor* StartExport(grpc::CallbackServerContext* context,
                                        const v1::StartExportRequest* request,
                                        v1::StartExportResponse* response) override;
  // Reads serialized v1::SampleBatch messages, answers a serialized v1::StreamSamplesResponse.
  grpc::ServerReadReactor<grpc::ByteBuffer>* StreamSamples(grpc::CallbackServerContext* context,
                                                           grpc::ByteBuffer* response) override;
  // Reads serialized v1::IngestRequest messages, writes serialized v1::IngestAck messages
  // (server/acked_ingest.h).
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* IngestSamples(
      grpc::CallbackServerContext* context) override;
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
  ImmediateJournal immediate_journal_;
  IngestJournal* const journal_;
  const uint32_t ingest_window_;
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_EXPORT_SERVICE_H_
