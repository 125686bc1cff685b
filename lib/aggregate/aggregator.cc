#include "lib/aggregate/aggregator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/aggregate/native_histogram.h"
#include "lib/aggregate/trend.h"
#include "lib/aggregate/trend_stat.h"

namespace rwexport {
namespace {

constexpr int64_t kNoWindow = std::numeric_limits<int64_t>::min();
constexpr int64_t kCloseAll = std::numeric_limits<int64_t>::max();
// At most this many empty windows are filled with repeated values in one go; a longer silence
// (or a jump of the clock) leaves a gap rather than a burst of points.
constexpr int64_t kMaxFillWindows = 60;
// A stream's cache of raw (metric, tags) combinations is cleared past this size, so a tag with
// unbounded values (a URL with ids) cannot grow it without end.
constexpr size_t kMaxCachedKeys = 200000;
// Metrics of a tag set found by scanning (StreamIngester::ResolveInTagset); more get an index.
constexpr size_t kMaxTagsetScan = 16;
constexpr char kTestRunIdLabel[] = "test_run_id";

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

double Scale(ValueKind kind) { return kind == ValueKind::kTime ? 1e-3 : 1.0; }

std::string MetricSuffix(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "_total";
    case MetricType::kRate:
      return "_rate";
    case MetricType::kGauge:
    case MetricType::kTrend:
      return "";
  }
  return "";
}

// Records why a sample cannot be used (StreamIngester::IngestBatch's `usable`), as the first
// reason that applies: invalid_value, invalid_timestamp, too_new, too_old. Out of line: the
// hot loop only compares.
ABSL_ATTRIBUTE_NOINLINE void RejectUnusable(int64_t ts, double value, int64_t highest,
                                            absl::string_view metric, Rejections* rejections) {
  const char* reason = !std::isfinite(value) ? "invalid_value"
                       : ts <= 0             ? "invalid_timestamp"
                       : ts > highest        ? "too_new"
                                             : "too_old";
  AddRejection(rejections, reason, std::string(metric));
}

absl::string_view FindTag(absl::Span<const RawTag> tags, absl::string_view key) {
  for (const auto& [tag, value] : tags) {
    if (tag == key) return value;
  }
  return {};
}

}  // namespace

void AddRejection(Rejections* rejections, const std::string& reason, const std::string& example,
                  uint64_t count) {
  RejectionCount& r = (*rejections)[reason];
  if (r.count == 0) r.example = example;
  r.count += count;
}

void MergeRejections(Rejections* into, const Rejections& from) {
  for (const auto& [reason, r] : from) AddRejection(into, reason, r.example, r.count);
}

namespace {

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

}  // namespace

// One aggregation series: an output of a target and one combination of kept label values.
struct Aggregator::SeriesInfo {
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

// Every aggregation series of the export and what their labels point at: label bytes and
// output families. Append-only, so addresses stay valid as long as the store; lives on after
// the aggregator while flushed batches name its series. Not thread-safe (the aggregator holds
// series_mu_; afterwards it is only read).
struct Aggregator::SeriesStore {
  // The series by (output, own labels), without a copy of the key.
  struct Key {
    uint32_t output;
    absl::string_view labels;
  };
  static Key KeyOf(const SeriesInfo* s) { return {s->output, s->labels.own_labels()}; }
  struct Hash {
    using is_transparent = void;
    size_t operator()(const Key& k) const {
      return absl::Hash<std::pair<uint32_t, absl::string_view>>()({k.output, k.labels});
    }
    size_t operator()(const SeriesInfo* s) const { return (*this)(KeyOf(s)); }
  };
  struct Eq {
    using is_transparent = void;
    static Key K(const Key& k) { return k; }
    static Key K(const SeriesInfo* s) { return KeyOf(s); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      const Key ka = K(a), kb = K(b);
      return ka.output == kb.output && ka.labels == kb.labels;
    }
  };

  // Chunks double from the first size up to the last, so a small export stays small.
  static constexpr size_t kFirstSeriesChunk = 32;
  static constexpr size_t kMaxSeriesChunk = 1024;
  static constexpr size_t kFirstBytesChunk = 4 * 1024;
  static constexpr size_t kMaxBytesChunk = 64 * 1024;

  // A new series, default-constructed.
  SeriesInfo* Add() {
    if (series.empty() || series.back().size() == series.back().capacity()) {
      const size_t size = series.empty() ? kFirstSeriesChunk
                                         : std::min(kMaxSeriesChunk, 2 * series.back().capacity());
      series.emplace_back().reserve(size);
    }
    return &series.back().emplace_back();  // within capacity: earlier addresses stay
  }

  // A copy of `data` that lives as long as the store.
  absl::string_view Keep(absl::string_view data) {
    if (data.size() > kMaxBytesChunk / 8) {  // a rare long one gets a chunk of its own
      bytes.push_back(std::make_unique<char[]>(data.size()));
      std::memcpy(bytes.back().get(), data.data(), data.size());
      return absl::string_view(bytes.back().get(), data.size());
    }
    if (bytes_left < data.size()) {
      bytes_chunk = bytes_chunk == 0 ? kFirstBytesChunk : std::min(kMaxBytesChunk, 2 * bytes_chunk);
      bytes.push_back(std::make_unique<char[]>(bytes_chunk));
      next_byte = bytes.back().get();
      bytes_left = bytes_chunk;
    }
    char* out = next_byte;
    if (!data.empty()) std::memcpy(out, data.data(), data.size());
    next_byte += data.size();
    bytes_left -= data.size();
    return absl::string_view(out, data.size());
  }

