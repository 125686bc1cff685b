// The aggregation series of one export and their per-series window state.
//
// An AggregationSeries is one output of a target with one combination of kept label values.
// The SeriesStore creates them on first use, within the export's cardinality limits, and
// keeps them (and the label bytes and output families their labels point at) at stable
// addresses for as long as it lives: flushed PointBatches name its series and keep the store
// alive (PointBatch::owner) after the aggregator is gone.
//
// Thread-safety: SeriesStore is thread-safe. An AggregationSeries is read-only once created,
// except its `listed` and `state`, which only the worker of its shard touches.
#ifndef RWEXPORT_LIB_AGGREGATE_SERIES_STORE_H_
#define RWEXPORT_LIB_AGGREGATE_SERIES_STORE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "lib/aggregate/native_histogram.h"
#include "lib/aggregate/trend.h"
#include "lib/common/mutex.h"
#include "lib/model/metric.h"
#include "lib/model/series.h"

namespace rwexport {

// No window: before the first sample, or nothing emitted yet.
inline constexpr int64_t kNoWindow = std::numeric_limits<int64_t>::min();

// What one series gathered in one window.
struct WindowAcc {
  int64_t window = 0;
  uint64_t n = 0;
  // Counter: the sum; gauge: the value of the latest sample; rate: the non-zero samples.
  double value = 0;
  int64_t last_ts = kNoWindow;  // gauge: the latest sample's timestamp
  std::unique_ptr<TrendAccumulator> trend;
  std::unique_ptr<NativeHistogram> histogram;  // native-histogram trends, values scaled
};

// What a trend series keeps between windows.
struct TrendState {
  // Native histograms: every sample of the windows emitted so far (cumulative).
  std::unique_ptr<NativeHistogram> histogram;
  // The accumulator of the last closed window, cleared, for the next window (saves an
  // allocation and a free per series and window).
  std::unique_ptr<TrendAccumulator> spare;
};

// The aggregation state of one series. Only its shard's worker touches it.
struct SeriesState {
  // Windows below this index were closed for this series.
  int64_t next_open = kNoWindow;
  // Last emitted window, for filling empty windows and for stale markers.
  int64_t last_emitted = kNoWindow;
  double value = 0;  // counter: the total; gauge, rate: the last value
  // Sorted by window, few entries. Most samples fall in the newest one, which spares a
  // 64-bit division for them.
  absl::InlinedVector<WindowAcc, 1> open;
  std::unique_ptr<TrendState> trend;  // trends, from their first closed window on
};

// One aggregation series: an output of a target and one combination of kept label values.
struct AggregationSeries {
  // Set when created, then read-only.
  Series labels;  // its own labels in the store's bytes, the output's family
  uint32_t target = 0;
  uint32_t output = 0;
  uint32_t shard = 0;
  MetricInfo info{};
  // A trend exported as one native-histogram series (the target's nativeHistograms).
  bool native_histogram = false;
  // Written only by the worker of `shard` (the rest is read-only, hence const pointers).
  mutable bool listed = false;  // in its shard's list (from its first sample on)
  mutable SeriesState state;
};

class SeriesStore {
 public:
  // `target_of_output[o]` is the target of output o; series are spread over `shards`. Limits
  // of 0: none.
  SeriesStore(std::vector<uint32_t> target_of_output, size_t targets, size_t shards,
              size_t max_series_per_target, size_t max_series_per_export);
  SeriesStore(const SeriesStore&) = delete;
  SeriesStore& operator=(const SeriesStore&) = delete;

  // What a new series of an output is made of.
  struct NewSeries {
    uint32_t output = 0;
    MetricInfo info{};
    bool native_histogram = false;
    // Fills the family of the output's series; called once per output, on its first series
    // (a metric's type does not change once known).
    absl::FunctionRef<void(SeriesFamily*)> fill_family;
  };
  // The series of `spec.output` with own labels `own`, created on first use (stable pointer).
  // Nullptr when creating it would pass a series limit: `why` says which, and the refusal is
  // counted for the output's target.
  const AggregationSeries* GetOrCreate(const NewSeries& spec, const OwnLabels& own,
                                       std::string* why);

  // Series per target, and new series refused per target.
  std::vector<uint64_t> series_per_target() const;
  std::vector<uint64_t> refused_per_target() const;

 private:
  // The series by (output, own labels), without a copy of the key.
  struct Key {
    uint32_t output;
    absl::string_view labels;
  };
  static Key KeyOf(const AggregationSeries* s) { return {s->output, s->labels.own_labels()}; }
  struct Hash {
    using is_transparent = void;
    size_t operator()(const Key& k) const {
      return absl::Hash<std::pair<uint32_t, absl::string_view>>()({k.output, k.labels});
    }
    size_t operator()(const AggregationSeries* s) const { return (*this)(KeyOf(s)); }
  };
  struct Eq {
    using is_transparent = void;
    static Key K(const Key& k) { return k; }
    static Key K(const AggregationSeries* s) { return KeyOf(s); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      const Key ka = K(a), kb = K(b);
      return ka.output == kb.output && ka.labels == kb.labels;
    }
  };

  // A new series, default-constructed.
  AggregationSeries* Add() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A copy of `data` that lives as long as the store.
  absl::string_view Keep(absl::string_view data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::vector<uint32_t> target_of_output_;
  const size_t shards_;
  const size_t max_series_per_target_;
  const size_t max_series_per_export_;

  mutable Mutex mu_;
  absl::flat_hash_set<AggregationSeries*, Hash, Eq> index_ ABSL_GUARDED_BY(mu_);
  // Chunks, never regrown, so addresses stay; they double from the first size up to the
  // last, so a small export stays small.
  std::vector<std::vector<AggregationSeries>> series_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<char[]>> bytes_ ABSL_GUARDED_BY(mu_);  // label bytes
  char* next_byte_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t bytes_left_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bytes_chunk_ ABSL_GUARDED_BY(mu_) = 0;  // the size of the newest chunk
  std::deque<SeriesFamily> families_ ABSL_GUARDED_BY(mu_);
  // Per output, its family once it has series (in families_).
  std::vector<const SeriesFamily*> family_of_output_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> series_per_target_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> refused_per_target_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_AGGREGATE_SERIES_STORE_H_
