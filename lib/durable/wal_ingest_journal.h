// The write-ahead log behind acknowledged ingest (IngestSamples): an IngestJournal whose
// records go to the export journal (export_journal.h), so a batch is acknowledged only once
// it is in <data_dir>/wal. The stream ids of acknowledged streams are stored with the prefix
// kAckedStreamPrefix, which no StreamSamples stream id (digits) starts with: recovery tells
// them apart, applies each (export, stream, sequence) once and restores each acknowledged
// stream's highest sequence (lib/export/journal_replay.h).
//
// Thread-safe (as ExportJournal).
#ifndef RWEXPORT_LIB_DURABLE_WAL_INGEST_JOURNAL_H_
#define RWEXPORT_LIB_DURABLE_WAL_INGEST_JOURNAL_H_

#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lib/durable/export_journal.h"
#include "lib/ingest/ingest_journal.h"

namespace rwexport {

inline constexpr absl::string_view kAckedStreamPrefix = "a:";

class WalIngestJournal final : public IngestJournal {
 public:
  // `journal` must outlive this.
  explicit WalIngestJournal(ExportJournal* journal) : journal_(journal) {}

  void Append(const IngestRecord& record, std::function<void(absl::Status)> on_durable) override {
    journal_->Append(record.export_id, absl::StrCat(kAckedStreamPrefix, record.stream_id),
                     record.sequence, record.batch, record.batch_owner, std::move(on_durable));
  }

 private:
  ExportJournal* const journal_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_DURABLE_WAL_INGEST_JOURNAL_H_