  absl::flat_hash_set<SeriesInfo*, Hash, Eq> index;
  std::vector<std::vector<SeriesInfo>> series;  // chunks, never regrown
  std::vector<std::unique_ptr<char[]>> bytes;   // label bytes
  char* next_byte = nullptr;
  size_t bytes_left = 0;
  size_t bytes_chunk = 0;             // the size of the newest chunk
  std::deque<SeriesFamily> families;  // one per output that has series
};

namespace {

struct Item {
  const void* series;  // Aggregator::SeriesInfo
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
  ABSL_ATTRIBUTE_NOINLINE void Grow() {
    capacity_ = 2 * capacity_ + 16;
    std::unique_ptr<Item[]> grown(new Item[capacity_]);
    std::copy(begin(), end(), grown.get());
    data_ = std::move(grown);
  }

  std::unique_ptr<Item[]> data_;  // default-initialised: nothing is written twice
  size_t size_ = 0;
  size_t capacity_;
};

}  // namespace

struct Aggregator::Shard {
  // Only its worker touches a shard.
  // The series with samples, in order of their first sample.
  std::vector<SeriesInfo*> series;
  // Their exported series, per target (to size a flush's output).
  std::vector<size_t> exported_per_target;
};

// One flush in progress: each shard fills its part, the last one to finish hands the batches
// to the sink.
struct Aggregator::FlushJob {
  std::vector<int64_t> cutoffs;
  bool final = false;
  // Final flush: per target, the window of the export's newest sample. Repeating series are
  // filled up to it, so the points an export leaves do not depend on when ticks ran.
  std::vector<int64_t> end_windows;
  absl::Time started;
  std::atomic<size_t> remaining{0};
  // [shard][target]
  std::vector<std::vector<std::vector<SeriesPoints>>> parts;
  std::atomic<uint64_t> windows{0};
};

std::shared_ptr<Aggregator> Aggregator::Create(ExportConfig config, WorkerPool* pool,
                                               BatchSink sink, AggregatorOptions options) {
  return std::shared_ptr<Aggregator>(
      new Aggregator(std::move(config), pool, std::move(sink), std::move(options)));
}

Aggregator::Aggregator(ExportConfig config, WorkerPool* pool, BatchSink sink,
                       AggregatorOptions options)
    : config_(std::move(config)),
      pool_(pool),
      sink_(std::move(sink)),
      options_(std::move(options)),
      series_(std::make_shared<SeriesStore>()) {
  for (size_t t = 0; t < config_.targets.size(); ++t) {
    const TargetConfig& target = config_.targets[t];
    window_ns_.push_back(int64_t{target.resample_rate_s} * 1000000000);
    for (const OutputSpec& spec : target.outputs) {
      outputs_by_metric_[spec.source_metric].push_back(outputs_.size());
      outputs_.push_back(Output{t, &spec, {}});
    }
  }
  for (size_t i = 0; i < pool_->size(); ++i) {
    shards_.push_back(std::make_unique<Shard>());
    shards_.back()->exported_per_target.assign(config_.targets.size(), 0);
  }
  MutexLock lock(&series_mu_);
  series_per_target_.assign(config_.targets.size(), 0);
  series_refused_per_target_.assign(config_.targets.size(), 0);
  MutexLock lock2(&mu_);
  max_ts_ns_ = kNoWindow;
  flushed_cutoffs_.assign(config_.targets.size(), kNoWindow);
  next_closable_ns_ = kNoWindow;
}

Aggregator::~Aggregator() = default;

absl::Status Aggregator::Declare(const std::string& name, MetricInfo info) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric declaration \"", name, "\": not a valid metric name"));
  }
  std::optional<MetricInfo> known = BuiltinMetric(name);
  MutexLock lock(&metrics_mu_);
  if (!known) {
    auto it = declared_.find(name);
    if (it != declared_.end()) known = it->second;
  }
  if (known) {
    if (known->type != info.type) {
      return absl::InvalidArgumentError(absl::StrCat("metric declaration \"", name,
                                                     "\": declared as ", MetricTypeName(info.type),
                                                     " but it is a ", MetricTypeName(known->type)));
    }
    return absl::OkStatus();
  }
  declared_.emplace(name, info);
  return absl::OkStatus();
}

std::optional<MetricInfo> Aggregator::LookupMetric(const std::string& name) const {
  if (std::optional<MetricInfo> builtin = BuiltinMetric(name)) return builtin;
  MutexLock lock(&metrics_mu_);
  auto it = declared_.find(name);
  if (it == declared_.end()) return std::nullopt;
  return it->second;
}

const SeriesFamily* Aggregator::OutputFamily(size_t output, MetricInfo info,
                                             bool native_histogram) {
  Output& out = outputs_[output];
  if (out.family != nullptr) return out.family;
  const TargetConfig& target = config_.targets[out.target];
  SeriesFamily& family = series_->families.emplace_back();
  if (native_histogram) {
    std::string name = out.spec->base_name;
    if (info.kind == ValueKind::kTime && !absl::EndsWith(name, "_seconds")) {
      absl::StrAppend(&name, "_seconds");
    }
    family.names.push_back(EncodeNameLabel(name));
  } else if (info.type == MetricType::kTrend) {
    for (const TrendStat& stat : target.trend_stats) {
      family.names.push_back(
          EncodeNameLabel(absl::StrCat(out.spec->base_name, "_", stat.suffix())));
    }
  } else {
    family.names.push_back(EncodeNameLabel(out.spec->base_name + MetricSuffix(info.type)));
  }
  if (target.include_test_run_id) {
    // Once per output rather than in every series' labels: a run id is ~40 bytes.
    family.common_first = kTestRunIdLabel;
    family.common = EncodeLabelFields({{kTestRunIdLabel, config_.test_run_id}});
  }
  out.family = &family;
  return out.family;
}

