// A stream's ingester: turns the batches of one StreamSamples stream into work for its
// export's aggregator. It applies the batch's metric and series declarations, validates each
// sample (timestamp bounds, value, known metric), resolves the series it feeds through a
// per-stream tag-set cache (self-describing samples) or the stream's declared series and
// their routes (compact samples), and dispatches the routed samples to the aggregator's shards.
//
// Thread-safety: a StreamIngester belongs to one stream and must not be used from two threads
// at once.
#ifndef RWEXPORT_LIB_INGEST_STREAM_INGESTER_H_
#define RWEXPORT_LIB_INGEST_STREAM_INGESTER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "lib/aggregate/aggregator.h"
#include "lib/aggregate/rejections.h"
#include "lib/aggregate/series_store.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/model/metric.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// Turns one stream's batches into work for the aggregator's shards. Caches, per raw
// (metric, tags) combination, the series it feeds, so a repeated combination costs one hash
// lookup.
class StreamIngester {
 public:
  explicit StreamIngester(std::shared_ptr<Aggregator> aggregator);

  // Series references of compact mode (v1::SeriesDeclaration) must be below this.
  static constexpr uint32_t kMaxSeriesRefs = uint32_t{1} << 20;

  // Applies the batch's metric and series declarations, validates each sample (the
  // self-describing ones, then the compact ones), and routes the valid ones to the shards.
  // `done` runs exactly once, on some thread, when every sample has been applied (at once if
  // there is nothing to apply). Returns FailedPrecondition if the export is stopping (then
  // `done` is not called and nothing is counted).
  // `tag` (optional): the batch's stream and sequence, handed to the aggregator's Dispatch for
  // checkpoints (aggregator.h DispatchTag).
  absl::Status Ingest(const v1::SampleBatch& batch, std::function<void()> done,
                      DispatchTag* tag = nullptr);

  // The same for a batch decoded from its bytes (DecodeSampleBatch, which the bytes must
  // outlive until this returns), with the same results as Ingest of the equal v1::SampleBatch.
  // Tags this stream has not seen before are checked first (ParseTags); a bad one refuses the
  // whole batch with InvalidArgument naming the sample ("sample 17: tags: tag 2: value:
  // invalid UTF-8") before anything is applied or counted, and `done` is not called.
  absl::Status Ingest(const DecodedBatch& batch, std::function<void()> done,
                      DispatchTag* tag = nullptr);

  // The bytes this stream keeps for its compact-mode declarations: the capacity of its
  // per-reference vectors, the declarations not yet resolved (their encoded tags) and the
  // metric names they share. Not the aggregation series they feed (the export's).
  size_t RetainedBytes() const;
  // Applies only the batch's metric and series declarations (for a batch whose samples were
  // applied before: a resent duplicate), counting refusals as Ingest does.
  void Declare(const DecodedBatch& batch) {
    ApplyDeclarations(batch.declarations.metrics());
    DeclareAll(batch);
  }

  // The first reference of the batch's compact samples that is neither declared on this
  // stream nor by the batch itself, if any.
  std::optional<uint32_t> FirstUndeclaredRef(const DecodedBatch& batch) const;

  uint64_t accepted() const { return accepted_; }
  uint64_t rejected() const;
  const Rejections& rejections() const { return rejections_; }
  // Declarations that were refused, by reason ("type_conflict", "invalid_name",
  // "missing_type"); the example is the full message. Samples of a metric keep the type the
  // export already knows.
  const Rejections& declaration_errors() const { return declaration_errors_; }
  Aggregator& aggregator() { return *aggregator_; }

