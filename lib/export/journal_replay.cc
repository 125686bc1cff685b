#include "lib/export/journal_replay.h"

#include <algorithm>
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

void JournalReplayer::UseCheckpoint(const std::string& export_id, WalPosition covers,
                                    const std::map<std::string, uint64_t>& streams) {
  PerExport& per = ExportOf(export_id);
  if (per.exp == nullptr) return;
  per.checkpoint = std::make_unique<Checkpoint>();
  per.checkpoint->covers = covers;
  per.checkpoint->streams.insert(streams.begin(), streams.end());
  for (const auto& [stream, sequence] : streams) {
    if (absl::StartsWith(stream, kAckedStreamPrefix)) {
      uint64_t& highest = acked_sequences_[{export_id, stream.substr(kAckedStreamPrefix.size())}];
      highest = std::max(highest, sequence);
    }
  }
  ++totals_.checkpoints_used;
}

void JournalReplayer::UseCheckpoint(const durable::v1::AggregationCheckpoint& checkpoint) {
  std::map<std::string, uint64_t> sequences;
  std::map<std::string, IngestStreamProgress> progress;
  for (const durable::v1::StreamProgress& p : checkpoint.streams()) {
    sequences[p.stream_id()] = p.sequence();
    progress[p.stream_id()] = {p.sequence(), p.accepted(), p.rejected()};
  }
  WalPosition covers{checkpoint.covers().segment(), checkpoint.covers().offset()};
  UseCheckpoint(checkpoint.export_id(), covers, sequences);
  PerExport& per = ExportOf(checkpoint.export_id());
  if (per.exp == nullptr || per.checkpoint == nullptr) return;
  per.exp->aggregator()->RestoreStreams(progress);
  for (const durable::v1::StreamProgress& p : checkpoint.streams()) {
    if (absl::StartsWith(p.stream_id(), kAckedStreamPrefix)) {
      per.checkpoint->acked_counts[p.stream_id().substr(kAckedStreamPrefix.size())] = {
          p.accepted(), p.rejected()};
    }
  }
}

bool JournalReplayer::Checkpointed(PerExport& per, const JournalRecord& record) {
  Checkpoint* checkpoint = per.checkpoint.get();
  if (checkpoint == nullptr) return false;
  if (record.position < checkpoint->covers) return true;
  if (record.type == JournalRecordType::kCheckpoint) {
    if (record.position == checkpoint->covers) checkpoint->record_seen = true;
    return false;
  }
  auto it = checkpoint->streams.find(record.stream_id);
  return it != checkpoint->streams.end() && record.sequence <= it->second;
}

absl::Status JournalReplayer::Apply(const JournalRecord& record) {
  if (record.type == JournalRecordType::kStopped) return absl::OkStatus();
  PerExport& per = ExportOf(record.export_id);
  if (record.type == JournalRecordType::kCheckpoint) {
    if (per.exp != nullptr) Checkpointed(per, record);
    return absl::OkStatus();
  }
  if (per.exp == nullptr) {
    ++totals_.skipped_batches;
    return absl::OkStatus();
  }
  if (Checkpointed(per, record)) {
    ++totals_.checkpointed_batches;
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
  DispatchTag tag{record.stream_id, record.sequence};
  if (status.ok())
    status = ingester->Ingest(
        batch_, [&applied] { applied.set_value(); }, &tag);
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
    if (per.checkpoint != nullptr && !per.checkpoint->record_seen) {
      ++totals_.checkpoint_records_missing;
      LogWarning(
          "wal replay: a checkpoint's record is not in the log; the batches after it "
          "that the log still has were applied",
          {{"export_id", id}, {"position", WalPositionToString(per.checkpoint->covers)}});
    }
  }
  for (const auto& [key, sequence] : acked_sequences_) {
    auto it = exports_.find(key.first);
    if (it != exports_.end() && it->second.exp != nullptr && sequence > 0) {
      const auto ingester =
          streams_.find({key.first, absl::StrCat(kAckedStreamPrefix, key.second)});
      const bool counted = ingester != streams_.end() && ingester->second != nullptr;
      uint64_t accepted = counted ? ingester->second->accepted() : 0;
      uint64_t rejected = counted ? ingester->second->rejected() : 0;
      if (it->second.checkpoint != nullptr) {  // plus what the checkpoint's state holds
        auto in_state = it->second.checkpoint->acked_counts.find(key.second);
        if (in_state != it->second.checkpoint->acked_counts.end()) {
          accepted += in_state->second.first;
          rejected += in_state->second.second;
        }
      }
      it->second.exp->RestoreStreamSequence(key.second, sequence, accepted, rejected);
    }
  }
  LogInfo("wal replayed", {{"exports", absl::StrCat(totals_.exports)},
                           {"batches", absl::StrCat(totals_.batches)},
                           {"samples", absl::StrCat(totals_.samples)},
                           {"skipped_batches", absl::StrCat(totals_.skipped_batches)},
                           {"invalid_batches", absl::StrCat(totals_.invalid_batches)},
                           {"duplicate_batches", absl::StrCat(totals_.duplicate_batches)},
                           {"checkpoints_used", absl::StrCat(totals_.checkpoints_used)},
                           {"checkpointed_batches", absl::StrCat(totals_.checkpointed_batches)}});
  streams_.clear();
  registry_->EndRecoveryReplay();
  return totals_;
}

}  // namespace rwexport
