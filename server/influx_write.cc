// The influx endpoint's write answers (InfluxEndpoint, server/influx_endpoint.h): once the
// batch is applied and, with a write-ahead log, durable.
#include <microhttpd.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/log.h"
#include "lib/durable/export_journal.h"
#include "lib/ingest/batch_encoder.h"
#include "lib/ingest/line_batch.h"
#include "server/influx_endpoint.h"
#include "server/influx_http.h"
#include "server/influx_request.h"

namespace rwexport {
namespace {

using influx_http::Send;
using influx_http::SendError;

// The partial-write message for a request with bad lines and/or rejected samples.
std::string PartialWrite(const LineBatchBuilder& lines, uint64_t accepted,
                         const Rejections& rejected) {
  uint64_t dropped = lines.bad_lines();
  std::string message = "partial write:";
  if (const std::optional<BadLine>& bad = lines.first_bad_line()) {
    absl::StrAppend(&message, " unable to parse '", bad->excerpt, "': ", bad->reason, " (line ",
                    bad->number, "; ", lines.bad_lines(), " of ", lines.lines(),
                    " lines not samples)");
  }
  uint64_t rejected_count = 0;
  for (const auto& [reason, r] : rejected) rejected_count += r.count;
  if (rejected_count > 0) {
    absl::StrAppend(&message, lines.bad_lines() > 0 ? ";" : "", " ", rejected_count, " of ",
                    accepted + rejected_count, " samples rejected:");
    const char* separator = " ";
    for (const auto& [reason, r] : rejected) {
      absl::StrAppend(&message, separator, reason, " ", r.count, " (e.g. ", r.example, ")");
      separator = ", ";
    }
    dropped += rejected_count;
  }
  absl::StrAppend(&message, " dropped=", dropped);
  return message;
}

}  // namespace

void InfluxEndpoint::Journal(MHD_Connection* connection, Request* request,
                             const std::string& export_id, uint64_t sequence,
                             const DecodedBatch& batch) {
  ExportJournal* journal = registry_->journal();
  if (journal == nullptr) return;
  {
    MutexLock lock(&mu_);
    ++applying_;  // until durable: a stopping endpoint waits for it
  }
  {
    MutexLock lock(&request->mu);
    request->durable = false;
  }
  std::string bytes;
  EncodeSelfDescribingBatch(batch, &bytes);
  journal->Append(export_id, kInfluxStreamId, sequence, bytes,
                  [this, connection, request](absl::Status status) {
                    if (!status.ok()) {
                      LogWarning("influx write: the batch cannot be written to the wal",
                                 {{"error", std::string(status.message())}});
                    }
                    bool resume;
                    {
                      MutexLock lock(&request->mu);
                      request->durable = true;
                      if (!status.ok()) {
                        request->wal_status = absl::IsResourceExhausted(status)
                                                  ? 507  // Insufficient Storage
                                                  : MHD_HTTP_SERVICE_UNAVAILABLE;
                        request->wal_message =
                            absl::StrCat("the write cannot be made durable: ", status.message());
                      }
                      resume = request->suspended && request->applied;
                    }
                    if (resume) MHD_resume_connection(connection);
                    EndApplying();
                  });
}

std::function<void()> InfluxEndpoint::Applied(MHD_Connection* connection, Request* request,
                                              std::shared_ptr<Db> db) {
  return [this, request, connection, db] {
    --db->writing;
    bool resume;
    {
      MutexLock lock(&request->mu);
      request->applied = true;
      resume = request->suspended && request->durable;
    }
    // Not under request->mu: once resumed, the request may be answered and freed at once.
    if (resume) MHD_resume_connection(connection);
    EndApplying();
  };
}

int InfluxEndpoint::Answer(MHD_Connection* connection, Request* request,
                           const LineBatchBuilder& lines, Handed handed) {
  // What this write added to the ingester's counts (it is ours alone until returned).
  const uint64_t accepted = handed.ingester->accepted() - handed.accepted_before;
  Rejections rejected;
  for (const auto& [reason, r] : handed.ingester->rejections()) {
    auto before = handed.rejected_before.find(reason);
    const uint64_t earlier = before == handed.rejected_before.end() ? 0 : before->second.count;
    if (r.count > earlier) rejected[reason] = RejectionCount{r.count - earlier, r.example};
  }
  Db& db = *handed.db;
  if (!lines.rejections().empty()) db.exp->aggregator()->CountRejections(lines.rejections());
  {
    MutexLock lock(&db.mu);
    db.idle.push_back(std::move(handed.ingester));
  }
  pending_bytes_ -= request->held;
  request->held = 0;
  std::string().swap(request->body);

  MutexLock lock(&request->mu);
  if (lines.bad_lines() == 0 && rejected.empty()) {
    request->status = MHD_HTTP_NO_CONTENT;
  } else {
    request->status = MHD_HTTP_BAD_REQUEST;
    request->message = PartialWrite(lines, accepted, rejected);
  }
  if (request->applied && request->durable) {
    request->answered = true;
    if (request->wal_status != 0) {
      return SendError(connection, request->wal_status, request->wal_message);
    }
    if (request->status == MHD_HTTP_NO_CONTENT) return Send(connection, request->status, "");
    return SendError(connection, request->status, request->message);
  }
  request->suspended = true;
  MHD_suspend_connection(connection);
  return MHD_YES;
}

}  // namespace rwexport
