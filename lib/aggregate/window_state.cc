#include "lib/aggregate/window_state.h"

#include <algorithm>
#include <cstdint>

#include "lib/aggregate/native_histogram.h"
#include "lib/aggregate/trend.h"
#include "lib/model/trend_stat.h"

namespace rwexport {
namespace {

double Scale(ValueKind kind) { return kind == ValueKind::kTime ? 1e-3 : 1.0; }

// The open window of `state` that a sample at `ts_ns` goes in, created as needed; counts a
// late sample in `late`.
WindowAcc* WindowFor(SeriesState& state, int64_t ts_ns, int64_t window_ns, uint64_t* late) {
  // Most samples fall in the series' newest open window (windows in `open` are never below
  // next_open, so such a sample is not late).
  if (!state.open.empty()) {
    WindowAcc& newest = state.open.back();
    const int64_t start = newest.window * window_ns;
    if (ts_ns >= start && ts_ns - start < window_ns) return &newest;
  }
  int64_t w = FloorDiv(ts_ns, window_ns);
  if (w < state.next_open) {
    w = state.next_open;
    ++*late;
  }
  auto it = std::lower_bound(state.open.begin(), state.open.end(), w,
                             [](const WindowAcc& a, int64_t window) { return a.window < window; });
  if (it == state.open.end() || it->window != w) {
    it = state.open.insert(it, WindowAcc{});
    it->window = w;
  }
  return &*it;
}

// Appends one empty SeriesPoints per exported series of `series` to `out`; returns the index
// of the first.
size_t AddExported(const Series& series, std::vector<SeriesPoints>* out) {
  const size_t first = out->size();
  for (size_t i = 0; i < series.name_count(); ++i) {
    SeriesPoints& sp = out->emplace_back();
    sp.series = &series;
    sp.name = static_cast<uint32_t>(i);
  }
  return first;
}

// Appends the points of window `w` of one series to `out` (one SeriesPoints per exported
// series, created on first use). A native-histogram trend takes the window's histogram out of
// `acc` (into its cumulative one).
void EmitWindow(SeriesState& state, const TargetConfig& target, const Series& series,
                MetricInfo info, bool native_histogram, int64_t window_ms, int64_t w,
                WindowAcc* acc, std::vector<SeriesPoints>* out, size_t* first_index) {
  const int64_t ts_ms = (w + 1) * window_ms;
  const double scale = Scale(info.kind);
  auto series_for = [&](size_t i) -> SeriesPoints& {
    if (*first_index == SIZE_MAX) *first_index = AddExported(series, out);
    return (*out)[*first_index + i];
  };
  auto point_for = [&](size_t i) -> SeriesPoints::Points& { return series_for(i).points; };
  switch (info.type) {
    case MetricType::kCounter:
      if (acc) state.value += acc->value * scale;
      point_for(0).push_back({ts_ms, state.value});
      break;
    case MetricType::kGauge:
      if (acc) state.value = acc->value * scale;
      point_for(0).push_back({ts_ms, state.value});
      break;
    case MetricType::kRate:
      if (acc) state.value = acc->value / static_cast<double>(acc->n);
      point_for(0).push_back({ts_ms, state.value});
      break;
    case MetricType::kTrend:
      if (native_histogram) {
        // Cumulative: the point of window w counts every sample of the windows up to w.
        if (acc && acc->histogram) {
          if (!state.trend) state.trend = std::make_unique<TrendState>();
          if (!state.trend->histogram) {
            state.trend->histogram = std::move(acc->histogram);
          } else {
            state.trend->histogram->Merge(*acc->histogram);
          }
        }
        if (!state.trend || !state.trend->histogram) return;
        series_for(0).histograms.push_back(state.trend->histogram->ToPoint(ts_ms));
        break;
      }
      if (!acc || !acc->trend || acc->trend->count() == 0) return;
      for (size_t i = 0; i < target.trend_stats.size(); ++i) {
        const TrendStat& stat = target.trend_stats[i];
        const double v = stat.Compute(*acc->trend);
        point_for(i).push_back({ts_ms, stat.kind() == TrendStat::Kind::kCount ? v : v * scale});
      }
      break;
  }
}

// CloseWindows for one series.
uint64_t CloseSeriesWindows(const AggregationSeries& info, const TargetConfig& target,
                            int64_t window_ms, const FlushWindows& flush,
                            std::vector<SeriesPoints>* out) {
  SeriesState& state = info.state;
  const int64_t cutoff = flush.cutoffs[info.target];
  // Native histograms are cumulative, so they repeat like counters.
  const bool repeats = info.info.type != MetricType::kTrend || info.native_histogram;
  size_t first_index = SIZE_MAX;
  // The series' newest point so far. Earlier flushes closed the windows below next_open: a
  // repeating series got a point for each of them up to kMaxRepeatWindows after its last sample.
  int64_t last_point = state.last_sample;
  if (repeats && last_point != kNoWindow) {
    last_point = std::min(state.next_open - 1, state.last_sample + kMaxRepeatWindows);
  }
  auto fill_until = [&](int64_t end) {  // empty windows (last_point, end), within the limit
    if (!repeats || state.last_sample == kNoWindow) return;
    const int64_t stop = std::min(end, state.last_sample + kMaxRepeatWindows + 1);
    for (int64_t w = last_point + 1; w < stop; ++w) {
      EmitWindow(state, target, info.labels, info.info, info.native_histogram, window_ms, w,
                 nullptr, out, &first_index);
      last_point = w;
    }
  };
  uint64_t closed = 0;
  for (WindowAcc& acc : state.open) {
    if (acc.window >= cutoff) break;
    fill_until(acc.window);
    EmitWindow(state, target, info.labels, info.info, info.native_histogram, window_ms, acc.window,
               &acc, out, &first_index);
    state.last_sample = last_point = acc.window;
    if (acc.trend != nullptr) {
      acc.trend->Clear();
      if (!state.trend) state.trend = std::make_unique<TrendState>();
      state.trend->spare = std::move(acc.trend);
    }
    ++closed;
  }
  if (closed > 0) state.open.erase(state.open.begin(), state.open.begin() + closed);
  if (cutoff != kCloseAll) {
    fill_until(cutoff);
    state.next_open = std::max(state.next_open, cutoff);
  } else if (!flush.end_windows.empty()) {
    fill_until(flush.end_windows[info.target] + 1);
  }
  if (flush.final && target.stale_markers && last_point != kNoWindow) {
    const int64_t stale_ts = (last_point + 1) * window_ms + 1;
    if (first_index == SIZE_MAX) first_index = AddExported(info.labels, out);
    for (size_t i = 0; i < info.labels.name_count(); ++i) {
      // A histogram series gets Prometheus's histogram stale marker: a float one would be
      // appended before the series' last histogram of the same request.
      if (info.native_histogram) {
        (*out)[first_index + i].histograms.push_back(StaleHistogramPoint(stale_ts));
      } else {
        (*out)[first_index + i].points.push_back({stale_ts, StaleNaN()});
      }
    }
  }
  return closed;
}

}  // namespace

void Items::Grow() {
  capacity_ = 2 * capacity_ + 16;
  std::unique_ptr<Item[]> grown(new Item[capacity_]);
  std::copy(begin(), end(), grown.get());
  data_ = std::move(grown);
}

uint64_t AccumulateItems(const Items& items, absl::Span<const int64_t> window_ns, Shard* shard) {
  // With many series each step below is a cache miss, and each depends on the one before:
  // the series (its state), its open windows (on the heap once a series had two at a time),
  // the newest window's trend accumulator, the accumulator's values. So they are fetched in
  // stages while earlier items are applied, each stage reading what the one before fetched
  // (kStage items earlier).
  constexpr size_t kStage = 4;
  uint64_t late = 0;
  const Item* const begin = items.begin();
  const size_t n = static_cast<size_t>(items.end() - begin);
  // The newest open window of `s`, if any.
  auto newest = [](const AggregationSeries* s) -> const WindowAcc* {
    const SeriesState& st = s->state;
    return st.open.empty() ? nullptr : &st.open.back();
  };
  for (size_t i = 0; i < n; ++i) {
    if (i + 4 * kStage < n) {
      const AggregationSeries* ahead = begin[i + 4 * kStage].series;
      __builtin_prefetch(ahead);
      __builtin_prefetch(&ahead->state);
      __builtin_prefetch(&ahead->state.trend);
    }
    if (i + 3 * kStage < n) {
      if (const WindowAcc* acc = newest(begin[i + 3 * kStage].series)) __builtin_prefetch(acc);
    }
    if (i + 2 * kStage < n) {
      const WindowAcc* acc = newest(begin[i + 2 * kStage].series);
      if (acc != nullptr && acc->trend != nullptr) __builtin_prefetch(acc->trend.get());
    }
    if (i + kStage < n) {
      const WindowAcc* acc = newest(begin[i + kStage].series);
      if (acc != nullptr && acc->trend != nullptr) acc->trend->Prefetch();
    }
    const Item& item = begin[i];
    const AggregationSeries* info = item.series;
    SeriesState& state = info->state;
    if (!info->listed) {
      info->listed = true;
      // Only this shard's worker writes a series' mutable part.
      shard->series.push_back(const_cast<AggregationSeries*>(info));
      shard->exported_per_target[info->target] += info->labels.name_count();
    }
    WindowAcc* acc = WindowFor(state, item.ts_ns, window_ns[info->target], &late);
    ++acc->n;
    switch (info->info.type) {
      case MetricType::kCounter:
        acc->value += item.value;
        break;
      case MetricType::kGauge:
        if (item.ts_ns >= acc->last_ts) {
          acc->last_ts = item.ts_ns;
          acc->value = item.value;
        }
        break;
      case MetricType::kRate:
        acc->value += item.value != 0 ? 1.0 : 0.0;
        break;
      case MetricType::kTrend:
        if (info->native_histogram) {
          // Bucketed in the exported unit (seconds for time trends).
          if (!acc->histogram) acc->histogram = std::make_unique<NativeHistogram>();
          acc->histogram->Add(item.value * Scale(info->info.kind));
          break;
        }
        if (!acc->trend) {
          acc->trend = state.trend != nullptr && state.trend->spare != nullptr
                           ? std::move(state.trend->spare)
                           : std::make_unique<TrendAccumulator>();
        }
        acc->trend->Add(item.value);
        break;
    }
  }
  return late;
}

uint64_t CloseWindows(const Shard& shard, const std::vector<TargetConfig>& targets,
                      absl::Span<const int64_t> window_ns, const FlushWindows& flush,
                      std::vector<std::vector<SeriesPoints>>* parts) {
  parts->resize(targets.size());
  for (size_t t = 0; t < parts->size(); ++t) (*parts)[t].reserve(shard.exported_per_target[t]);
  uint64_t windows = 0;
  for (const AggregationSeries* info : shard.series) {
    windows += CloseSeriesWindows(*info, targets[info->target], window_ns[info->target] / 1000000,
                                  flush, &(*parts)[info->target]);
  }
  return windows;
}

}  // namespace rwexport
