#include "lib/remote_write/delivery.h"

#include <unistd.h>

#include <algorithm>

#include "absl/status/statusor.h"

namespace rwexport {

DeliveryRequest* AddRequest(TargetState& state, DeliveryRequests::iterator before, Piece piece,
                            std::shared_ptr<ActiveBatch> batch, uint32_t shard) {
  auto request = std::make_unique<DeliveryRequest>();
  request->owner = &state;
  ++batch->requests;
  request->batch = std::move(batch);
  request->shard = shard;
  request->content = std::move(piece.content);
  request->points = piece.points;
  request->chain = piece.chain;
  request->min_timestamp_ms = piece.min_timestamp_ms;
  request->max_timestamp_ms = piece.max_timestamp_ms;
  DeliveryRequest* raw = request.get();
  raw->self = state.requests.insert(before, std::move(request));
  return raw;
}

namespace {

// The requests [begin, end) (encoded when they are not yet; their bodies are moved out) as a
// spool file's requests, and their time range into `*header`.
absl::Status EncodeForSpool(DeliveryRequests::iterator begin, DeliveryRequests::iterator end,
                            SpoolFileHeader* header, std::vector<SpooledRequest>* requests) {
  header->first_timestamp_ms = std::numeric_limits<int64_t>::max();
  header->last_timestamp_ms = std::numeric_limits<int64_t>::min();
  for (auto r = begin; r != end; ++r) {
    DeliveryRequest& request = **r;
    if (!request.encoded) {
      absl::StatusOr<std::string> body = EncodeBody(request.content);
      if (!body.ok()) return body.status();
      request.body = *std::move(body);
    }
    requests->push_back(
        {request.points, request.chain, request.max_timestamp_ms, std::move(request.body)});
    header->first_timestamp_ms = std::min(header->first_timestamp_ms, request.min_timestamp_ms);
    header->last_timestamp_ms = std::max(header->last_timestamp_ms, request.max_timestamp_ms);
  }
  return absl::OkStatus();
}

}  // namespace

SpoolFileHeader SpoolHeaderOf(const TargetQueue& target) {
  SpoolFileHeader header;
  header.key = target.spool_key;
  header.display_url = target.display_url;
  return header;
}

void FinishBatch(TargetState& state, ActiveBatch& batch, SpoolIndex* spool) {
  if (batch.from_spool) spool->Unlink(state.target->spool_key, batch.sequence);
  batch.from_spool = false;
  if (batch.not_durable) state.target->NotDurableFinished();
  batch.not_durable = false;
  batch.owner.reset();
  --state.active_batches;
}

void EraseRequest(TargetState& state, DeliveryRequest& request, SpoolIndex* spool) {
  std::shared_ptr<ActiveBatch> batch = std::move(request.batch);
  state.requests.erase(request.self);
  if (--batch->requests == 0) FinishBatch(state, *batch, spool);
}

void AbandonActive(TargetState& state, DropReason reason, SpoolIndex* spool, bool to_spool,
                   SpoolIndex::Owner keeper, std::map<DropReason, uint64_t>* dropped,
                   uint64_t* spooled) {
  // The rest of the batches being delivered (requests in flight included: they may have
  // arrived, and are then sent again, as a retry would), each to its own spool file.
  for (auto it = state.requests.begin(); it != state.requests.end();) {
    const std::shared_ptr<ActiveBatch> batch = (*it)->batch;
    auto end = it;
    uint64_t active = 0;
    while (end != state.requests.end() && (*end)->batch == batch) active += (*end++)->points;
    if (to_spool) {
      std::vector<SpooledRequest> requests;
      SpoolFileHeader header = SpoolHeaderOf(*state.target);
      absl::Status status = EncodeForSpool(it, end, &header, &requests);
      if (status.ok()) {
        status = spool->Write(std::move(header), batch->sequence, requests, keeper);
      }
      if (status.ok()) {
        *spooled += active;
        batch->from_spool = false;  // the file now holds the rest: keep it
      } else {
        (*dropped)[absl::IsResourceExhausted(status) ? DropReason::kSpoolFull : reason] += active;
      }
    } else {
      (*dropped)[reason] += active;
    }
    state.requests.erase(it, end);
    FinishBatch(state, *batch, spool);
    it = end;
  }
}

}  // namespace rwexport