const Aggregator::SeriesInfo* Aggregator::GetOrCreateSeries(
    size_t output, MetricInfo info, const std::vector<std::string>& kept_values, std::string* why) {
  const Output& out = outputs_[output];
  const TargetConfig& target = config_.targets[out.target];
  std::vector<Label> labels;
  for (size_t i = 0; i < kept_values.size(); ++i) {
    if (!kept_values[i].empty()) labels.push_back({out.spec->keep_labels[i], kept_values[i]});
  }
  const OwnLabels own = EncodeOwnLabels(
      std::move(labels), target.include_test_run_id ? kTestRunIdLabel : absl::string_view());

  MutexLock lock(&series_mu_);
  SeriesStore& store = *series_;
  auto it = store.index.find(SeriesStore::Key{static_cast<uint32_t>(output), own.bytes});
  if (it != store.index.end()) return *it;

  if (options_.max_series_per_target > 0 &&
      series_per_target_[out.target] >= options_.max_series_per_target) {
    ++series_refused_per_target_[out.target];
    *why = absl::StrCat("target ", out.target, " has ", options_.max_series_per_target,
                        " series (max_series_per_target)");
    return nullptr;
  }
  if (options_.max_series_per_export > 0 && store.index.size() >= options_.max_series_per_export) {
    ++series_refused_per_target_[out.target];
    *why = absl::StrCat("the export has ", options_.max_series_per_export,
                        " series (max_series_per_export)");
    return nullptr;
  }
  SeriesInfo* series = store.Add();
  series->target = static_cast<uint32_t>(out.target);
  series->output = static_cast<uint32_t>(output);
  series->info = info;
  series->shard = static_cast<uint32_t>(
      absl::Hash<std::pair<size_t, absl::string_view>>()({output, own.bytes}) % shards_.size());
  series->native_histogram = info.type == MetricType::kTrend && target.native_histograms;
  series->labels = Series(OutputFamily(output, info, series->native_histogram),
                          store.Keep(own.bytes), own.name_at, own.common_at);
  ++series_per_target_[out.target];
  store.index.insert(series);
  return series;
}

bool Aggregator::BeginIngest() {
  MutexLock lock(&mu_);
  if (stopping_) return false;
  ++active_ingests_;
  return true;
}

void Aggregator::CountRejections(const Rejections& rejections) {
  MutexLock lock(&mu_);
  MergeRejections(&rejections_, rejections);
}

void Aggregator::EndIngest(uint64_t accepted, uint64_t late, const Rejections& rejections) {
  MutexLock lock(&mu_);
  samples_accepted_ += accepted;
  samples_late_ += late;
  MergeRejections(&rejections_, rejections);
  if (--active_ingests_ == 0) cv_.SignalAll();
}

void Aggregator::ObserveTimestamp(int64_t max_ts_ns) {
  bool tick = false;
  {
    MutexLock lock(&mu_);
    if (max_ts_ns > max_ts_ns_) {
      max_ts_ns_ = max_ts_ns;
      max_ts_seen_at_ = options_.clock();
      // Samples that move the clock past a window's end close it now, not at the next tick.
      tick = !stopping_ && !flushing_ && ClosableAt(max_ts_seen_at_) >= next_closable_ns_;
    }
  }
  if (tick) Tick();
}

int64_t Aggregator::ClosableAt(absl::Time now) const {
  return max_ts_ns_ + absl::ToInt64Nanoseconds(now - max_ts_seen_at_) -
         absl::ToInt64Nanoseconds(options_.lateness);
}

absl::Time Aggregator::DueTime(int64_t closable) const {
  if (closable == kNoWindow) return max_ts_seen_at_;
  const absl::Time due =
      max_ts_seen_at_ + absl::Nanoseconds(closable - ClosableAt(max_ts_seen_at_));
  // A window the newest samples jumped past became closable when they arrived.
  return std::max(due, max_ts_seen_at_);
}

absl::Time Aggregator::NextCloseTime() const {
  MutexLock lock(&mu_);
  // While a flush runs, FinishFlush ticks again if a window became closable meanwhile.
  if (stopping_ || flushing_ || max_ts_ns_ == kNoWindow) return absl::InfiniteFuture();
  return DueTime(next_closable_ns_);
}

