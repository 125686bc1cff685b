#include "lib/remote_write/shard.h"

#include <algorithm>
#include <string>
#include <utility>

#include "lib/common/stable_hash.h"

namespace rwexport {

size_t Shards(const TargetOptions& options) {
  return std::max<size_t>(1, std::min<size_t>(options.max_in_flight, 1024));
}

size_t SeriesShard(absl::string_view encoded_labels, size_t shards) {
  return static_cast<size_t>(StableHash64(encoded_labels) % shards);
}

std::vector<PointBatch> ShardBySeries(std::vector<SeriesPoints> series, size_t shards) {
  std::vector<PointBatch> by_shard(shards);
  for (SeriesPoints& one : series) {
    // By the series' labels: the same series in another batch may be another Series object.
    // A hash that is the same in every process, so that after a restart a series travels on
    // the shard it had before (its points in the same order among the requests).
    const size_t shard =
        shards == 1 ? 0 : SeriesShard(one.series->encoded_labels(one.name), shards);
    by_shard[shard].series.push_back(std::move(one));
  }
  return by_shard;
}

bool ShardGate::Waits(uint32_t shard, bool in_first_batch, uint64_t chain) {
  if (shard == kAllShards) {
    return !in_first_batch || (chain != 0 && !chains_seen_.insert(chain).second);
  }
  return all_busy_ || busy_[shard];
}

void ShardGate::Occupy(uint32_t shard) {
  if (shard == kAllShards) {
    all_busy_ = true;
  } else {
    busy_[shard] = true;
  }
}

void ShardGate::Dropped(uint32_t shard, uint64_t chain) {
  if (shard == kAllShards) chains_seen_.erase(chain);
}

bool ShardGate::AnyFree() const {
  return !all_busy_ && std::find(busy_.begin(), busy_.end(), false) != busy_.end();
}

}  // namespace rwexport
