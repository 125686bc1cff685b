#include "lib/durable/export_journal.h"

#include <algorithm>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/common/wire.h"

namespace rwexport {
namespace {

void AppendVarint(uint64_t v, std::string* out) {
  char bytes[10];
  out->append(bytes, PutVarint(bytes, v) - bytes);
}

bool GetVarint(absl::string_view* in, uint64_t* v) {
  const auto* p = reinterpret_cast<const uint8_t*>(in->data());
  const uint8_t* const begin = p;
  if (ReadVarint(&p, begin + in->size(), v) != VarintRead::kOk) return false;
  in->remove_prefix(p - begin);
  return true;
}

bool GetString(absl::string_view* in, absl::string_view* s) {
  uint64_t n;
  if (!GetVarint(in, &n) || n > in->size()) return false;
  *s = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

void PutString(absl::string_view s, std::string* out) {
  AppendVarint(s.size(), out);
  out->append(s.data(), s.size());
}

}  // namespace

std::string EncodeBatchRecordHead(absl::string_view export_id, absl::string_view stream_id,
                                  uint64_t sequence, size_t reserve_for_batch) {
  std::string out;
  out.reserve(1 + 10 + export_id.size() + 10 + stream_id.size() + 10 + reserve_for_batch);
  out.push_back(static_cast<char>(JournalRecordType::kBatch));
  PutString(export_id, &out);
  PutString(stream_id, &out);
  AppendVarint(sequence, &out);
  return out;
}

std::string EncodeBatchRecord(absl::string_view export_id, absl::string_view stream_id,
                              uint64_t sequence, absl::string_view batch) {
  std::string out = EncodeBatchRecordHead(export_id, stream_id, sequence, batch.size());
  out.append(batch.data(), batch.size());
  return out;
}

namespace {

std::string EncodeIdRecord(JournalRecordType type, absl::string_view export_id) {
  std::string out;
  out.push_back(static_cast<char>(type));
  PutString(export_id, &out);
  return out;
}

}  // namespace

std::string EncodeStoppedRecord(absl::string_view export_id) {
  return EncodeIdRecord(JournalRecordType::kStopped, export_id);
}

std::string EncodeCheckpointRecord(absl::string_view export_id) {
  return EncodeIdRecord(JournalRecordType::kCheckpoint, export_id);
}

absl::StatusOr<JournalRecord> DecodeJournalRecord(absl::string_view bytes) {
  if (bytes.empty()) return absl::DataLossError("journal record: empty");
  JournalRecord record;
  const uint8_t type = static_cast<uint8_t>(bytes.front());
  bytes.remove_prefix(1);
  if (!GetString(&bytes, &record.export_id) || record.export_id.empty()) {
    return absl::DataLossError("journal record: bad export id");
  }
  switch (type) {
    case static_cast<uint8_t>(JournalRecordType::kBatch):
      record.type = JournalRecordType::kBatch;
      if (!GetString(&bytes, &record.stream_id) || !GetVarint(&bytes, &record.sequence)) {
        return absl::DataLossError("journal record: bad batch header");
      }
      record.batch = bytes;
      return record;
    case static_cast<uint8_t>(JournalRecordType::kStopped):
      record.type = JournalRecordType::kStopped;
      if (!bytes.empty()) return absl::DataLossError("journal record: bytes after a stop");
      return record;
    case static_cast<uint8_t>(JournalRecordType::kCheckpoint):
      record.type = JournalRecordType::kCheckpoint;
      if (!bytes.empty()) return absl::DataLossError("journal record: bytes after a checkpoint");
      return record;
    default:
      return absl::DataLossError(absl::StrCat("journal record: unknown type ", type));
  }
}

absl::StatusOr<std::unique_ptr<ExportJournal>> ExportJournal::Open(const WalOptions& options,
                                                                   WalRecoveryReport* report,
                                                                   const ReplayCallback& replay) {
  int64_t undecodable = 0;
  absl::flat_hash_map<std::string, WalPosition> first;
  absl::flat_hash_set<std::string> stopped;
  absl::StatusOr<std::unique_ptr<Wal>> wal = Wal::Open(
      options, report, WalPosition{},
      [&](WalPosition position, absl::string_view bytes) -> absl::Status {
        absl::StatusOr<JournalRecord> record = DecodeJournalRecord(bytes);
        if (!record.ok()) {
          if (undecodable++ == 0) {
            LogWarning("wal record skipped", {{"position", WalPositionToString(position)},
                                              {"error", std::string(record.status().message())}});
          }
          return absl::OkStatus();
        }
        record->position = position;
        const std::string id(record->export_id);
        if (record->type == JournalRecordType::kStopped) {
          first.erase(id);
          stopped.insert(id);
        } else if (record->type == JournalRecordType::kBatch && !stopped.contains(id)) {
          // A checkpoint record does not move `first`: whether its checkpoint became durable
          // is for the caller to say (CheckpointCovered after loading the checkpoints).
          first.emplace(id, position);
        }
        return replay(*record);
      });
  if (!wal.ok()) return wal.status();
  std::unique_ptr<ExportJournal> journal(new ExportJournal(*std::move(wal)));
  journal->undecodable_ = undecodable;
  {
    MutexLock lock(&journal->mu_);
    journal->first_ = std::move(first);
    journal->stopped_ = std::move(stopped);
  }
  return journal;
}

void ExportJournal::Append(absl::string_view export_id, absl::string_view stream_id,
                           uint64_t sequence, absl::string_view batch, DurableCallback on_durable) {
  Append(export_id, stream_id, sequence, batch, nullptr, std::move(on_durable));
}

void ExportJournal::Append(absl::string_view export_id, absl::string_view stream_id,
                           uint64_t sequence, absl::string_view batch,
                           std::shared_ptr<const void> batch_owner, DurableCallback on_durable) {
  auto done = [this, id = std::string(export_id), on_durable = std::move(on_durable)](
                  absl::Status status, WalPosition position) {
    if (status.ok()) Track(id, position);
    on_durable(std::move(status));
  };
  if (batch_owner == nullptr) {
    wal_->Append(EncodeBatchRecord(export_id, stream_id, sequence, batch), std::move(done));
    return;
  }
  wal_->Append(EncodeBatchRecordHead(export_id, stream_id, sequence), batch, std::move(batch_owner),
               std::move(done));
}

void ExportJournal::Track(const std::string& export_id, WalPosition position) {
  MutexLock lock(&mu_);
  if (stopped_.contains(export_id)) return;
  first_.emplace(export_id, position);
}

WalPosition ExportJournal::OldestNeeded() const {
  WalPosition oldest = wal_->Figures().durable_end;
  MutexLock lock(&mu_);
  for (const auto& [id, position] : first_) oldest = std::min(oldest, position);
  return oldest;
}

namespace {

// Appends `payload` and waits until it is durable: its position, or the error.
absl::StatusOr<WalPosition> AppendAndWait(Wal* wal, std::string payload) {
  std::promise<absl::StatusOr<WalPosition>> written;
  wal->Append(std::move(payload), [&written](absl::Status status, WalPosition position) {
    if (status.ok()) {
      written.set_value(position);
    } else {
      written.set_value(std::move(status));
    }
  });
  return written.get_future().get();
}

}  // namespace

absl::Status ExportJournal::ExportStopped(const std::string& export_id) {
  absl::StatusOr<WalPosition> written = AppendAndWait(wal_.get(), EncodeStoppedRecord(export_id));
  if (!written.ok()) return written.status();
  {
    MutexLock lock(&mu_);
    first_.erase(export_id);
    stopped_.insert(export_id);
  }
  return Truncate();
}

absl::StatusOr<WalPosition> ExportJournal::MarkCheckpoint(const std::string& export_id) {
  return AppendAndWait(wal_.get(), EncodeCheckpointRecord(export_id));
}

void ExportJournal::AppendCheckpoint(const std::string& export_id,
                                     std::function<void(absl::StatusOr<WalPosition>)> on_durable) {
  wal_->Append(EncodeCheckpointRecord(export_id),
               [on_durable = std::move(on_durable)](absl::Status status, WalPosition position) {
                 if (status.ok()) {
                   on_durable(position);
                 } else {
                   on_durable(std::move(status));
                 }
               });
}

absl::Status ExportJournal::CheckpointCovered(const std::string& export_id, WalPosition position) {
  {
    MutexLock lock(&mu_);
    if (stopped_.contains(export_id)) return absl::OkStatus();
    auto [it, added] = first_.emplace(export_id, position);
    if (!added) it->second = std::max(it->second, position);
  }
  return Truncate();
}

absl::Status ExportJournal::Truncate() {
  absl::StatusOr<int> deleted = wal_->TruncateBefore(OldestNeeded());
  if (!deleted.ok()) return deleted.status();
  if (*deleted > 0) {
    MutexLock lock(&mu_);
    segments_truncated_ += *deleted;
  }
  return absl::OkStatus();
}

int64_t ExportJournal::segments_truncated() const {
  MutexLock lock(&mu_);
  return segments_truncated_;
}

}  // namespace rwexport
