#include "lib/export/delivery_mark.h"

#include <algorithm>
#include <iterator>

namespace rwexport {
namespace {

void RaiseTo(std::atomic<int64_t>* value, int64_t to) {
  int64_t now = value->load();
  while (now < to && !value->compare_exchange_weak(now, to)) {
  }
}

}  // namespace

void DeliveryMark::SuppressThrough(int64_t ms) {
  suppress_through_.store(ms);
  RaiseTo(&recorded_, ms);
  RaiseTo(&enqueued_max_, ms);
}

int64_t DeliveryMark::Filter(PointBatch* batch, uint64_t* removed_out, int64_t also_through) {
  if (removed_out != nullptr) *removed_out = 0;
  int64_t max_ts = 0;
  for (const SeriesPoints& s : batch->series) {
    if (!s.empty()) max_ts = std::max(max_ts, s.max_timestamp_ms());
  }
  const int64_t through = std::max(suppress_through_.load(), also_through);
  if (through <= 0) return max_ts;
  uint64_t removed = 0;
  for (SeriesPoints& s : batch->series) {
    const size_t before = s.size();
    s.points.erase(std::remove_if(s.points.begin(), s.points.end(),
                                  [through](const Point& p) { return p.timestamp_ms <= through; }),
                   s.points.end());
    s.histograms.erase(
        std::remove_if(s.histograms.begin(), s.histograms.end(),
                       [through](const HistogramPoint& p) { return p.timestamp_ms <= through; }),
        s.histograms.end());
    removed += before - s.size();
  }
  if (removed == 0) return max_ts;
  batch->series.erase(std::remove_if(batch->series.begin(), batch->series.end(),
                                     [](const SeriesPoints& s) { return s.empty(); }),
                      batch->series.end());
  suppressed_ += removed;
  if (removed_out != nullptr) *removed_out = removed;
  return max_ts;
}

void DeliveryMark::ResendThrough(int64_t ms) { resend_through_.store(ms); }

PointBatch DeliveryMark::TakeResend(PointBatch* batch) {
  PointBatch resend;
  const int64_t through = resend_through_.load();
  if (through <= 0) return resend;
  uint64_t taken = 0;
  for (SeriesPoints& s : batch->series) {
    if (s.empty() || s.min_timestamp_ms() > through) continue;
    // Timestamps increase: the points at or before the bound come first.
    const size_t floats =
        std::partition_point(s.points.begin(), s.points.end(),
                             [through](const Point& p) { return p.timestamp_ms <= through; }) -
        s.points.begin();
    const size_t histograms = std::partition_point(s.histograms.begin(), s.histograms.end(),
                                                   [through](const HistogramPoint& p) {
                                                     return p.timestamp_ms <= through;
                                                   }) -
                              s.histograms.begin();
    SeriesPoints& early = resend.series.emplace_back();
    early.series = s.series;
    early.name = s.name;
    early.points.assign(s.points.begin(), s.points.begin() + floats);
    s.points.erase(s.points.begin(), s.points.begin() + floats);
    early.histograms.assign(std::make_move_iterator(s.histograms.begin()),
                            std::make_move_iterator(s.histograms.begin() + histograms));
    s.histograms.erase(s.histograms.begin(), s.histograms.begin() + histograms);
    taken += early.size();
  }
  if (taken == 0) return resend;
  resend.owner = batch->owner;
  batch->series.erase(std::remove_if(batch->series.begin(), batch->series.end(),
                                     [](const SeriesPoints& s) { return s.empty(); }),
                      batch->series.end());
  resent_ += taken;
  return resend;
}

void DeliveryMark::Enqueued(int64_t max_ts_ms) { RaiseTo(&enqueued_max_, max_ts_ms); }

std::optional<int64_t> DeliveryMark::Next(const std::function<bool()>& nothing_queued) const {
  const int64_t candidate = enqueued_max_.load();
  if (candidate <= recorded_.load()) return std::nullopt;
  if (!nothing_queued()) return std::nullopt;
  return candidate;
}

void DeliveryMark::Recorded(int64_t ms) { RaiseTo(&recorded_, ms); }

}  // namespace rwexport