void Aggregator::Tick() {
  std::vector<int64_t> cutoffs;
  {
    MutexLock lock(&mu_);
    if (stopping_ || flushing_ || max_ts_ns_ == kNoWindow) return;
    const absl::Time now = options_.clock();
    const int64_t closable = ClosableAt(now);
    bool advanced = false;
    for (size_t t = 0; t < window_ns_.size(); ++t) {
      // Windows [w*R, (w+1)*R) with (w+1)*R <= closable are closed.
      cutoffs.push_back(FloorDiv(closable, window_ns_[t]));
      if (cutoffs[t] > flushed_cutoffs_[t]) advanced = true;
    }
    if (!advanced) return;
    flush_due_ = std::min(DueTime(next_closable_ns_), now);
    flushed_cutoffs_ = cutoffs;
    next_closable_ns_ = std::numeric_limits<int64_t>::max();
    for (size_t t = 0; t < window_ns_.size(); ++t) {
      next_closable_ns_ = std::min(next_closable_ns_, (cutoffs[t] + 1) * window_ns_[t]);
    }
    flushing_ = true;
  }
  StartFlush(std::move(cutoffs), /*final=*/false);
}

void Aggregator::Stop() {
  std::vector<int64_t> end_windows;
  {
    MutexLock lock(&mu_);
    if (stopping_) {
      while (!stopped_) cv_.Wait(&mu_);
      return;
    }
    stopping_ = true;
    while (active_ingests_ > 0 || flushing_) cv_.Wait(&mu_);
    flushing_ = true;
    if (max_ts_ns_ != kNoWindow) {
      for (int64_t window_ns : window_ns_) end_windows.push_back(FloorDiv(max_ts_ns_, window_ns));
    }
  }
  StartFlush(std::vector<int64_t>(window_ns_.size(), kCloseAll), /*final=*/true,
             std::move(end_windows));
  MutexLock lock(&mu_);
  while (flushing_) cv_.Wait(&mu_);
  stopped_ = true;
  cv_.SignalAll();
}

void Aggregator::AwaitFlushes() const {
  MutexLock lock(&mu_);
  while (flushing_) cv_.Wait(&mu_);
}

bool Aggregator::stopped() const {
  MutexLock lock(&mu_);
  return stopping_;
}

AggregatorFigures Aggregator::Figures() const {
  AggregatorFigures f;
  {
    MutexLock lock(&mu_);
    f.samples_accepted = samples_accepted_;
    f.samples_late = samples_late_;
    f.rejections = rejections_;
    f.windows_flushed = windows_flushed_;
    f.flush_duration = flush_duration_;
    f.window_delay = window_delay_;
  }
  for (const auto& [reason, r] : f.rejections) f.samples_rejected += r.count;
  MutexLock lock(&series_mu_);
  f.series_per_target = series_per_target_;
  f.series_refused_per_target = series_refused_per_target_;
  return f;
}

namespace {

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
  state.last_emitted = w;
}

}  // namespace

void Aggregator::StartFlush(std::vector<int64_t> cutoffs, bool final,
                            std::vector<int64_t> end_windows) {
  auto job = std::make_shared<FlushJob>();
  job->cutoffs = std::move(cutoffs);
  job->final = final;
  job->end_windows = std::move(end_windows);
  job->started = absl::Now();
  job->parts.resize(shards_.size());
  job->remaining = shards_.size();
  std::shared_ptr<Aggregator> self = shared_from_this();
  for (size_t s = 0; s < shards_.size(); ++s) {
    pool_->Post(s, [self, job, s] {
      Shard& shard = *self->shards_[s];
      auto& parts = job->parts[s];
      parts.resize(self->config_.targets.size());
      for (size_t t = 0; t < parts.size(); ++t) parts[t].reserve(shard.exported_per_target[t]);
      uint64_t windows = 0;
      for (SeriesInfo* info : shard.series) {
        SeriesState& state = info->state;
        const TargetConfig& target = self->config_.targets[info->target];
        const int64_t window_ms = self->window_ns_[info->target] / 1000000;
        const int64_t cutoff = job->cutoffs[info->target];
        // Native histograms are cumulative, so they repeat like counters.
        const bool repeats = info->info.type != MetricType::kTrend || info->native_histogram;
        std::vector<SeriesPoints>* out = &parts[info->target];
        size_t first_index = SIZE_MAX;
        auto fill_until = [&](int64_t end) {  // empty windows (last_emitted, end)
          if (!repeats || state.last_emitted == kNoWindow) return;
          int64_t from = std::max(state.last_emitted + 1, end - kMaxFillWindows);
          for (int64_t w = from; w < end; ++w) {
            EmitWindow(state, target, info->labels, info->info, info->native_histogram, window_ms,
                       w, nullptr, out, &first_index);
          }
        };
        size_t closed = 0;
        for (WindowAcc& acc : state.open) {
          if (acc.window >= cutoff) break;
          fill_until(acc.window);
          EmitWindow(state, target, info->labels, info->info, info->native_histogram, window_ms,
                     acc.window, &acc, out, &first_index);
          if (acc.trend != nullptr) {
            acc.trend->Clear();
            if (!state.trend) state.trend = std::make_unique<TrendState>();
            state.trend->spare = std::move(acc.trend);
          }
          ++closed;
          ++windows;
        }
        if (closed > 0) state.open.erase(state.open.begin(), state.open.begin() + closed);
        if (cutoff != kCloseAll) {
          fill_until(cutoff);
          state.next_open = std::max(state.next_open, cutoff);
        } else if (!job->end_windows.empty()) {
          fill_until(job->end_windows[info->target] + 1);
        }
        if (job->final && target.stale_markers && state.last_emitted != kNoWindow) {
          const int64_t stale_ts = (state.last_emitted + 1) * window_ms + 1;
          if (first_index == SIZE_MAX) first_index = AddExported(info->labels, out);
          for (size_t i = 0; i < info->labels.name_count(); ++i) {
            // A histogram series gets Prometheus's histogram stale marker: a float one would
            // be appended before the series' last histogram of the same request.
            if (info->native_histogram) {
              (*out)[first_index + i].histograms.push_back(StaleHistogramPoint(stale_ts));
            } else {
              (*out)[first_index + i].points.push_back({stale_ts, StaleNaN()});
            }
          }
        }
      }
      job->windows += windows;
      if (--job->remaining == 0) self->FinishFlush(job.get());
    });
  }
}

