// The window state of one shard's series: accumulating samples into their windows, and
// closing windows into points.
//
// Windows are aligned to each target's resample rate on the samples' own timestamps. A sample
// for a window its series already closed is counted in the series' next open window (it is
// "late"). Closing a window emits its points (see aggregator.h for what each metric type
// exports), fills empty windows of repeating series, and on the final flush appends stale
// markers where the target asks for them.
//
// Which windows of a series have a point depends only on its windows with samples and on how
// far windows closed, never on when flushes ran: every window with samples has one; a
// repeating series (counter, gauge, rate, native histogram) also has one for each closed
// window without samples that is at most kMaxRepeatWindows after its last window with samples
// (a longer silence leaves a gap until the next sample).
//
// Thread-safety: a Shard and its series' state are only touched by the shard's worker.
#ifndef RWEXPORT_LIB_AGGREGATE_WINDOW_STATE_H_
#define RWEXPORT_LIB_AGGREGATE_WINDOW_STATE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/types/span.h"
#include "lib/aggregate/series_store.h"
#include "lib/config/config.h"
#include "lib/model/series.h"

namespace rwexport {

// A cutoff that closes every window.
inline constexpr int64_t kCloseAll = std::numeric_limits<int64_t>::max();

// A repeating series' last value is repeated for at most this many windows after its last
// window with samples.
inline constexpr int64_t kMaxRepeatWindows = 60;

// One sample for one aggregation series.
struct Item {
  const AggregationSeries* series;
  int64_t ts_ns;
  double value;
};

// One shard's items of a batch. A vector would do, but its push_back is not inlined in the
// routing loops (the largest cost of routing, measured); here only growth is out of line.
class Items {
 public:
  explicit Items(size_t capacity) : data_(new Item[capacity]), capacity_(capacity) {}
  Items(Items&&) = default;
  // Copyable because the tasks that carry them are std::functions; they are only moved.
  Items(const Items& other) : Items(other.size_) {
    std::copy(other.begin(), other.end(), data_.get());
    size_ = other.size_;
  }

  void push_back(const Item& item) {
    if (size_ == capacity_) Grow();
    data_[size_++] = item;
  }
  bool empty() const { return size_ == 0; }
  const Item* begin() const { return data_.get(); }
  const Item* end() const { return data_.get() + size_; }

 private:
  ABSL_ATTRIBUTE_NOINLINE void Grow();

  std::unique_ptr<Item[]> data_;  // default-initialised: nothing is written twice
  size_t size_ = 0;
  size_t capacity_;
};

// The series of one shard.
struct Shard {
  // The series with samples, in order of their first sample.
  std::vector<AggregationSeries*> series;
  // Their exported series, per target (to size a flush's output).
  std::vector<size_t> exported_per_target;
  // Late samples applied by this shard (Aggregator's checkpoint figures; its worker only).
  uint64_t late = 0;
};

// Floor division (rounds towards negative infinity).
inline int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Adds `items` (of series of `shard`) to their series' windows; `window_ns` per target.
// Returns how many were late.
uint64_t AccumulateItems(const Items& items, absl::Span<const int64_t> window_ns, Shard* shard);

// What one flush closes.
struct FlushWindows {
  // Per target: windows below this index close (kCloseAll: every one).
  std::vector<int64_t> cutoffs;
  // The final flush: adds stale markers.
  bool final = false;
  // Final flush: per target, the export's last window (see Aggregator::Stop). Repeating series
  // are filled through it, so the points an export leaves do not depend on when ticks ran.
  std::vector<int64_t> end_windows;
};

// Closes the windows of `shard`'s series that `flush` closes, appending their points to
// `parts` (per target; one SeriesPoints per exported series with points). Returns the number
// of windows with samples closed.
uint64_t CloseWindows(const Shard& shard, const std::vector<TargetConfig>& targets,
                      absl::Span<const int64_t> window_ns, const FlushWindows& flush,
                      std::vector<std::vector<SeriesPoints>>* parts);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_WINDOW_STATE_H_
