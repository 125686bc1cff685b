#include "lib/aggregate/aggregator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/model/trend_stat.h"

namespace rwexport {
namespace {

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

absl::string_view FindTag(absl::Span<const RawTag> tags, absl::string_view key) {
  for (const auto& [tag, value] : tags) {
    if (tag == key) return value;
  }
  return {};
}

// Whether the run id label is one of a family's common labels (kept once per output), which
// must sort after __name__ with no own label between: so not beside static labels, whose names
// may sort on either side of kept tags, and not a name sorting before "__name__" ("TestId").
bool RunIdIsCommon(const TargetConfig& target) {
  return target.include_test_run_id && target.labels.empty() &&
         target.test_run_id_label > absl::string_view("__name__");
}

}  // namespace

// One flush in progress: each shard fills its part, the last one to finish hands the batches
// to the sink.
struct Aggregator::FlushJob {
  FlushWindows windows;
  absl::Time started;
  std::atomic<size_t> remaining{0};
  // [shard][target]
  std::vector<std::vector<std::vector<SeriesPoints>>> parts;
  std::atomic<uint64_t> closed{0};
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
      series_(std::make_shared<SeriesStore>(
          config_.targets.size(), pool_->size(), options_.max_series_per_target,
          options_.max_series_per_export, options_.on_series_refused)) {
  for (size_t t = 0; t < config_.targets.size(); ++t) {
    const TargetConfig& target = config_.targets[t];
    window_ns_.push_back(int64_t{target.resample_rate_s} * 1000000000);
    const OutputSpec* all = nullptr;
    absl::flat_hash_set<std::string> names;
    for (const OutputSpec& spec : target.outputs) {
      if (spec.all_metrics) {
        all = &spec;
        continue;
      }
      names.insert(spec.base_name);
      outputs_by_metric_[spec.source_metric].push_back(outputs_.size());
      outputs_.push_back(Output{static_cast<uint32_t>(t), &spec});
    }
    if (all != nullptr) {
      all_metrics_.push_back(AllMetrics{static_cast<uint32_t>(t), all, std::move(names)});
    }
  }
  for (size_t i = 0; i < pool_->size(); ++i) {
    shards_.push_back(std::make_unique<Shard>());
    shards_.back()->exported_per_target.assign(config_.targets.size(), 0);
  }
  MutexLock lock(&mu_);
  flushed_cutoffs_.assign(config_.targets.size(), kNoWindow);
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

const Aggregator::Output& Aggregator::OutputAt(size_t output) const {
  if (output < outputs_.size()) return outputs_[output];
  MutexLock lock(&all_metrics_mu_);
  return all_metrics_outputs_[output - outputs_.size()];
}

size_t Aggregator::AllMetricsOutput(size_t all, absl::string_view metric) {
  MutexLock lock(&all_metrics_mu_);
  auto [it, inserted] = all_metrics_index_.try_emplace(
      std::make_pair(all, std::string(metric)), outputs_.size() + all_metrics_outputs_.size());
  if (inserted) {
    OutputSpec& spec = all_metrics_specs_.emplace_back(*all_metrics_[all].spec);
    spec.source_metric = std::string(metric);
    spec.base_name = absl::StrCat(spec.base_name, metric);
    all_metrics_outputs_.push_back(Output{all_metrics_[all].target, &spec});
  }
  return it->second;
}

void Aggregator::FillFamily(size_t output, MetricInfo info, bool native_histogram,
                            SeriesFamily* family) const {
  const Output& out = OutputAt(output);
  const TargetConfig& target = config_.targets[out.target];
  if (native_histogram) {
    std::string name = out.spec->base_name;
    if (info.kind == ValueKind::kTime && !absl::EndsWith(name, "_seconds")) {
      absl::StrAppend(&name, "_seconds");
    }
    family->names.push_back(EncodeNameLabel(name));
  } else if (info.type == MetricType::kTrend) {
    for (const TrendStat& stat : target.trend_stats) {
      family->names.push_back(
          EncodeNameLabel(absl::StrCat(out.spec->base_name, "_", stat.suffix())));
    }
  } else {
    family->names.push_back(EncodeNameLabel(out.spec->base_name + MetricSuffix(info.type)));
  }
  if (RunIdIsCommon(target)) {
    // Once per output rather than in every series' labels: a run id is ~40 bytes.
    family->common_first = target.test_run_id_label;
    family->common = EncodeLabelFields({{target.test_run_id_label, config_.test_run_id}});
  }
}

SeriesRoute Aggregator::ResolveSeries(absl::string_view metric, MetricInfo info,
                                      absl::Span<const RawTag> tags) {
  SeriesRoute route{info, {}, nullptr};
  auto outputs = outputs_by_metric_.find(metric);
  const bool has_outputs = outputs != outputs_by_metric_.end();
  if (!has_outputs && all_metrics_.empty()) return route;
  // Copied only for a selector with matchers: most outputs have none, and this runs for
  // every new raw series.
  std::vector<std::pair<std::string, std::string>> tag_pairs;
  auto matches = [&](const MetricSelector& selector) {
    if (tag_pairs.empty() && !tags.empty()) {
      tag_pairs.reserve(tags.size());
      for (const auto& [key, value] : tags) tag_pairs.emplace_back(key, value);
    }
    return selector.Matches(tag_pairs);
  };
  std::vector<Label> labels;
  std::string why;
  bool refused = false;
  auto feed = [&](size_t o, const Output& out) {
    const OutputSpec& spec = *out.spec;
    const TargetConfig& target = config_.targets[out.target];
    labels.clear();
    for (size_t i = 0; i < spec.keep_tags.size(); ++i) {
      const absl::string_view value = FindTag(tags, spec.keep_tags[i]);
      if (!value.empty()) labels.push_back({spec.keep_labels[i], std::string(value)});
    }
    for (const auto& [name, value] : target.labels) labels.push_back({name, value});
    absl::string_view common_first;
    if (RunIdIsCommon(target)) {
      common_first = target.test_run_id_label;
    } else if (target.include_test_run_id) {
      labels.push_back({target.test_run_id_label, config_.test_run_id});
    }
    const OwnLabels own = EncodeOwnLabels(std::move(labels), common_first);
    const bool native_histogram = info.type == MetricType::kTrend && target.native_histograms;
    auto fill_family = [&](SeriesFamily* family) { FillFamily(o, info, native_histogram, family); };
    SeriesStore::NewSeries new_series{static_cast<uint32_t>(o), out.target, info, native_histogram,
                                      fill_family};
    if (const AggregationSeries* series = series_->GetOrCreate(new_series, own, &why)) {
      route.series.push_back(series);
    } else {
      refused = true;
    }
  };
  if (has_outputs) {
    for (size_t o : outputs->second) {
      const Output& out = outputs_[o];
      if (out.spec->selector.has_matchers() && !matches(out.spec->selector)) continue;
      feed(o, out);
    }
  }
  for (size_t a = 0; a < all_metrics_.size(); ++a) {
    // "*" leaves a metric to an entry that exports it under its k6_ name.
    if (all_metrics_[a].taken_names.contains(absl::StrCat("k6_", metric))) continue;
    const size_t o = AllMetricsOutput(a, metric);
    feed(o, OutputAt(o));
  }
  if (refused && route.series.empty()) {
    route.over_limit = std::make_shared<const std::string>(absl::StrCat(metric, ": ", why));
  }
  return route;
}

bool Aggregator::BeginIngest() {
  MutexLock lock(&mu_);
  if (stopping_) return false;
  ++active_ingests_;
  return true;
}

void Aggregator::CountRejections(const Rejections& rejections) {
  {
    MutexLock cut(&cut_mu_);
    MergeRejections(&dispatched_rejections_, rejections);
  }
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

SampleBounds Aggregator::Bounds() const {
  const int64_t now_ns = absl::ToUnixNanos(options_.clock());
  const int64_t max_future_ns = absl::ToInt64Nanoseconds(options_.max_future);
  const int64_t max_age_ns = absl::ToInt64Nanoseconds(options_.max_age);
  int64_t watermark;
  {
    MutexLock lock(&mu_);
    watermark = max_ts_ns_;
  }
  return SampleBounds{
      watermark == kNoWindow ? 1 : std::max<int64_t>(1, watermark - max_age_ns),
      now_ns + max_future_ns,
  };
}

void Aggregator::CountAtCut(const RoutedBatch& batch, DispatchTag* tag) {
  dispatched_accepted_ += batch.accepted;
  MergeRejections(&dispatched_rejections_, batch.rejections);
  if (batch.max_ts != kNoWindow) {
    dispatched_max_ts_ns_ = std::max(dispatched_max_ts_ns_, batch.max_ts);
  }
  if (tag == nullptr) return;
  auto it = streams_.find(tag->stream_id);
  if (it == streams_.end()) {
    it = streams_.emplace(std::string(tag->stream_id), IngestStreamProgress{}).first;
  }
  IngestStreamProgress& progress = it->second;
  if (tag->assigned != nullptr) {
    *tag->assigned = progress.sequence + 1;
    progress.sequence = *tag->assigned;
  } else {
    progress.sequence = std::max(progress.sequence, tag->sequence);
  }
  progress.accepted += batch.accepted;
  for (const auto& [reason, r] : batch.rejections) progress.rejected += r.count;
}

void Aggregator::Dispatch(RoutedBatch batch, std::function<void()> done, DispatchTag* tag) {
  size_t shards_with_work = 0;
  for (const Items& items : batch.work) shards_with_work += !items.empty();
  // Counted (and posted) under the cut, so that a snapshot sees the batch wholly or not at all.
  if (shards_with_work == 0) {
    {
      MutexLock cut(&cut_mu_);
      CountAtCut(batch, tag);
    }
    if (batch.max_ts != kNoWindow) ObserveTimestamp(batch.max_ts);
    EndIngest(batch.accepted, 0, batch.rejections);
    done();
    return;
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
  pending->accepted = batch.accepted;
  pending->max_ts = batch.max_ts;
  pending->done = std::move(done);
  std::shared_ptr<Aggregator> self = shared_from_this();
  MutexLock cut(&cut_mu_);
  CountAtCut(batch, tag);
  pending->rejections = std::move(batch.rejections);
  for (size_t s = 0; s < batch.work.size(); ++s) {
    if (batch.work[s].empty()) continue;
    pool_->Post(s, [self, pending, s, items = std::move(batch.work[s])] {
      Shard* shard = self->shards_[s].get();
      const uint64_t late = AccumulateItems(items, self->window_ns_, shard);
      shard->late += late;
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

int64_t Aggregator::NewestSampleMs() const {
  MutexLock lock(&mu_);
  if (max_ts_ns_ == kNoWindow || max_ts_ns_ <= 0) return 0;
  return (max_ts_ns_ + 999999) / 1000000;
}

absl::Time Aggregator::NextCloseTime() const {
  MutexLock lock(&mu_);
  // While a flush runs, FinishFlush ticks again if a window became closable meanwhile.
  if (stopping_ || flushing_ || snapshotting_ || max_ts_ns_ == kNoWindow) {
    return absl::InfiniteFuture();
  }
  return DueTime(next_closable_ns_);
}

void Aggregator::Tick() {
  std::vector<int64_t> cutoffs;
  {
    MutexLock lock(&mu_);
    if (stopping_ || flushing_ || snapshotting_ || max_ts_ns_ == kNoWindow) return;
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
  StartFlush(FlushWindows{std::move(cutoffs), /*final=*/false, {}});
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
    while (active_ingests_ > 0 || flushing_ || snapshotting_) cv_.Wait(&mu_);
    flushing_ = true;
    if (max_ts_ns_ != kNoWindow) {
      // The export's last window: that of its newest sample, or a later one its clock passed
      // while it idled, whether or not a flush closed it yet.
      const int64_t closable = ClosableAt(options_.clock());
      for (int64_t window_ns : window_ns_) {
        end_windows.push_back(
            std::max(FloorDiv(max_ts_ns_, window_ns), FloorDiv(closable, window_ns) - 1));
      }
    }
  }
  StartFlush(FlushWindows{std::vector<int64_t>(window_ns_.size(), kCloseAll), /*final=*/true,
                          std::move(end_windows)});
  MutexLock lock(&mu_);
  while (flushing_) cv_.Wait(&mu_);
  stopped_ = true;
  cv_.SignalAll();
}

void Aggregator::Abandon() {
  MutexLock lock(&mu_);
  if (!stopping_) {
    stopping_ = true;
    while (active_ingests_ > 0 || flushing_ || snapshotting_) cv_.Wait(&mu_);
    stopped_ = true;
    cv_.SignalAll();
  }
  while (!stopped_) cv_.Wait(&mu_);  // a Stop() under way finishes first
}

bool Aggregator::Flushing() const {
  MutexLock lock(&mu_);
  return flushing_;
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
  f.series_per_target = series_->series_per_target();
  f.series_refused_per_target = series_->refused_per_target();
  f.exported_series_per_target = series_->exported_per_target();
  return f;
}

void Aggregator::StartFlush(FlushWindows windows) {
  auto job = std::make_shared<FlushJob>();
  job->windows = std::move(windows);
  job->started = absl::Now();
  job->parts.resize(shards_.size());
  job->remaining = shards_.size();
  std::shared_ptr<Aggregator> self = shared_from_this();
  for (size_t s = 0; s < shards_.size(); ++s) {
    pool_->Post(s, [self, job, s] {
      job->closed += CloseWindows(*self->shards_[s], self->config_.targets, self->window_ns_,
                                  job->windows, &job->parts[s]);
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
    windows_flushed_ += job->closed;
    const absl::Time now = options_.clock();
    if (!job->windows.final && job->closed > 0) window_delay_.Observe(now - flush_due_);
    flushing_ = false;
    cv_.SignalAll();
    // A window that became closable while this flush ran closes now.
    tick_again = !stopping_ && !snapshotting_ && ClosableAt(now) >= next_closable_ns_;
  }
  if (tick_again) Tick();
}

}  // namespace rwexport