void Aggregator::FinishFlush(FlushJob* job) {
  for (size_t t = 0; t < config_.targets.size(); ++t) {
    // The largest part is taken as it is (a window of 100k trends is 800k SeriesPoints), the
    // others appended to it.
    size_t n = 0;
    std::vector<SeriesPoints>* largest = nullptr;
    for (auto& shard_parts : job->parts) {
      n += shard_parts[t].size();
      if (largest == nullptr || shard_parts[t].size() > largest->size()) largest = &shard_parts[t];
    }
    if (n == 0) continue;
    PointBatch batch;
    batch.owner = series_;
    batch.series = std::move(*largest);
    batch.series.reserve(n);
    for (auto& shard_parts : job->parts) {
      for (SeriesPoints& sp : shard_parts[t]) batch.series.push_back(std::move(sp));
    }
    batch.series.erase(std::remove_if(batch.series.begin(), batch.series.end(),
                                      [](const SeriesPoints& sp) { return sp.empty(); }),
                       batch.series.end());
    if (!batch.series.empty()) sink_(t, std::move(batch));
  }
  bool tick_again;
  {
    MutexLock lock(&mu_);
    flush_duration_.Observe(absl::Now() - job->started);
    windows_flushed_ += job->windows;
    const absl::Time now = options_.clock();
    if (!job->final && job->windows > 0) window_delay_.Observe(now - flush_due_);
    flushing_ = false;
    cv_.SignalAll();
    // A window that became closable while this flush ran closes now.
    tick_again = !stopping_ && ClosableAt(now) >= next_closable_ns_;
  }
  if (tick_again) Tick();
}

// ---------------------------------------------------------------------------------------------

StreamIngester::StreamIngester(std::shared_ptr<Aggregator> aggregator)
    : aggregator_(std::move(aggregator)) {}

uint64_t StreamIngester::rejected() const {
  uint64_t n = 0;
  for (const auto& [reason, r] : rejections_) n += r.count;
  return n;
}

const StreamIngester::Resolved* StreamIngester::Resolve(
    absl::string_view metric, const google::protobuf::RepeatedPtrField<v1::Tag>& tags,
    Rejections* rejections) {
  // The samples of one k6 request (http_reqs, http_req_duration, http_req_waiting, ...) come
  // one after the other with the same tags: compare the tags with the previous sample's, and
  // look the tag set up only when they differ; then scan the few metrics seen with it. That
  // saves building, hashing and probing the full key (a cache miss per sample in a large
  // table) for all but the first sample of a request.
  bool same_tags = tagset_ != nullptr && last_tags_ != nullptr && last_tags_->size() == tags.size();
  for (int i = 0; same_tags && i < tags.size(); ++i) {
    same_tags =
        tags[i].key() == (*last_tags_)[i].key() && tags[i].value() == (*last_tags_)[i].value();
  }
  last_tags_ = &tags;
  if (!same_tags) {
    tags_key_.clear();
    for (const v1::Tag& tag : tags) {
      tags_key_.push_back('\0');
      tags_key_.append(tag.key());
      tags_key_.push_back('\1');
      tags_key_.append(tag.value());
    }
    tagset_ = &tagsets_[tags_key_];
  }
  if (tagset_->index == nullptr) {
    for (const Tagset::Entry& e : tagset_->entries) {
      if (e.metric == metric) return &e.resolved;
    }
  }
  tag_pairs_.clear();
  for (const v1::Tag& tag : tags) tag_pairs_.emplace_back(tag.key(), tag.value());
  return ResolveInTagset(metric, tags_key_, rejections);
}

const StreamIngester::Resolved* StreamIngester::Resolve(absl::string_view metric, EncodedTags tags,
                                                        Rejections* rejections) {
  // As above, on the tags' bytes: the decoder compared them with the previous sample's
  // (tags_run), and the bytes themselves key the tag set.
  const bool same_tags =
      tagset_ != nullptr && has_last_encoded_tags_ && last_encoded_tags_run_ == tags.run;
  has_last_encoded_tags_ = true;
  last_encoded_tags_run_ = tags.run;
  if (!same_tags) tagset_ = &tagsets_[tags.bytes];
  if (tagset_->index == nullptr) {
    for (const Tagset::Entry& e : tagset_->entries) {
      if (e.metric == metric) return &e.resolved;
    }
  }
  tag_pairs_.clear();
  // Cannot fail: Ingest(const DecodedBatch&) checked every tag set new to the stream.
  ParseTags(tags.bytes, &tag_pairs_).IgnoreError();
  return ResolveInTagset(metric, tags.bytes, rejections);
}