 private:
  using Resolved = SeriesRoute;
  // A series declared on the stream (compact mode), by reference; kept inline in refs_, so a
  // declared series costs the stream this plus its Route (about 100 bytes; RetainedBytes).
  struct SeriesRef {
    absl::string_view metric;  // in ref_metrics_; empty: not declared
    bool resolved = false;
    Resolved series;  // once resolved
  };
  // A sample's tags still encoded (RawSample::tags, tags_run), checked by ParseTags already.
  struct EncodedTags {
    absl::string_view bytes;
    uint32_t run;
  };
  // The body of both Ingest overloads: ApplyDeclarations, declare_series(), RouteSamples,
  // then the aggregator's Dispatch. `for_each_sample(f)` calls f(metric, tags, time, value)
  // for each self-describing sample in order, tags being what Resolve takes.
  template <typename ForEachSample, typename DeclareAllSeries>
  absl::Status IngestBatch(const google::protobuf::RepeatedPtrField<v1::MetricDeclaration>& metrics,
                           const DeclareAllSeries& declare_series, size_t sample_count,
                           const ForEachSample& for_each_sample, absl::Span<const uint32_t> refs,
                           absl::Span<const int64_t> deltas, absl::Span<const double> values,
                           std::function<void()> done, DispatchTag* tag);
  // Declares the batch's metrics to the export; refusals are counted in declaration_errors_.
  void ApplyDeclarations(const google::protobuf::RepeatedPtrField<v1::MetricDeclaration>& metrics);
  // Binds the batch's series declarations to this stream (DeclareSeries): parsed ones, or
  // DecodedBatch::series_declarations parsed one at a time into one reused message.
  void DeclareAll(const google::protobuf::RepeatedPtrField<v1::SeriesDeclaration>& series);
  void DeclareAll(const DecodedBatch& batch);
  // Validates each sample (the self-describing ones, then the compact ones) and routes the
  // usable ones to the shards' work in `routed`; counts the others in routed->rejections.
  template <typename ForEachSample>
  void RouteSamples(const ForEachSample& for_each_sample, absl::Span<const uint32_t> refs,
                    absl::Span<const int64_t> deltas, absl::Span<const double> values,
                    const SampleBounds& bounds, RoutedBatch* routed);
  // The compact part of RouteSamples: columns of (ref, time delta, value).
  void RouteCompact(absl::Span<const uint32_t> refs, absl::Span<const int64_t> deltas,
                    absl::Span<const double> values, const SampleBounds& bounds,
                    RoutedBatch* routed);
  // Nullptr if the metric is unknown (the reason is recorded in `rejections`).
  const Resolved* Resolve(absl::string_view metric,
                          const google::protobuf::RepeatedPtrField<v1::Tag>& tags,
                          Rejections* rejections);
  const Resolved* Resolve(absl::string_view metric, EncodedTags tags, Rejections* rejections);
  // The metric's entry in the current tag set (tagset_, whose key in tagsets_ is `tags_key`),
  // made from tag_pairs_ (filled by the caller) if the tag set has none yet.
  const Resolved* ResolveInTagset(absl::string_view metric, absl::string_view tags_key,
                                  Rejections* rejections);
  // The series a (metric, tags) combination feeds, created as needed; nullopt if the metric is
  // unknown (the reason is recorded in `rejections`).
  std::optional<Resolved> MakeResolved(absl::string_view metric, absl::Span<const RawTag> tags,
                                       Rejections* rejections);
  // Binds decl.ref for this stream's later compact samples; refused ones are counted in
  // declaration_errors_.
  void DeclareSeries(const v1::SeriesDeclaration& decl);
  // Sizes refs_ and routes_ for references below `needed` (growing capacity by at least a
  // quarter, not doubling it: the slack is kept for the stream's life).
  void ReserveRefs(size_t needed);
  // Resolves declared series `ref` on its first sample; nullptr while its metric is unknown.
  const Resolved* ResolvePending(uint32_t ref, Rejections* rejections);

  std::shared_ptr<Aggregator> aggregator_;
  // The metrics seen with one tag set, and the series each feeds. k6 sends about ten metrics
  // with each tag set (http_reqs, http_req_duration, ...), so the tag set is stored once and
  // its metrics are scanned; a tag set with many metrics gets an index.
  struct Tagset {
    struct Entry {
      absl::string_view metric;  // in metric_names_
      Resolved resolved;
    };
    std::vector<Entry> entries;
    std::unique_ptr<absl::flat_hash_map<absl::string_view, size_t>> index;  // into entries
  };
  // By the tags part of the raw key ("\0key\1value..."), or for encoded tags by their bytes
  // (which never start with '\0'; an empty key means no tags either way). An entry with
  // encoded tags means those bytes passed ParseTags. Cleared when it holds kMaxCachedKeys
  // (metric, tag set) combinations, so a tag with unbounded values cannot grow it without end.
  absl::flat_hash_map<std::string, Tagset> tagsets_;
  size_t cached_combinations_ = 0;
  // The names of the metrics in tagsets_, stored once.
  absl::node_hash_set<std::string> metric_names_;
  Tagset* tagset_ = nullptr;       // of the previous sample's tags
  std::string tags_key_;           // reused buffer
  std::vector<RawTag> tag_pairs_;  // reused buffer: the tags of a sample being resolved
  // Compact mode: declared series by reference (SeriesRef::metric empty: not declared).
  std::vector<SeriesRef> refs_;
  // Their metric names, stored once (a stream declares many series of few metrics).
  absl::node_hash_set<std::string> ref_metrics_;
  // The tags of declared series not resolved yet (EncodePendingTags), by reference; dropped
  // on the first sample. Most series get one soon, so this is emptied and released.
  absl::flat_hash_map<uint32_t, std::string> pending_;
  // For RetainedBytes: the capacity of pending_'s strings and of ref_metrics_'s (with their
  // std::string), kept as they change.
  size_t pending_tag_bytes_ = 0;
  size_t ref_metric_bytes_ = 0;
  // By reference, beside refs_ and denser: for a declared series resolved within the limits
  // to at most kMaxRouted aggregation series (most feed none, one or two), those series; the
  // compact loop's fast path. `usable` is false otherwise.
  static constexpr size_t kMaxRouted = 2;
  // The shards are copied beside the series, so the loop does not read each series (a cache
  // miss per sample with 100k series); the record stays 24 bytes.
  struct Route {
    const AggregationSeries* series[kMaxRouted] = {};
    uint16_t shard[kMaxRouted] = {};
    uint8_t count = 0;
    bool usable = false;
  };
  std::vector<Route> routes_;
  // The previous sample's tags, in the batch being ingested (null between batches).
  const google::protobuf::RepeatedPtrField<v1::Tag>* last_tags_ = nullptr;
  // The same for encoded tags: their RawSample::tags_run.
  bool has_last_encoded_tags_ = false;
  uint32_t last_encoded_tags_run_ = 0;
  uint64_t accepted_ = 0;
  Rejections rejections_;
  Rejections declaration_errors_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_INGEST_STREAM_INGESTER_H_
