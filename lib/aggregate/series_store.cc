#include "lib/aggregate/series_store.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

constexpr size_t kFirstSeriesChunk = 32;
constexpr size_t kMaxSeriesChunk = 1024;
constexpr size_t kFirstBytesChunk = 4 * 1024;
constexpr size_t kMaxBytesChunk = 64 * 1024;

}  // namespace

SeriesStore::SeriesStore(std::vector<uint32_t> target_of_output, size_t targets, size_t shards,
                         size_t max_series_per_target, size_t max_series_per_export)
    : target_of_output_(std::move(target_of_output)),
      shards_(shards),
      max_series_per_target_(max_series_per_target),
      max_series_per_export_(max_series_per_export) {
  MutexLock lock(&mu_);
  family_of_output_.assign(target_of_output_.size(), nullptr);
  series_per_target_.assign(targets, 0);
  refused_per_target_.assign(targets, 0);
}

const AggregationSeries* SeriesStore::GetOrCreate(const NewSeries& spec, const OwnLabels& own,
                                                  std::string* why) {
  const uint32_t target = target_of_output_[spec.output];
  MutexLock lock(&mu_);
  auto it = index_.find(Key{spec.output, own.bytes});
  if (it != index_.end()) return *it;

  if (max_series_per_target_ > 0 && series_per_target_[target] >= max_series_per_target_) {
    ++refused_per_target_[target];
    *why = absl::StrCat("target ", target, " has ", max_series_per_target_,
                        " series (max_series_per_target)");
    return nullptr;
  }
  if (max_series_per_export_ > 0 && index_.size() >= max_series_per_export_) {
    ++refused_per_target_[target];
    *why =
        absl::StrCat("the export has ", max_series_per_export_, " series (max_series_per_export)");
    return nullptr;
  }
  const SeriesFamily*& family = family_of_output_[spec.output];
  if (family == nullptr) {
    SeriesFamily& made = families_.emplace_back();
    spec.fill_family(&made);
    family = &made;
  }
  AggregationSeries* series = Add();
  series->target = target;
  series->output = spec.output;
  series->info = spec.info;
  series->shard = static_cast<uint32_t>(
      absl::Hash<std::pair<size_t, absl::string_view>>()({size_t{spec.output}, own.bytes}) %
      shards_);
  series->native_histogram = spec.native_histogram;
  series->labels = Series(family, Keep(own.bytes), own.name_at, own.common_at);
  ++series_per_target_[target];
  index_.insert(series);
  return series;
}

std::vector<uint64_t> SeriesStore::series_per_target() const {
  MutexLock lock(&mu_);
  return series_per_target_;
}

std::vector<uint64_t> SeriesStore::refused_per_target() const {
  MutexLock lock(&mu_);
  return refused_per_target_;
}

AggregationSeries* SeriesStore::Add() {
  if (series_.empty() || series_.back().size() == series_.back().capacity()) {
    const size_t size = series_.empty() ? kFirstSeriesChunk
                                        : std::min(kMaxSeriesChunk, 2 * series_.back().capacity());
    series_.emplace_back().reserve(size);
  }
  return &series_.back().emplace_back();  // within capacity: earlier addresses stay
}

absl::string_view SeriesStore::Keep(absl::string_view data) {
  if (data.size() > kMaxBytesChunk / 8) {  // a rare long one gets a chunk of its own
    bytes_.push_back(std::make_unique<char[]>(data.size()));
    std::memcpy(bytes_.back().get(), data.data(), data.size());
    return absl::string_view(bytes_.back().get(), data.size());
  }
  if (bytes_left_ < data.size()) {
    bytes_chunk_ =
        bytes_chunk_ == 0 ? kFirstBytesChunk : std::min(kMaxBytesChunk, 2 * bytes_chunk_);
    bytes_.push_back(std::make_unique<char[]>(bytes_chunk_));
    next_byte_ = bytes_.back().get();
    bytes_left_ = bytes_chunk_;
  }
  char* out = next_byte_;
  if (!data.empty()) std::memcpy(out, data.data(), data.size());
  next_byte_ += data.size();
  bytes_left_ -= data.size();
  return absl::string_view(out, data.size());
}

}  // namespace rwexport
