#include "lib/ingest/stream_ingester.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

// A stream's cache of raw (metric, tags) combinations is cleared past this size, so a tag with
// unbounded values (a URL with ids) cannot grow it without end.
constexpr size_t kMaxCachedKeys = 200000;
// Metrics of a tag set found by scanning (StreamIngester::ResolveInTagset); more get an index.
constexpr size_t kMaxTagsetScan = 16;

// Whether a sample can be used whatever its series.
inline bool InBounds(const SampleBounds& bounds, int64_t ts, double value) {
  return bounds.Contains(ts) && std::isfinite(value);
}

// Records why a sample cannot be used (!InBounds), as the first reason that applies:
// invalid_value, invalid_timestamp, too_new, too_old. Out of line: the hot loop only compares.
ABSL_ATTRIBUTE_NOINLINE void RejectUnusable(int64_t ts, double value, int64_t highest,
                                            absl::string_view metric, Rejections* rejections) {
  const RejectionReason reason = !std::isfinite(value) ? RejectionReason::kInvalidValue
                                 : ts <= 0             ? RejectionReason::kInvalidTimestamp
                                 : ts > highest        ? RejectionReason::kTooNew
                                                       : RejectionReason::kTooOld;
  AddRejection(rejections, reason, std::string(metric));
}

// InBounds, recording the reason when not.
inline bool Usable(const SampleBounds& bounds, int64_t ts, double value, absl::string_view metric,
                   Rejections* rejections) {
  if (InBounds(bounds, ts, value)) return true;
  RejectUnusable(ts, value, bounds.highest, metric, rejections);
  return false;
}

// Routes a usable sample of a resolved series to the shards' work.
inline void RouteSample(const SeriesRoute& resolved, int64_t ts, double value,
                        RoutedBatch* routed) {
  if (resolved.over_limit != nullptr) {
    AddRejection(&routed->rejections, RejectionReason::kSeriesLimit, *resolved.over_limit);
    return;
  }
  ++routed->accepted;
  routed->max_ts = std::max(routed->max_ts, ts);
  for (const AggregationSeries* series : resolved.series) {
    routed->work[series->shard].push_back(Item{series, ts, value});
  }
}

// A declaration's tags in one string, until the series is resolved: per tag, the key's and
// the value's length (4 bytes each, native order) and bytes. One allocation instead of the
// generated code's three per tag.
std::string EncodePendingTags(const google::protobuf::RepeatedPtrField<v1::Tag>& tags) {
  size_t size = 0;
  for (const v1::Tag& tag : tags) size += 8 + tag.key().size() + tag.value().size();
  std::string out;
  out.reserve(size);
  auto append = [&out](const std::string& text) {
    const uint32_t n = static_cast<uint32_t>(text.size());
    out.append(reinterpret_cast<const char*>(&n), sizeof(n));
    out.append(text);
  };
  for (const v1::Tag& tag : tags) {
    append(tag.key());
    append(tag.value());
  }
  return out;
}

// Appends the (key, value) views of EncodePendingTags's `encoded` to `tags`.
void DecodePendingTags(absl::string_view encoded, std::vector<RawTag>* tags) {
  auto take = [&encoded] {
    uint32_t n;
    std::memcpy(&n, encoded.data(), sizeof(n));
    const absl::string_view text = encoded.substr(sizeof(n), n);
    encoded.remove_prefix(sizeof(n) + n);
    return text;
  };
  while (!encoded.empty()) {
    const absl::string_view key = take();
    tags->emplace_back(key, take());
  }
}

}  // namespace

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
  const std::string metric_name(metric);
  std::optional<MetricInfo> info = aggregator_->LookupMetric(metric_name);
  if (!info) {
    AddRejection(rejections, RejectionReason::kUnknownMetric, metric_name);
    return std::nullopt;
  }
  return aggregator_->ResolveSeries(metric, *info, tags);
}

size_t StreamIngester::RetainedBytes() const {
  // Constant time: the server reads it after every batch (Export::AddStreamRetainedBytes).
  return refs_.capacity() * sizeof(SeriesRef) + routes_.capacity() * sizeof(Route) +
         ref_metric_bytes_ + pending_.capacity() * (sizeof(std::pair<uint32_t, std::string>) + 1) +
         pending_tag_bytes_;
}

