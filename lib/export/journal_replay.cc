#include "lib/export/journal_replay.h"

#include <future>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/durable/wal_ingest_journal.h"

namespace rwexport {

JournalReplayer::PerExport& JournalReplayer::ExportOf(absl::string_view export_id) {
  auto it = exports_.find(export_id);
  if (it != exports_.end()) return it->second;
  PerExport& added = exports_[std::string(export_id)];
  added.exp = registry_->Find(std::string(export_id));
  return added;
}

absl::Status JournalReplayer::Apply(const JournalRecord& record) {
  if (record.type != JournalRecordType::kBatch) return absl::OkStatus();
  PerExport& per = ExportOf(record.export_id);
  if (per.exp == nullptr) {
    ++totals_.skipped_batches;
    return absl::OkStatus();
  }
  uint64_t* highest = nullptr;  // an acknowledged stream's highest sequence applied
  if (absl::StartsWith(record.stream_id, kAckedStreamPrefix)) {
    highest = &acked_sequences_[{std::string(record.export_id),
                                 std::string(record.stream_id.substr(kAckedStreamPrefix.size()))}];
    if (record.sequence <= *highest) {
      ++totals_.duplicate_batches;
      return absl::OkStatus();
    }
  }
  std::unique_ptr<StreamIngester>& ingester =
      streams_[{std::string(record.export_id), std::string(record.stream_id)}];
  if (ingester == nullptr) ingester = std::make_unique<StreamIngester>(per.exp->aggregator());
  const uint64_t before = ingester->accepted() + ingester->rejected();
  absl::Status status = DecodeSampleBatch(record.batch, &batch_);
  std::promise<void> applied;
  if (status.ok()) status = ingester->Ingest(batch_, [&applied] { applied.set_value(); });
  if (!status.ok()) {
    // Accepted once, so this is another version's or a damaged batch: counted, logged once.
    if (totals_.invalid_batches++ == 0) {
      LogWarning(
          "wal replay: a batch cannot be applied",
          {{"export_id", std::string(record.export_id)}, {"error", std::string(status.message())}});
    }
    return absl::OkStatus();
  }
  applied.get_future().wait();
  if (highest != nullptr) *highest = record.sequence;
  if (per.batches == 0) ++totals_.exports;
  ++per.batches;
  ++totals_.batches;
  const uint64_t samples = ingester->accepted() + ingester->rejected() - before;
  per.samples += samples;
  totals_.samples += samples;
  return absl::OkStatus();
}

ReplayTotals JournalReplayer::Finish() {
  for (auto& [id, per] : exports_) {
    if (per.exp != nullptr) per.exp->AddReplayed(per.batches, per.samples);
  }
  for (const auto& [key, sequence] : acked_sequences_) {
    auto it = exports_.find(key.first);
    if (it != exports_.end() && it->second.exp != nullptr && sequence > 0) {
      it->second.exp->RestoreStreamSequence(key.second, sequence);
    }
  }
  LogInfo("wal replayed", {{"exports", absl::StrCat(totals_.exports)},
                           {"batches", absl::StrCat(totals_.batches)},
                           {"samples", absl::StrCat(totals_.samples)},
                           {"skipped_batches", absl::StrCat(totals_.skipped_batches)},
                           {"invalid_batches", absl::StrCat(totals_.invalid_batches)},
                           {"duplicate_batches", absl::StrCat(totals_.duplicate_batches)}});
  streams_.clear();
  registry_->EndRecoveryReplay();
  return totals_;
}

}  // namespace rwexport