const StreamIngester::Resolved* StreamIngester::ResolveInTagset(absl::string_view metric,
                                                                absl::string_view tags_key,
                                                                Rejections* rejections) {
  if (tagset_->index != nullptr) {
    auto it = tagset_->index->find(metric);
    if (it != tagset_->index->end()) return &tagset_->entries[it->second].resolved;
  } else {
    for (const Tagset::Entry& e : tagset_->entries) {
      if (e.metric == metric) return &e.resolved;
    }
  }
  std::optional<Resolved> resolved = MakeResolved(metric, tag_pairs_, rejections);
  if (!resolved) return nullptr;  // not remembered: the metric may be declared later
  if (cached_combinations_ >= kMaxCachedKeys) {
    const std::string key(tags_key);  // may point into tagsets_
    tagsets_.clear();
    metric_names_.clear();
    cached_combinations_ = 0;
    tagset_ = &tagsets_[key];
  }
  ++cached_combinations_;
  const absl::string_view name = *metric_names_.emplace(metric).first;
  std::vector<Tagset::Entry>& entries = tagset_->entries;
  entries.push_back(Tagset::Entry{name, *std::move(resolved)});
  if (tagset_->index != nullptr) {
    tagset_->index->emplace(name, entries.size() - 1);
  } else if (entries.size() > kMaxTagsetScan) {
    tagset_->index = std::make_unique<absl::flat_hash_map<absl::string_view, size_t>>();
    for (size_t i = 0; i < entries.size(); ++i) tagset_->index->emplace(entries[i].metric, i);
  }
  return &entries.back().resolved;
}

std::optional<StreamIngester::Resolved> StreamIngester::MakeResolved(absl::string_view metric,
                                                                     absl::Span<const RawTag> tags,
                                                                     Rejections* rejections) {
  Aggregator& agg = *aggregator_;
  const std::string metric_name(metric);
  std::optional<MetricInfo> info = agg.LookupMetric(metric_name);
  if (!info) {
    AddRejection(rejections, "unknown_metric", metric_name);
    return std::nullopt;
  }
  Resolved resolved{*info, {}, nullptr};
  auto outputs = agg.outputs_by_metric_.find(metric_name);
  if (outputs != agg.outputs_by_metric_.end()) {
    std::vector<std::pair<std::string, std::string>> tag_pairs;
    tag_pairs.reserve(tags.size());
    for (const auto& [key, value] : tags) tag_pairs.emplace_back(key, value);
    std::vector<std::string> kept;
    std::string why;
    bool refused = false;
    for (size_t o : outputs->second) {
      const OutputSpec& spec = *agg.outputs_[o].spec;
      if (spec.selector.has_matchers() && !spec.selector.Matches(tag_pairs)) continue;
      kept.clear();
      for (const std::string& tag : spec.keep_tags) kept.emplace_back(FindTag(tags, tag));
      if (const Aggregator::SeriesInfo* series = agg.GetOrCreateSeries(o, *info, kept, &why)) {
        resolved.series.push_back(series);
      } else {
        refused = true;
      }
    }
    if (refused && resolved.series.empty()) {
      resolved.over_limit = std::make_shared<const std::string>(absl::StrCat(metric, ": ", why));
    }
  }
  return resolved;
}

void StreamIngester::DeclareSeries(const v1::SeriesDeclaration& decl) {
  if (decl.ref() >= kMaxSeriesRefs) {
    AddRejection(&declaration_errors_, "invalid_series_ref",
                 absl::StrCat("series declaration of \"", decl.metric(), "\": ref ", decl.ref(),
                              " is not below ", kMaxSeriesRefs));
    return;
  }
  if (decl.metric().empty()) {
    AddRejection(&declaration_errors_, "missing_metric",
                 absl::StrCat("series declaration with ref ", decl.ref(), ": metric is empty"));
    return;
  }
  if (refs_.size() <= decl.ref()) {
    refs_.resize(decl.ref() + 1);
    routes_.resize(decl.ref() + 1);
  }
  routes_[decl.ref()] = Route{};  // until resolved (again)
  // Resolved on its first sample, so a declared series without samples creates nothing and
  // the figures match those of the same samples sent self-describing.
  auto ref = std::make_unique<SeriesRef>();
  ref->metric = decl.metric();
  ref->pending = std::make_unique<v1::SeriesDeclaration>(decl);
  refs_[decl.ref()] = std::move(ref);
}

const StreamIngester::Resolved* StreamIngester::ResolvePending(uint32_t ref_number,
                                                               Rejections* rejections) {
  SeriesRef* ref = refs_[ref_number].get();
  // Not through the tag-set cache: a declared series is resolved once, and caching its tags
  // too would double what the stream keeps per series.
  tag_pairs_.clear();
  for (const v1::Tag& tag : ref->pending->tags()) tag_pairs_.emplace_back(tag.key(), tag.value());
  std::optional<Resolved> resolved = MakeResolved(ref->pending->metric(), tag_pairs_, rejections);
  if (!resolved) return nullptr;  // the metric may be declared later
  ref->series = *std::move(resolved);
  ref->resolved = true;
  ref->pending.reset();
  if (ref->series.series.size() <= kMaxRouted && ref->series.over_limit == nullptr) {
    Route& route = routes_[ref_number];
    route.count = static_cast<uint32_t>(ref->series.series.size());
    std::copy(ref->series.series.begin(), ref->series.series.end(), route.series);
    route.usable = true;
  }
  return &ref->series;
}

