// What the sender thread keeps of a target's delivery: its batches being delivered and their
// requests. Owned and used by the sender thread only (no locking).
#ifndef RWEXPORT_LIB_REMOTE_WRITE_DELIVERY_H_
#define RWEXPORT_LIB_REMOTE_WRITE_DELIVERY_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/model/series.h"
#include "lib/remote_write/curl_transport.h"
#include "lib/remote_write/drop_reason.h"
#include "lib/remote_write/request_plan.h"
#include "lib/remote_write/spool.h"
#include "lib/remote_write/spool_index.h"
#include "lib/remote_write/target_queue.h"

namespace rwexport {

struct TargetState;

// A batch being delivered (several can be at once). Owned by its requests.
struct ActiveBatch {
  uint64_t sequence = 0;
  BatchKind kind = BatchKind::kNormal;
  // Read back from the spool, or a durable queue's batch with its file: the file goes once
  // every request of it has ended.
  bool from_spool = false;
  // A durable queue's batch without a file (TargetQueue::NotDurableFinished once it ends).
  bool not_durable = false;
  // Keeps the batch's series alive (PointBatch::owner).
  std::shared_ptr<const void> owner;
  // Its requests not ended yet.
  size_t requests = 0;
};

// One HTTP request of a batch being delivered.
struct DeliveryRequest {
  TargetState* owner = nullptr;
  std::shared_ptr<ActiveBatch> batch;
  // Its series' shard (hash(series) % shards), or kAllShards (shard.h).
  uint32_t shard = 0;
  std::list<std::unique_ptr<DeliveryRequest>>::iterator self;
  // Kept until the request ends, for a 413 split; empty for a request read from the spool.
  std::vector<SeriesPoints> content;
  bool encoded = false;
  std::string body;  // snappy(WriteRequest)
  uint64_t points = 0;
  int64_t min_timestamp_ms = std::numeric_limits<int64_t>::max();
  int64_t max_timestamp_ms = std::numeric_limits<int64_t>::min();
  // Non-zero for the pieces of one series too long for a single request: a piece starts only
  // after the previous piece (the request before it) has finished.
  uint64_t chain = 0;
  // A half of a request answered 413.
  bool split = false;
  int attempts = 0;
  absl::Time not_before = absl::InfinitePast();
  EasyPtr easy;  // while in flight
  Transfer transfer;
};

using DeliveryRequests = std::list<std::unique_ptr<DeliveryRequest>>;

// A target as the sender thread sees it.
struct TargetState {
  explicit TargetState(std::shared_ptr<TargetQueue> queue)
      : target(std::move(queue)), pool(target->options) {}

  const std::shared_ptr<TargetQueue> target;
  EasyPool pool;
  // The unfinished requests of the batches being delivered, in batch order.
  DeliveryRequests requests;
  size_t active_batches = 0;
  size_t in_flight = 0;
  bool failing = false;
  // A recovery re-send was answered "already stored" (logged once per target).
  bool logged_already_stored = false;
};

// Adds `piece` of `batch` as a request of `state` before `before`.
DeliveryRequest* AddRequest(TargetState& state, DeliveryRequests::iterator before, Piece piece,
                            std::shared_ptr<ActiveBatch> batch, uint32_t shard);

// A spool file's header for `target`'s batches (no points, times or requests yet).
SpoolFileHeader SpoolHeaderOf(const TargetQueue& target);

// `batch` has no request left: its spool file, if any, goes. `spool` is null without a spool.
void FinishBatch(TargetState& state, ActiveBatch& batch, SpoolIndex* spool);

// Erases an ended request; the last of its batch finishes the batch.
void EraseRequest(TargetState& state, DeliveryRequest& request, SpoolIndex* spool);

// The part of abandoning a target for the requests of the batches being delivered: each batch
// written to its own spool file, held by `keeper`, when `to_spool` (`spool` is then not null),
// else dropped with `reason`; counted into `*dropped` and `*spooled`.
void AbandonActive(TargetState& state, DropReason reason, SpoolIndex* spool, bool to_spool,
                   SpoolIndex::Owner keeper, std::map<DropReason, uint64_t>* dropped,
                   uint64_t* spooled);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_DELIVERY_H_
