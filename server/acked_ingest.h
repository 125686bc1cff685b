// IngestSamples, the acknowledged and resumable ingest RPC (see export.proto), as a raw
// bidirectional callback reactor: each request is decoded by hand (DecodeIngestRequest, then
// DecodeSampleBatch on the embedded batch's bytes, no copy), handed to the export's aggregator
// and to the IngestJournal, and acknowledged once both are done, in sequence order. It never
// blocks: reads wait while `window` batches of the call are unacknowledged or four are being
// applied (back-pressure through gRPC flow control), and acks are coalesced, one write at a
// time. The stream's sequence state lives in the Export, so it outlives the call.
#ifndef RWEXPORT_SERVER_ACKED_INGEST_H_
#define RWEXPORT_SERVER_ACKED_INGEST_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "lib/export/export.h"
#include "lib/ingest/ingest_journal.h"
#include "server/stream_calls.h"

namespace rwexport {

using AckedIngestReactor = grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>;

// The reactor of one IngestSamples call, added to `streams->open` (the caller holds
// streams->mu and has checked that the server is not stopping). Every pointer must outlive
// the call; the reactor deletes itself.
AckedIngestReactor* NewAckedIngestCall(ExportRegistry* registry, OpenStreams* streams,
                                       IngestJournal* journal, uint32_t window)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(streams->mu);

// A call refused before its first read (unauthenticated, server stopping).
AckedIngestReactor* RefusedAckedIngestCall(const grpc::Status& status);

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_ACKED_INGEST_H_