absl::Status StreamIngester::Ingest(const v1::SampleBatch& batch, std::function<void()> done) {
  const v1::CompactSamples& compact = batch.compact();
  return IngestBatch(
      batch.metrics(), batch.series(), static_cast<size_t>(batch.samples_size()),
      [&batch](const auto& f) {
        for (const v1::Sample& s : batch.samples()) {
          f(s.metric(), s.tags(), s.time_unix_nano(), s.value());
        }
      },
      absl::MakeConstSpan(compact.refs().data(), compact.refs_size()),
      absl::MakeConstSpan(compact.time_unix_nano_delta().data(),
                          compact.time_unix_nano_delta_size()),
      absl::MakeConstSpan(compact.values().data(), compact.values_size()), std::move(done));
}

absl::Status StreamIngester::Ingest(const DecodedBatch& batch, std::function<void()> done) {
  // Check the tag sets new to this stream before anything is applied: a batch is taken whole
  // or not at all, as when gRPC's generated code refuses to parse it. A tag set seen before
  // (in tagsets_) passed this check then.
  for (size_t i = 0; i < batch.samples.size(); ++i) {
    const absl::string_view tags = batch.samples[i].tags;
    if (i > 0 && batch.samples[i].tags_run == batch.samples[i - 1].tags_run) continue;
    if (tagsets_.contains(tags)) continue;
    tag_pairs_.clear();
    if (absl::Status parsed = ParseTags(tags, &tag_pairs_); !parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("sample ", i, ": tags: ", parsed.message()));
    }
  }
  return IngestBatch(
      batch.declarations.metrics(), batch.declarations.series(), batch.samples.size(),
      [&batch](const auto& f) {
        for (const RawSample& s : batch.samples) {
          f(s.metric, EncodedTags{s.tags, s.tags_run}, s.time_unix_nano, s.value);
        }
      },
      batch.compact_refs, batch.compact_deltas, batch.compact_values, std::move(done));
}

