// The durability seam of acknowledged ingest (IngestSamples): every batch a call takes is
// appended to an IngestJournal, and the batch is acknowledged to the client only once the
// journal says it is durable (and the aggregator has applied it). Without a data directory the
// journal is ImmediateJournal: durable at once, i.e. acknowledged when applied. A write-ahead
// log goes behind this interface.
//
// Thread-safety: implementations are thread-safe; Append is called from gRPC callback threads
// and must not block for long (no fsync on the caller's thread).
#ifndef RWEXPORT_LIB_INGEST_INGEST_JOURNAL_H_
#define RWEXPORT_LIB_INGEST_INGEST_JOURNAL_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rwexport {

// One batch as the journal sees it. The views are valid only during Append (`batch` longer if
// `batch_owner` is set): an implementation copies what it keeps.
struct IngestRecord {
  absl::string_view export_id;
  absl::string_view stream_id;
  uint64_t sequence = 0;
  // The batch's v1::SampleBatch encoding, exactly as received.
  absl::string_view batch;
  // True for a batch appended again, not applied again: its first record was applied but
  // failed to become durable, and the client resent it. A journal may thus hold a sequence
  // more than once: recovery applies each (export, stream, sequence) once, the first record
  // of it that it finds, and restores the stream's highest sequence
  // (Export::RestoreStreamSequence).
  bool resent = false;
  // If set, keeps `batch` valid after Append returns: a journal may then keep this reference
  // until the batch is written instead of copying it.
  std::shared_ptr<const void> batch_owner;
};

class IngestJournal {
 public:
  virtual ~IngestJournal() = default;

  // Records `record`, in call order (a record appended before another is replayed before
  // it). Called once the batch is handed to the aggregator: a crash in between loses a batch
  // that was never acknowledged, which the client resends. Then it then runs `on_durable` exactly
  // once, on any thread, maybe before Append returns: OK once the record is durable, or the error
  // that keeps it from being (e.g. UNAVAILABLE "disk full"), which ends the call without
  // acknowledging the batch.
  virtual void Append(const IngestRecord& record, std::function<void(absl::Status)> on_durable) = 0;
};

// No durability beyond memory: every record is durable at once (on the caller's thread).
class ImmediateJournal final : public IngestJournal {
 public:
  void Append(const IngestRecord&, std::function<void(absl::Status)> on_durable) override {
    on_durable(absl::OkStatus());
  }
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_INGEST_INGEST_JOURNAL_H_
