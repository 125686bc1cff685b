// Aggregator::SaveState and RestoreState: an aggregator's state for checkpoints
// (lib/durable/checkpoints.md), as a durable.v1.AggregatorState.
#include <algorithm>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/native_histogram.h"
#include "rwexport/durable/v1/aggregator_state.pb.h"

namespace rwexport {
namespace {

using durable::v1::AggregationSeriesState;
using durable::v1::AggregatorState;

// Whether the run id label is one of a family's common labels (aggregator.cc's rule).
bool RunIdIsCommon(const TargetConfig& target) {
  return target.include_test_run_id && target.labels.empty() &&
         target.test_run_id_label > absl::string_view("__name__");
}

// (index, count) buckets of a sketch or a native histogram.
using Buckets = std::vector<std::pair<int, uint64_t>>;
using BucketsProto = google::protobuf::RepeatedPtrField<durable::v1::SketchBucket>;

void SaveBuckets(const Buckets& from, BucketsProto* to) {
  for (const auto& [index, n] : from) {
    durable::v1::SketchBucket* bucket = to->Add();
    bucket->set_index(index);
    bucket->set_count(n);
  }
}

Buckets RestoreBuckets(const BucketsProto& from) {
  Buckets out;
  out.reserve(from.size());
  for (const durable::v1::SketchBucket& b : from) out.emplace_back(b.index(), b.count());
  return out;
}

void SaveTrend(const TrendAccumulator& acc, durable::v1::TrendState* out) {
  TrendAccumulator::State state = acc.SaveState();
  out->set_count(state.count);
  out->set_sum(state.sum);
  out->set_min(state.min);
  out->set_max(state.max);
  for (double v : state.values) out->add_values(v);
  if (state.sketch) {
    durable::v1::SketchState* sketch = out->mutable_sketch();
    sketch->set_relative_accuracy(state.sketch->relative_accuracy);
    sketch->set_count(state.sketch->count);
    sketch->set_zero_count(state.sketch->zero_count);
    sketch->set_sum(state.sketch->sum);
    sketch->set_min(state.sketch->min);
    sketch->set_max(state.sketch->max);
    SaveBuckets(state.sketch->positive, sketch->mutable_positive());
    SaveBuckets(state.sketch->negative, sketch->mutable_negative());
  }
}

absl::StatusOr<TrendAccumulator> RestoreTrend(const durable::v1::TrendState& in) {
  TrendAccumulator::State state;
  state.count = in.count();
  state.sum = in.sum();
  state.min = in.min();
  state.max = in.max();
  state.values.assign(in.values().begin(), in.values().end());
  if (in.has_sketch()) {
    const durable::v1::SketchState& sketch = in.sketch();
    QuantileSketch::State& s = state.sketch.emplace();
    s.relative_accuracy = sketch.relative_accuracy();
    s.count = sketch.count();
    s.zero_count = sketch.zero_count();
    s.sum = sketch.sum();
    s.min = sketch.min();
    s.max = sketch.max();
    s.positive = RestoreBuckets(sketch.positive());
    s.negative = RestoreBuckets(sketch.negative());
  }
  return TrendAccumulator::FromState(std::move(state));
}

void SaveHistogram(const NativeHistogram& histogram, durable::v1::NativeHistogramState* out) {
  const NativeHistogram::State state = histogram.SaveState();
  out->set_schema(state.schema);
  out->set_count(state.count);
  out->set_zero_count(state.zero_count);
  out->set_sum(state.sum);
  SaveBuckets(state.positive, out->mutable_positive());
  SaveBuckets(state.negative, out->mutable_negative());
}

// Null for a state no histogram has.
std::unique_ptr<NativeHistogram> RestoreHistogram(const durable::v1::NativeHistogramState& in) {
  NativeHistogram::State state;
  state.schema = in.schema();
  state.count = in.count();
  state.zero_count = in.zero_count();
  state.sum = in.sum();
  state.positive = RestoreBuckets(in.positive());
  state.negative = RestoreBuckets(in.negative());
  auto histogram = std::make_unique<NativeHistogram>();
  if (!NativeHistogram::FromState(state, histogram.get())) return nullptr;
  return histogram;
}

// `series`' state. Its shard's worker only.
void SaveSeries(const AggregationSeries& series, const TargetConfig& target,
                AggregationSeriesState* out) {
  out->set_output(series.output);
  out->set_metric_type(static_cast<uint32_t>(series.info.type));
  out->set_value_kind(static_cast<uint32_t>(series.info.kind));
  const bool common_run_id = RunIdIsCommon(target);
  for (const Label& label : series.labels.labels()) {
    if (label.name == "__name__") continue;
    if (common_run_id && label.name == target.test_run_id_label) continue;
    durable::v1::LabelPair* pair = out->add_labels();
    pair->set_name(label.name);
    pair->set_value(label.value);
  }
  const SeriesState& state = series.state;
  out->set_next_open(state.next_open);
  out->set_last_sample(state.last_sample);
  out->set_value(state.value);
  for (const WindowAcc& acc : state.open) {
    durable::v1::OpenWindowState* window = out->add_open();
    window->set_window(acc.window);
    window->set_n(acc.n);
    window->set_value(acc.value);
    window->set_last_ts(acc.last_ts);
    if (acc.trend != nullptr) SaveTrend(*acc.trend, window->mutable_trend());
    if (acc.histogram != nullptr) SaveHistogram(*acc.histogram, window->mutable_histogram());
  }
  if (state.trend != nullptr && state.trend->histogram != nullptr) {
    SaveHistogram(*state.trend->histogram, out->mutable_histogram());
  }
}

}  // namespace

void Aggregator::RunOnEveryShard(const std::function<void(size_t shard)>& fn) {
  std::vector<std::promise<void>> done(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) {
    pool_->Post(i, [&fn, &done, i] {
      fn(i);
      done[i].set_value();
    });
  }
  for (std::promise<void>& d : done) d.get_future().wait();
}

absl::StatusOr<std::string> Aggregator::SaveState() {
  absl::StatusOr<AggregatorSnapshot> snapshot = Snapshot(nullptr);
  if (!snapshot.ok()) return snapshot.status();
  return std::move(snapshot->state);
}

absl::StatusOr<AggregatorSnapshot> Aggregator::Snapshot(
    const std::function<absl::Status()>& at_cut) {
  {
    MutexLock lock(&mu_);
    while (flushing_ && !stopping_ && !snapshotting_) cv_.Wait(&mu_);
    if (stopping_ || snapshotting_) {
      return absl::FailedPreconditionError(
          "checkpoint: the export is stopping, or another snapshot is under way");
    }
    snapshotting_ = true;  // no flush starts until it ends
  }
  // What each shard saves, by its worker, behind the batches dispatched before the cut.
  struct Job {
    explicit Job(size_t shards) : series(shards), late(shards), done(shards) {}
    std::vector<std::vector<AggregationSeriesState>> series;
    std::vector<uint64_t> late;
    std::vector<std::promise<void>> done;
  };
  auto job = std::make_shared<Job>(shards_.size());
  AggregatorSnapshot snapshot;
  AggregatorState out;
  absl::Status cut_status;
  std::shared_ptr<Aggregator> self = shared_from_this();
  {
    MutexLock cut(&cut_mu_);
    if (at_cut) cut_status = at_cut();
    if (cut_status.ok()) {
      out.set_max_ts_ns(dispatched_max_ts_ns_);
      out.set_samples_accepted(dispatched_accepted_);
      out.set_samples_late(restored_late_);  // plus the shards' counts below
      for (const auto& [reason, count] : dispatched_rejections_) {
        durable::v1::RejectionState* r = out.add_rejections();
        r->set_reason(reason);
        r->set_count(count.count);
        r->set_example(count.example);
      }
      snapshot.streams.insert(streams_.begin(), streams_.end());
      {
        MutexLock lock(&mu_);  // no flush runs: these are the cut's
        for (int64_t cutoff : flushed_cutoffs_) out.add_flushed_cutoffs(cutoff);
        out.set_next_closable_ns(next_closable_ns_);
        out.set_windows_flushed(windows_flushed_);
      }
      for (size_t i = 0; i < shards_.size(); ++i) {
        pool_->Post(i, [self, job, i] {
          Shard& shard = *self->shards_[i];
          job->late[i] = shard.late;
          for (const AggregationSeries* series : shard.series) {
            SaveSeries(*series, self->config_.targets[series->target],
                       &job->series[i].emplace_back());
          }
          job->done[i].set_value();
        });
      }
    }
  }
  if (cut_status.ok()) {
    for (std::promise<void>& d : job->done) d.get_future().wait();
  }
  {
    MutexLock lock(&mu_);
    snapshotting_ = false;
    cv_.SignalAll();
  }
  Tick();  // a window that became closable meanwhile
  if (!cut_status.ok()) return cut_status;
  {
    MutexLock lock(&metrics_mu_);
    std::vector<std::pair<std::string, MetricInfo>> declared(declared_.begin(), declared_.end());
    std::sort(declared.begin(), declared.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [name, info] : declared) {
      durable::v1::DeclaredMetricState* d = out.add_declared();
      d->set_name(name);
      d->set_metric_type(static_cast<uint32_t>(info.type));
      d->set_value_kind(static_cast<uint32_t>(info.kind));
    }
  }
  {
    // Every output a saved series names was made before the cut; later ones do no harm (a
    // restored export makes them in the same order).
    MutexLock lock(&all_metrics_mu_);
    std::vector<const std::pair<const std::pair<size_t, std::string>, size_t>*> made;
    for (const auto& entry : all_metrics_index_) made.push_back(&entry);
    std::sort(made.begin(), made.end(),
              [](const auto* a, const auto* b) { return a->second < b->second; });
    for (const auto* entry : made) {
      durable::v1::AllMetricsOutputState* o = out.add_all_metrics_outputs();
      o->set_entry(static_cast<uint32_t>(entry->first.first));
      o->set_metric(entry->first.second);
    }
  }
  for (size_t i = 0; i < shards_.size(); ++i) {
    out.set_samples_late(out.samples_late() + job->late[i]);
    for (AggregationSeriesState& s : job->series[i]) *out.add_series() = std::move(s);
  }
  snapshot.state = out.SerializeAsString();
  return snapshot;
}

void Aggregator::RestoreStreams(const std::map<std::string, IngestStreamProgress>& streams) {
  MutexLock cut(&cut_mu_);
  for (const auto& [id, progress] : streams) streams_[id] = progress;
}

absl::Status Aggregator::RestoreState(absl::string_view bytes) {
  AggregatorState in;
  if (!in.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("checkpoint: the aggregator state does not parse");
  }
  if (in.flushed_cutoffs_size() != static_cast<int>(config_.targets.size())) {
    return absl::DataLossError(absl::StrCat("checkpoint: the state has ", in.flushed_cutoffs_size(),
                                            " targets, the export ", config_.targets.size()));
  }
  {
    MutexLock lock(&mu_);
    if (max_ts_ns_ != kNoWindow || samples_accepted_ != 0 || stopping_) {
      return absl::FailedPreconditionError(
          "checkpoint: a state is restored only into an aggregator without samples");
    }
  }
  auto metric_info = [](uint32_t type, uint32_t kind) -> std::optional<MetricInfo> {
    if (type > static_cast<uint32_t>(MetricType::kTrend) ||
        kind > static_cast<uint32_t>(ValueKind::kData)) {
      return std::nullopt;
    }
    return MetricInfo{static_cast<MetricType>(type), static_cast<ValueKind>(kind)};
  };
  // The outputs of "*" entries, made in the saved order, so that they get the saved numbers.
  for (int i = 0; i < in.all_metrics_outputs_size(); ++i) {
    const durable::v1::AllMetricsOutputState& o = in.all_metrics_outputs(i);
    if (o.entry() >= all_metrics_.size() ||
        AllMetricsOutput(o.entry(), o.metric()) != outputs_.size() + i) {
      return absl::DataLossError(absl::StrCat("checkpoint: the output of \"*\" entry ", o.entry(),
                                              " for ", o.metric(), " does not fit this export"));
    }
  }
  const size_t output_count = outputs_.size() + in.all_metrics_outputs_size();
  // The series, created in the saved order, then their state set by their shards' workers.
  std::vector<std::vector<std::pair<const AggregationSeries*, const AggregationSeriesState*>>>
      per_shard(shards_.size());
  for (const AggregationSeriesState& s : in.series()) {
    const std::optional<MetricInfo> info = metric_info(s.metric_type(), s.value_kind());
    if (s.output() >= output_count || !info) {
      return absl::DataLossError(absl::StrCat("checkpoint: a series of output ", s.output(),
                                              " does not fit this export's configuration"));
    }
    const Output& out = OutputAt(s.output());
    const TargetConfig& target = config_.targets[out.target];
    std::vector<Label> labels;
    for (const durable::v1::LabelPair& pair : s.labels()) {
      labels.push_back({pair.name(), pair.value()});
    }
    const OwnLabels own = EncodeOwnLabels(
        std::move(labels), RunIdIsCommon(target) ? target.test_run_id_label : std::string());
    const bool native_histogram = info->type == MetricType::kTrend && target.native_histograms;
    for (const durable::v1::OpenWindowState& w : s.open()) {
      if (native_histogram ? w.has_histogram() && RestoreHistogram(w.histogram()) == nullptr
                           : info->type == MetricType::kTrend && !RestoreTrend(w.trend()).ok()) {
        return absl::DataLossError("checkpoint: a trend window does not restore");
      }
    }
    if (native_histogram && s.has_histogram() && RestoreHistogram(s.histogram()) == nullptr) {
      return absl::DataLossError("checkpoint: a native histogram does not restore");
    }
    const size_t o = s.output();
    auto fill_family = [&](SeriesFamily* family) {
      FillFamily(o, *info, native_histogram, family);
    };
    SeriesStore::NewSeries spec{static_cast<uint32_t>(o), out.target, *info, native_histogram,
                                fill_family};
    std::string why;
    const AggregationSeries* series = series_->GetOrCreate(spec, own, &why);
    if (series == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("checkpoint: a series is refused: ", why));
    }
    per_shard[series->shard].emplace_back(series, &s);
  }
  RunOnEveryShard([&](size_t i) {
    Shard& shard = *shards_[i];
    for (const auto& [series, saved] : per_shard[i]) {
      SeriesState& state = series->state;
      state.next_open = saved->next_open();
      state.last_sample = saved->last_sample();
      state.value = saved->value();
      state.open.clear();
      for (const durable::v1::OpenWindowState& w : saved->open()) {
        WindowAcc& acc = state.open.emplace_back();
        acc.window = w.window();
        acc.n = w.n();
        acc.value = w.value();
        acc.last_ts = w.last_ts();
        if (series->native_histogram) {
          if (w.has_histogram()) acc.histogram = RestoreHistogram(w.histogram());  // checked
        } else if (series->info.type == MetricType::kTrend) {
          acc.trend = std::make_unique<TrendAccumulator>(*RestoreTrend(w.trend()));  // checked
        }
      }
      if (series->native_histogram && saved->has_histogram()) {
        state.trend = std::make_unique<TrendState>();
        state.trend->histogram = RestoreHistogram(saved->histogram());  // checked
      }
      if (!series->listed) {
        series->listed = true;
        shard.series.push_back(const_cast<AggregationSeries*>(series));
        shard.exported_per_target[series->target] += series->labels.name_count();
      }
    }
  });
  {
    MutexLock lock(&metrics_mu_);
    for (const durable::v1::DeclaredMetricState& d : in.declared()) {
      const std::optional<MetricInfo> info = metric_info(d.metric_type(), d.value_kind());
      if (info) declared_.emplace(d.name(), *info);
    }
  }
  {
    MutexLock cut(&cut_mu_);
    dispatched_max_ts_ns_ = in.max_ts_ns();
    dispatched_accepted_ = in.samples_accepted();
    restored_late_ = in.samples_late();
    for (const durable::v1::RejectionState& r : in.rejections()) {
      RejectionCount& count = dispatched_rejections_[r.reason()];
      count.count = r.count();
      count.example = r.example();
    }
  }
  MutexLock lock(&mu_);
  max_ts_ns_ = in.max_ts_ns();
  max_ts_seen_at_ = options_.clock();
  flushed_cutoffs_.assign(in.flushed_cutoffs().begin(), in.flushed_cutoffs().end());
  next_closable_ns_ = in.next_closable_ns();
  samples_accepted_ = in.samples_accepted();
  samples_late_ = in.samples_late();
  windows_flushed_ = in.windows_flushed();
  for (const durable::v1::RejectionState& r : in.rejections()) {
    RejectionCount& count = rejections_[r.reason()];
    count.count = r.count();
    count.example = r.example();
  }
  return absl::OkStatus();
}

}  // namespace rwexport