template <typename ForEachSample>
absl::Status StreamIngester::IngestBatch(
    const google::protobuf::RepeatedPtrField<v1::MetricDeclaration>& metrics,
    const google::protobuf::RepeatedPtrField<v1::SeriesDeclaration>& series, size_t sample_count,
    const ForEachSample& for_each_sample, absl::Span<const uint32_t> refs,
    absl::Span<const int64_t> deltas, absl::Span<const double> values, std::function<void()> done) {
  Aggregator& agg = *aggregator_;
  if (!agg.BeginIngest()) {
    return absl::FailedPreconditionError("the export is stopping; no more samples are accepted");
  }
  Rejections rejections;
  for (const v1::MetricDeclaration& decl : metrics) {
    if (decl.type() == v1::METRIC_TYPE_UNSPECIFIED) {
      AddRejection(&declaration_errors_, "missing_type", decl.name());
      continue;
    }
    // Values outside the enums (a newer or broken client) would be aggregated as nothing.
    if (!v1::MetricType_IsValid(decl.type()) || !v1::ValueKind_IsValid(decl.kind())) {
      AddRejection(
          &declaration_errors_, "invalid_type",
          absl::StrCat("metric declaration \"", decl.name(), "\": unknown type ",
                       static_cast<int>(decl.type()), " or kind ", static_cast<int>(decl.kind())));
      continue;
    }
    MetricInfo info{static_cast<MetricType>(decl.type() - 1), static_cast<ValueKind>(decl.kind())};
    absl::Status declared = agg.Declare(decl.name(), info);
    if (!declared.ok()) {
      AddRejection(&declaration_errors_,
                   IsValidMetricName(decl.name()) ? "type_conflict" : "invalid_name",
                   std::string(declared.message()));
    }
  }
  for (const v1::SeriesDeclaration& decl : series) DeclareSeries(decl);

  const int64_t now_ns = absl::ToUnixNanos(agg.options_.clock());
  const int64_t max_future_ns = absl::ToInt64Nanoseconds(agg.options_.max_future);
  const int64_t max_age_ns = absl::ToInt64Nanoseconds(agg.options_.max_age);
  int64_t watermark;
  {
    MutexLock lock(&agg.mu_);
    watermark = agg.max_ts_ns_;
  }
  std::vector<Items> work;
  {
    const size_t expected = (sample_count + refs.size()) / agg.shards_.size() + 16;
    work.reserve(agg.shards_.size());
    for (size_t i = 0; i < agg.shards_.size(); ++i) work.emplace_back(expected);
  }
  uint64_t accepted = 0;
  int64_t batch_max_ts = kNoWindow;
  // Usable timestamps: positive, at most max_future ahead of the wall clock, at most max_age
  // behind the export's newest sample.
  const int64_t lowest = watermark == kNoWindow ? 1 : std::max<int64_t>(1, watermark - max_age_ns);
  const int64_t highest = now_ns + max_future_ns;
  // Whether a sample can be used whatever its series.
  auto in_bounds = [lowest, highest](int64_t ts, double value) {
    return ts >= lowest && ts <= highest && std::isfinite(value);
  };
  // The same, recording the reason when it cannot.
  auto usable = [&](int64_t ts, double value, absl::string_view metric) {
    if (in_bounds(ts, value)) return true;
    RejectUnusable(ts, value, highest, metric, &rejections);
    return false;
  };
  auto route = [&](const Resolved& resolved, int64_t ts, double value) {
    if (resolved.over_limit != nullptr) {
      AddRejection(&rejections, "series_limit", *resolved.over_limit);
      return;
    }
    ++accepted;
    batch_max_ts = std::max(batch_max_ts, ts);
    for (const Aggregator::SeriesInfo* series : resolved.series) {
      work[series->shard].push_back(Item{series, ts, value});
    }
  };
  // The tags of the previous sample, in this batch only.
  last_tags_ = nullptr;
  has_last_encoded_tags_ = false;
  for_each_sample([&](absl::string_view metric, const auto& tags, int64_t ts, double value) {
    if (!usable(ts, value, metric)) return;
    const Resolved* resolved = Resolve(metric, tags, &rejections);
    if (resolved == nullptr) return;
    route(*resolved, ts, value);
  });
  last_tags_ = nullptr;
  has_last_encoded_tags_ = false;
  // Compact samples: columns of (ref, time delta, value).
  const size_t compact_size = refs.size();
  if (compact_size != deltas.size() || compact_size != values.size()) {
    AddRejection(&rejections, "compact_length_mismatch",
                 absl::StrCat("refs: ", compact_size, ", time_unix_nano_delta: ", deltas.size(),
                              ", values: ", values.size()),
                 std::max({compact_size, deltas.size(), values.size()}));
  } else {
    uint64_t time = 0;  // unsigned: a hostile delta wraps instead of overflowing
    for (size_t i = 0; i < compact_size; ++i) {
      time += static_cast<uint64_t>(deltas[i]);
      const int64_t ts = static_cast<int64_t>(time);
      // Most samples: a declared series with a route (routes_), a usable sample.
      if (refs[i] < routes_.size()) {
        const Route& r = routes_[refs[i]];
        if (r.usable && in_bounds(ts, values[i])) {
          ++accepted;
          batch_max_ts = std::max(batch_max_ts, ts);
          for (uint32_t k = 0; k < r.count; ++k) {
            work[r.series[k]->shard].push_back(Item{r.series[k], ts, values[i]});
          }
          continue;
        }
      }
      SeriesRef* ref = refs[i] < refs_.size() ? refs_[refs[i]].get() : nullptr;
      if (ref == nullptr) {
        AddRejection(&rejections, "unknown_series_ref", absl::StrCat("ref ", refs[i]));
        continue;
      }
      if (!usable(ts, values[i], ref->metric)) continue;
      const Resolved* resolved =
          ref->resolved ? &ref->series : ResolvePending(refs[i], &rejections);
      if (resolved == nullptr) continue;
      route(*resolved, ts, values[i]);
    }
  }
  accepted_ += accepted;
  MergeRejections(&rejections_, rejections);

  size_t shards_with_work = 0;
  for (const auto& items : work) shards_with_work += !items.empty();
  if (shards_with_work == 0) {
    if (batch_max_ts != kNoWindow) agg.ObserveTimestamp(batch_max_ts);
    agg.EndIngest(accepted, 0, rejections);
    done();
    return absl::OkStatus();
  }

  struct Pending {
    std::atomic<size_t> remaining;
    std::atomic<uint64_t> late{0};
    uint64_t accepted;
    int64_t max_ts;
    Rejections rejections;
    std::function<void()> done;
  };
  auto pending = std::make_shared<Pending>();
  pending->remaining = shards_with_work;
  pending->accepted = accepted;
  pending->max_ts = batch_max_ts;
  pending->rejections = std::move(rejections);
  pending->done = std::move(done);
  std::shared_ptr<Aggregator> self = aggregator_;
  for (size_t s = 0; s < work.size(); ++s) {
    if (work[s].empty()) continue;
    agg.pool_->Post(s, [self, pending, s, items = std::move(work[s])] {
      Aggregator::Shard& shard = *self->shards_[s];
      uint64_t late = 0;
      for (const Item& item : items) {
        const auto* info = static_cast<const Aggregator::SeriesInfo*>(item.series);
        SeriesState& state = info->state;
        const int64_t window_ns = self->window_ns_[info->target];
        if (!info->listed) {
          info->listed = true;
          shard.series.push_back(const_cast<Aggregator::SeriesInfo*>(info));
          shard.exported_per_target[info->target] += info->labels.name_count();
        }
        // Most samples fall in the series' newest open window (windows in `open` are never
        // below next_open, so such a sample is not late).
        WindowAcc* acc = nullptr;
        if (!state.open.empty()) {
          WindowAcc& newest = state.open.back();
          const int64_t start = newest.window * window_ns;
          if (item.ts_ns >= start && item.ts_ns - start < window_ns) acc = &newest;
        }
        if (acc == nullptr) {
          int64_t w = FloorDiv(item.ts_ns, window_ns);
          if (w < state.next_open) {
            w = state.next_open;
            ++late;
          }
          auto it = std::lower_bound(
              state.open.begin(), state.open.end(), w,
              [](const WindowAcc& a, int64_t window) { return a.window < window; });
          if (it == state.open.end() || it->window != w) {
            it = state.open.insert(it, WindowAcc{});
            it->window = w;
          }
          acc = &*it;
        }
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
      pending->late += late;
      if (--pending->remaining == 0) {
        // The export's clock moves only now that every shard holds this batch's samples: a
        // flush it triggers is queued behind them, so it cannot close their windows first;
        // and it moves before `done`, so a StopExport after the stream ends sees it.
        if (pending->max_ts != kNoWindow) self->ObserveTimestamp(pending->max_ts);
        self->EndIngest(pending->accepted, pending->late, pending->rejections);
        pending->done();
      }
    });
  }
  return absl::OkStatus();
}

}  // namespace rwexport
