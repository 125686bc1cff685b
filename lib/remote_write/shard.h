// A target's series sharded over its in-flight requests (Prometheus's queue manager does the
// same): a series always goes to shard hash(series) % shards (a fixed hash of its labels, the
// same after a restart), and a shard has one request in flight at a time, in order, so its
// points arrive in order while the shards travel in parallel. Used by the sender thread only.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_SHARD_H_
#define RWEXPORT_LIB_REMOTE_WRITE_SHARD_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "lib/model/series.h"
#include "lib/remote_write/target_options.h"

namespace rwexport {

// A request read from the spool holds any series: it conflicts with every shard.
inline constexpr uint32_t kAllShards = std::numeric_limits<uint32_t>::max();

// A target's shards: its in-flight limit.
size_t Shards(const TargetOptions& options);

// The shard of a series with these encoded labels (Series::encoded_labels): a fixed hash,
// the same in every process, modulo `shards`.
size_t SeriesShard(absl::string_view encoded_labels, size_t shards);

// `series` split into `shards` batches by the series' labels, each in its original order.
std::vector<PointBatch> ShardBySeries(std::vector<SeriesPoints> series, size_t shards);

// One pass over a target's requests, in batch order: which of them must wait.
class ShardGate {
 public:
  explicit ShardGate(size_t shards) : busy_(shards, false) {}

  // Whether a request waits: while an earlier request of its shard has not ended; a request
  // read from the spool (kAllShards) waits for every earlier batch (`in_first_batch` false),
  // and every later batch waits for it; within a spooled batch, a piece of a long series
  // (`chain` non-zero) waits for the piece before it (this notes `chain` as seen).
  bool Waits(uint32_t shard, bool in_first_batch, uint64_t chain);
  // A request of `shard` is in flight, waits or waits to retry: later ones of it wait.
  void Occupy(uint32_t shard);
  // A request of `shard` and `chain` was dropped: the next piece of its chain may go.
  void Dropped(uint32_t shard, uint64_t chain);
  // Whether a request of a new batch could go: no spooled request holds every shard, and some
  // shard is free.
  bool AnyFree() const;

 private:
  std::vector<bool> busy_;
  bool all_busy_ = false;
  absl::flat_hash_set<uint64_t> chains_seen_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_SHARD_H_