void StreamIngester::ReserveRefs(size_t needed) {
  needed = std::min<size_t>(needed, kMaxSeriesRefs);
  if (needed <= refs_.capacity()) return;
  const size_t capacity = std::max(needed, refs_.capacity() + refs_.capacity() / 4);
  refs_.reserve(capacity);
  routes_.reserve(capacity);
}

void StreamIngester::DeclareAll(
    const google::protobuf::RepeatedPtrField<v1::SeriesDeclaration>& series) {
  size_t needed = 0;
  for (const v1::SeriesDeclaration& decl : series) {
    needed = std::max<size_t>(needed, size_t{decl.ref()} + 1);
  }
  ReserveRefs(needed);
  for (const v1::SeriesDeclaration& decl : series) DeclareSeries(decl);
}

void StreamIngester::DeclareAll(const DecodedBatch& batch) {
  if (batch.series_declarations.empty()) return;
  ReserveRefs(size_t{batch.max_series_ref} + 1);
  v1::SeriesDeclaration decl;
  for (absl::string_view bytes : batch.series_declarations) {
    // Cannot fail: DecodeSampleBatch parsed the same bytes.
    if (ParseSeriesDeclaration(bytes, &decl)) DeclareSeries(decl);
  }
}

void StreamIngester::DeclareSeries(const v1::SeriesDeclaration& decl) {
  if (decl.ref() >= kMaxSeriesRefs) {
    AddRejection(&declaration_errors_, RejectionReason::kInvalidSeriesRef,
                 absl::StrCat("series declaration of \"", decl.metric(), "\": ref ", decl.ref(),
                              " is not below ", kMaxSeriesRefs));
    return;
  }
  if (decl.metric().empty()) {
    AddRejection(&declaration_errors_, RejectionReason::kMissingMetric,
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
  SeriesRef& ref = refs_[decl.ref()];
  auto [metric, inserted] = ref_metrics_.emplace(decl.metric());
  if (inserted) ref_metric_bytes_ += sizeof(std::string) + metric->capacity();
  ref.metric = *metric;
  ref.resolved = false;
  ref.series = Resolved{};
  std::string& pending = pending_[decl.ref()];
  pending_tag_bytes_ -= pending.capacity();  // a redeclared series not sampled yet
  pending = EncodePendingTags(decl.tags());
  pending_tag_bytes_ += pending.capacity();
}

const StreamIngester::Resolved* StreamIngester::ResolvePending(uint32_t ref_number,
                                                               Rejections* rejections) {
  SeriesRef* ref = &refs_[ref_number];
  auto pending = pending_.find(ref_number);
  if (pending == pending_.end()) return nullptr;  // cannot happen: unresolved means pending
  // Not through the tag-set cache: a declared series is resolved once, and caching its tags
  // too would double what the stream keeps per series.
  tag_pairs_.clear();
  DecodePendingTags(pending->second, &tag_pairs_);
  std::optional<Resolved> resolved = MakeResolved(ref->metric, tag_pairs_, rejections);
  if (!resolved) return nullptr;  // the metric may be declared later
  ref->series = *std::move(resolved);
  ref->resolved = true;
  pending_tag_bytes_ -= pending->second.capacity();
  pending_.erase(pending);
  if (pending_.empty()) pending_ = {};  // release its table too
  if (ref->series.series.size() <= kMaxRouted && ref->series.over_limit == nullptr) {
    Route& route = routes_[ref_number];
    route.count = static_cast<uint8_t>(ref->series.series.size());
    route.usable = true;
    for (uint8_t k = 0; k < route.count; ++k) {
      route.series[k] = ref->series.series[k];
      route.shard[k] = static_cast<uint16_t>(route.series[k]->shard);
      // More shards than a uint16_t holds: the slow path, which reads the series.
      if (route.series[k]->shard > UINT16_MAX) route.usable = false;
    }
  }
  return &ref->series;
}

absl::Status StreamIngester::Ingest(const v1::SampleBatch& batch, std::function<void()> done,
                                    DispatchTag* tag) {
  const v1::CompactSamples& compact = batch.compact();
  return IngestBatch(
      batch.metrics(), [this, &batch] { DeclareAll(batch.series()); },
      static_cast<size_t>(batch.samples_size()),
      [&batch](const auto& f) {
        for (const v1::Sample& s : batch.samples()) {
          f(s.metric(), s.tags(), s.time_unix_nano(), s.value());
        }
      },
      absl::MakeConstSpan(compact.refs().data(), compact.refs_size()),
      absl::MakeConstSpan(compact.time_unix_nano_delta().data(),
                          compact.time_unix_nano_delta_size()),
      absl::MakeConstSpan(compact.values().data(), compact.values_size()), std::move(done), tag);
}

absl::Status StreamIngester::Ingest(const DecodedBatch& batch, std::function<void()> done,
                                    DispatchTag* tag) {
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
      batch.declarations.metrics(), [this, &batch] { DeclareAll(batch); }, batch.samples.size(),
      [&batch](const auto& f) {
        for (const RawSample& s : batch.samples) {
          f(s.metric, EncodedTags{s.tags, s.tags_run}, s.time_unix_nano, s.value);
        }
      },
      batch.compact_refs, batch.compact_deltas, batch.compact_values, std::move(done), tag);
}

template <typename ForEachSample, typename DeclareAllSeries>
absl::Status StreamIngester::IngestBatch(
    const google::protobuf::RepeatedPtrField<v1::MetricDeclaration>& metrics,
    const DeclareAllSeries& declare_series, size_t sample_count,
    const ForEachSample& for_each_sample, absl::Span<const uint32_t> refs,
    absl::Span<const int64_t> deltas, absl::Span<const double> values, std::function<void()> done,
    DispatchTag* tag) {
  Aggregator& agg = *aggregator_;
  if (!agg.BeginIngest()) {
    return absl::FailedPreconditionError("the export is stopping; no more samples are accepted");
  }
  ApplyDeclarations(metrics);
  declare_series();
  const SampleBounds bounds = agg.Bounds();
  RoutedBatch routed;
  {
    const size_t shards = agg.shard_count();
    const size_t expected = (sample_count + refs.size()) / shards + 16;
    routed.work.reserve(shards);
    for (size_t i = 0; i < shards; ++i) routed.work.emplace_back(expected);
  }
  RouteSamples(for_each_sample, refs, deltas, values, bounds, &routed);
  accepted_ += routed.accepted;
  MergeRejections(&rejections_, routed.rejections);
  agg.Dispatch(std::move(routed), std::move(done), tag);
  return absl::OkStatus();
}

std::optional<uint32_t> StreamIngester::FirstUndeclaredRef(const DecodedBatch& batch) const {
  // The batch's own declarations are looked up only for refs the stream has not declared yet
  // (in practice the batch that declares them), from the refs the decoder kept: no parse.
  absl::flat_hash_set<uint32_t> in_batch;
  bool in_batch_filled = false;
  // With many declared series each route is a cache miss: the route of a ref a few ahead is
  // fetched while this one is checked (RouteCompact then finds them warm).
  constexpr size_t kPrefetchAhead = 8;
  const absl::Span<const uint32_t> refs = batch.compact_refs;
  for (size_t i = 0; i < refs.size(); ++i) {
    if (i + kPrefetchAhead < refs.size() && refs[i + kPrefetchAhead] < routes_.size()) {
      __builtin_prefetch(&routes_[refs[i + kPrefetchAhead]]);
    }
    const uint32_t ref = refs[i];
    // A usable route is a declared series; routes_ is denser than refs_ and RouteCompact reads
    // the same entry next, so most samples cost one cache miss here instead of two.
    if (ref < routes_.size() && routes_[ref].usable) continue;
    if (ref < refs_.size() && !refs_[ref].metric.empty()) continue;
    if (!in_batch_filled) {
      in_batch.insert(batch.series_declaration_refs.begin(), batch.series_declaration_refs.end());
      in_batch_filled = true;
    }
    if (ref < kMaxSeriesRefs && in_batch.contains(ref)) continue;
    return ref;
  }
  return std::nullopt;
}

void StreamIngester::ApplyDeclarations(
    const google::protobuf::RepeatedPtrField<v1::MetricDeclaration>& metrics) {
  for (const v1::MetricDeclaration& decl : metrics) {
    if (decl.type() == v1::METRIC_TYPE_UNSPECIFIED) {
      AddRejection(&declaration_errors_, RejectionReason::kMissingType, decl.name());
      continue;
    }
    // Values outside the enums (a newer or broken client) would be aggregated as nothing.
    if (!v1::MetricType_IsValid(decl.type()) || !v1::ValueKind_IsValid(decl.kind())) {
      AddRejection(
          &declaration_errors_, RejectionReason::kInvalidType,
          absl::StrCat("metric declaration \"", decl.name(), "\": unknown type ",
                       static_cast<int>(decl.type()), " or kind ", static_cast<int>(decl.kind())));
      continue;
    }
    MetricInfo info{static_cast<MetricType>(decl.type() - 1), static_cast<ValueKind>(decl.kind())};
    absl::Status declared = aggregator_->Declare(decl.name(), info);
    if (!declared.ok()) {
      AddRejection(&declaration_errors_,
                   IsValidMetricName(decl.name()) ? RejectionReason::kTypeConflict
                                                  : RejectionReason::kInvalidName,
                   std::string(declared.message()));
    }
  }
}

template <typename ForEachSample>
void StreamIngester::RouteSamples(const ForEachSample& for_each_sample,
                                  absl::Span<const uint32_t> refs, absl::Span<const int64_t> deltas,
                                  absl::Span<const double> values, const SampleBounds& bounds,
                                  RoutedBatch* routed) {
  // The tags of the previous sample, in this batch only.
  last_tags_ = nullptr;
  has_last_encoded_tags_ = false;
  for_each_sample([&](absl::string_view metric, const auto& tags, int64_t ts, double value) {
    if (!Usable(bounds, ts, value, metric, &routed->rejections)) return;
    const Resolved* resolved = Resolve(metric, tags, &routed->rejections);
    if (resolved == nullptr) return;
    RouteSample(*resolved, ts, value, routed);
  });
  last_tags_ = nullptr;
  has_last_encoded_tags_ = false;
  RouteCompact(refs, deltas, values, bounds, routed);
}

void StreamIngester::RouteCompact(absl::Span<const uint32_t> refs, absl::Span<const int64_t> deltas,
                                  absl::Span<const double> values, const SampleBounds& bounds,
                                  RoutedBatch* routed) {
  const size_t compact_size = refs.size();
  if (compact_size != deltas.size() || compact_size != values.size()) {
    AddRejection(&routed->rejections, RejectionReason::kCompactLengthMismatch,
                 absl::StrCat("refs: ", compact_size, ", time_unix_nano_delta: ", deltas.size(),
                              ", values: ", values.size()),
                 std::max({compact_size, deltas.size(), values.size()}));
    return;
  }
  constexpr size_t kPrefetchAhead = 8;
  // Locals, not routed's fields, in the loop: the compiler keeps them in registers.
  uint64_t accepted = 0;
  int64_t max_ts = routed->max_ts;
  std::vector<Items>& work = routed->work;
  uint64_t time = 0;  // unsigned: a hostile delta wraps instead of overflowing
  for (size_t i = 0; i < compact_size; ++i) {
    time += static_cast<uint64_t>(deltas[i]);
    const int64_t ts = static_cast<int64_t>(time);
    // Most samples: a declared series with a route (routes_), a usable sample.
    // The route of a sample a few ahead is fetched while this one is routed.
    if (i + kPrefetchAhead < compact_size && refs[i + kPrefetchAhead] < routes_.size()) {
      __builtin_prefetch(&routes_[refs[i + kPrefetchAhead]]);
    }
    if (refs[i] < routes_.size()) {
      const Route& r = routes_[refs[i]];
      if (r.usable && InBounds(bounds, ts, values[i])) {
        ++accepted;
        max_ts = std::max(max_ts, ts);
        for (uint32_t k = 0; k < r.count; ++k) {
          work[r.shard[k]].push_back(Item{r.series[k], ts, values[i]});
        }
        continue;
      }
    }
    SeriesRef* ref = refs[i] < refs_.size() ? &refs_[refs[i]] : nullptr;
    if (ref == nullptr || ref->metric.empty()) {
      AddRejection(&routed->rejections, RejectionReason::kUnknownSeriesRef,
                   absl::StrCat("ref ", refs[i]));
      continue;
    }
    if (!Usable(bounds, ts, values[i], ref->metric, &routed->rejections)) continue;
    const Resolved* resolved =
        ref->resolved ? &ref->series : ResolvePending(refs[i], &routed->rejections);
    if (resolved == nullptr) continue;
    routed->accepted += accepted;
    routed->max_ts = max_ts;
    accepted = 0;
    RouteSample(*resolved, ts, values[i], routed);
    max_ts = routed->max_ts;
  }
  routed->accepted += accepted;
  routed->max_ts = max_ts;
}

}  // namespace rwexport
