// Recovery's second half: the batches in the write-ahead log (lib/durable/export_journal.h)
// handed back, in log order, to the aggregators of the exports ExportRegistry::Recover()
// brought back, so that their figures (samples accepted and rejected, rejections, counter
// totals, windows) continue where the crashed process left them.
//
// Each stream of the log gets an ingester of its own, as it had when it was live (compact
// batches refer to series declared earlier on their stream). A batch is applied completely
// before the next one is handed over, so the aggregators see the log's order. An acknowledged
// stream (IngestSamples; its id carries kAckedStreamPrefix) may have a sequence in the log more
// than once (a batch whose first record did not become durable is journaled again when resent):
// each (export, stream, sequence) is applied once, and the stream's highest sequence is
// restored (Export::RestoreStreamSequence) so a client resuming after the crash resends only
// what follows it. Records of
// exports that are not running (stopped, or unknown: their record was set aside) are skipped
// and counted.
//
// Checkpoints (lib/durable/checkpoints.md): for an export whose checkpoint was loaded
// (UseCheckpoint, before the replay), its records before the checkpoint's position are skipped, and
// so are its batches after it whose stream's sequence the checkpoint covers (applied before the
// checkpoint, appended after it); an acknowledged stream's sequence is restored from the
// checkpoint even when no record of it follows. The caller restores the checkpoint's
// aggregation state into the export; the replayer only decides which records still apply.
//
// Not thread-safe: one replay, on one thread.
#ifndef RWEXPORT_LIB_EXPORT_JOURNAL_REPLAY_H_
#define RWEXPORT_LIB_EXPORT_JOURNAL_REPLAY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "lib/durable/export_journal.h"
#include "lib/export/export.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/stream_ingester.h"
#include "rwexport/durable/v1/checkpoint.pb.h"

namespace rwexport {

struct ReplayTotals {
  uint64_t batches = 0;               // handed to a recovered export
  uint64_t samples = 0;               // in them (accepted and rejected)
  uint64_t skipped_batches = 0;       // of exports that are not running
  uint64_t invalid_batches = 0;       // refused by the decoder or ingester (logged)
  uint64_t duplicate_batches = 0;     // an acknowledged stream's sequence seen before: not applied
  uint64_t exports = 0;               // exports that got at least one batch
  uint64_t checkpointed_batches = 0;  // in a checkpoint's state already: not applied
  uint64_t checkpoints_used = 0;      // UseCheckpoint calls for running exports
  // Checkpoints whose record was not met at their position (the log lost it): the batches
  // after it that are left are applied; logged.
  uint64_t checkpoint_records_missing = 0;
};

class JournalReplayer {
 public:
  explicit JournalReplayer(ExportRegistry* registry) : registry_(registry) {}

  // Before the replay: `export_id`'s state comes from a checkpoint covering the log up to
  // `covers`, with `streams` (stream id as in the log -> highest sequence in the state).
  void UseCheckpoint(const std::string& export_id, WalPosition covers,
                     const std::map<std::string, uint64_t>& streams);
  // The same for a loaded checkpoint, whose streams' counts are added to those replayed after
  // it (an acknowledged stream's IngestAck.stream_accepted/stream_rejected), and whose
  // streams' progress goes to the export's aggregator (Aggregator::RestoreStreams) for its
  // next checkpoint. The caller has restored its aggregation state.
  void UseCheckpoint(const durable::v1::AggregationCheckpoint& checkpoint);

  // For ExportJournal::Open's replay callback. Never an error: what cannot be applied is
  // counted (and logged once).
  absl::Status Apply(const JournalRecord& record);

  // Records what each export got (Export::AddReplayed), bounds the recovered exports' re-sent
  // windows (ExportRegistry::EndRecoveryReplay), logs one line and returns the totals.
  ReplayTotals Finish();

 private:
  struct Checkpoint {
    WalPosition covers;
    std::map<std::string, uint64_t, std::less<>> streams;
    bool record_seen = false;
    // Acknowledged streams' counts in the state (stream id without the prefix).
    std::map<std::string, std::pair<uint64_t, uint64_t>> acked_counts;
  };
  struct PerExport {
    std::shared_ptr<Export> exp;  // null: not running, its records are skipped
    uint64_t batches = 0;
    uint64_t samples = 0;
    std::unique_ptr<Checkpoint> checkpoint;  // null: replayed from the log's start
  };
  // Whether `record` (a batch or checkpoint record of `per`) is in its checkpoint's state.
  bool Checkpointed(PerExport& per, const JournalRecord& record);
  PerExport& ExportOf(absl::string_view export_id);

  ExportRegistry* const registry_;
  std::map<std::string, PerExport, std::less<>> exports_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<StreamIngester>> streams_;
  // The highest sequence applied per acknowledged (export, stream id without the prefix).
  std::map<std::pair<std::string, std::string>, uint64_t> acked_sequences_;
  DecodedBatch batch_;
  ReplayTotals totals_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_EXPORT_JOURNAL_REPLAY_H_
