// The yardstick of `rwexport bench`: a gRPC service built from the same proto as rwexport's
// that only receives. StartExport hands out an id without looking at the configuration;
// StreamSamples lets gRPC parse each SampleBatch, counts its samples (self-describing and
// compact) and drops them; StopExport reports the count as accepted. What it costs is what
// merely receiving the stream costs. Thread-safe.
#ifndef RWEXPORT_LIB_BENCH_NULL_SINK_H_
#define RWEXPORT_LIB_BENCH_NULL_SINK_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "grpcpp/grpcpp.h"
#include "lib/common/mutex.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

class NullSinkService final : public v1::ExportService::CallbackService {
 public:
  NullSinkService() = default;

  // OK with a new id, whatever the request.
  grpc::ServerUnaryReactor* StartExport(grpc::CallbackServerContext* context,
                                        const v1::StartExportRequest* request,
                                        v1::StartExportResponse* response) override;
  // Counts and drops. The first batch must name an export StartExport returned (NOT_FOUND
  // otherwise); the response's `accepted` is the stream's sample count.
  grpc::ServerReadReactor<v1::SampleBatch>* StreamSamples(
      grpc::CallbackServerContext* context, v1::StreamSamplesResponse* response) override;
  // IngestSamples the same way: counts and drops each batch and acknowledges it at once (one
  // ack write at a time, covering every batch read since the last).
  grpc::ServerBidiReactor<v1::IngestRequest, v1::IngestAck>* IngestSamples(
      grpc::CallbackServerContext* context) override;
  // samples_accepted: the samples of every stream of the export that has ended. NOT_FOUND for
  // an unknown id.
  grpc::ServerUnaryReactor* StopExport(grpc::CallbackServerContext* context,
                                       const v1::StopExportRequest* request,
                                       v1::StopExportResponse* response) override;

  // Samples received over every stream that has ended.
  uint64_t samples() const;

 private:
  friend class NullSinkReactor;
  friend class NullSinkIngestReactor;
  bool Exists(const std::string& export_id) const;
  void AddSamples(const std::string& export_id, uint64_t samples);

  mutable Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, uint64_t> samples_by_export_ ABSL_GUARDED_BY(mu_);
  uint64_t samples_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_BENCH_NULL_SINK_H_
