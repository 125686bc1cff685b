#include "lib/remote_write/request_plan.h"

#include <algorithm>
#include <map>
#include <utility>

#include "lib/remote_write/encoder.h"

namespace rwexport {
namespace {

// Sets the point count and timestamp range of `piece` from its content.
void Measure(Piece& piece) {
  piece.points = 0;
  for (const SeriesPoints& sp : piece.content) {
    piece.points += sp.size();
    piece.min_timestamp_ms = std::min(piece.min_timestamp_ms, sp.min_timestamp_ms());
    piece.max_timestamp_ms = std::max(piece.max_timestamp_ms, sp.max_timestamp_ms());
  }
}

}  // namespace

std::vector<Piece> CutIntoPieces(PointBatch batch, size_t max_points, size_t max_bytes,
                                 uint64_t* next_chain) {
  std::vector<Piece> out;
  Piece current;
  size_t current_bytes = 0;
  auto flush = [&] {
    if (current.content.empty()) return;
    out.push_back(std::move(current));
    current = Piece();
    current_bytes = 0;
  };
  for (SeriesPoints& sp : batch.series) {
    const size_t n = sp.size();  // float points, then histogram points
    if (n == 0) continue;
    const size_t size = EncodedSeriesSize(sp);
    if (n > max_points || size > max_bytes) {
      flush();
      const uint64_t chain = (*next_chain)++;
      // A TimeSeries holding some of the points: tag, length (at most 10 bytes), labels.
      const size_t overhead = 11 + sp.series->encoded_labels_size(sp.name);
      size_t begin = 0;
      while (begin < n) {
        size_t end = begin;
        size_t bytes = overhead;
        while (end < n && end - begin < max_points) {
          const size_t floats = sp.points.size();
          const size_t sample = end < floats ? EncodedSampleSize(sp.points[end])
                                             : EncodedHistogramSize(sp.histograms[end - floats]);
          if (end > begin && bytes + sample > max_bytes) break;
          bytes += sample;
          ++end;
        }
        Piece piece;
        piece.content.push_back(sp.Slice(begin, end));
        piece.points = end - begin;
        piece.chain = chain;
        out.push_back(std::move(piece));
        begin = end;
      }
      continue;
    }
    if (current.points + n > max_points || current_bytes + size > max_bytes) flush();
    current.points += n;
    current_bytes += size;
    current.content.push_back(std::move(sp));
  }
  flush();
  for (Piece& piece : out) Measure(piece);
  return out;
}

std::vector<PointBatch> SplitByTimestamp(PointBatch batch) {
  std::map<int64_t, size_t> windows;  // timestamp -> its batch in `out`
  for (const SeriesPoints& s : batch.series) {
    for (const Point& p : s.points) windows.emplace(p.timestamp_ms, 0);
    for (const HistogramPoint& h : s.histograms) windows.emplace(h.timestamp_ms, 0);
  }
  std::vector<PointBatch> out;
  if (windows.size() <= 1) {
    out.push_back(std::move(batch));
    return out;
  }
  out.resize(windows.size());
  size_t next = 0;
  for (auto& [timestamp, at] : windows) {
    at = next;
    out[next++].owner = batch.owner;
  }
  // A series has at most one point per timestamp (they strictly increase).
  for (SeriesPoints& s : batch.series) {
    for (const Point& p : s.points) {
      SeriesPoints& one = out[windows[p.timestamp_ms]].series.emplace_back();
      one.series = s.series;
      one.name = s.name;
      one.points.push_back(p);
    }
    for (HistogramPoint& h : s.histograms) {
      SeriesPoints& one = out[windows[h.timestamp_ms]].series.emplace_back();
      one.series = s.series;
      one.name = s.name;
      one.histograms.push_back(std::move(h));
    }
  }
  return out;
}

std::array<Piece, 2> SplitInHalves(std::vector<SeriesPoints> content, uint64_t points,
                                   uint64_t chain, uint64_t* next_chain) {
  std::array<Piece, 2> halves;
  if (content.size() >= 2) {
    // Whole series to each half, about half of the points each; disjoint series may travel
    // in parallel.
    const uint64_t half = points / 2;
    uint64_t taken = 0;
    size_t i = 0;
    for (; i + 1 < content.size() && (i == 0 || taken < half); ++i) {
      taken += content[i].size();
      halves[0].content.push_back(std::move(content[i]));
    }
    for (; i < content.size(); ++i) halves[1].content.push_back(std::move(content[i]));
  } else {
    // One series: its first points, then the rest, one after the other.
    SeriesPoints& sp = content.front();
    const size_t middle = sp.size() / 2;
    halves[0].content.push_back(sp.Slice(0, middle));
    halves[1].content.push_back(sp.Slice(middle, sp.size()));
    if (chain == 0) chain = (*next_chain)++;
  }
  for (Piece& piece : halves) {
    piece.chain = chain;
    Measure(piece);
  }
  return halves;
}

absl::StatusOr<std::string> EncodeBody(absl::Span<const SeriesPoints> content) {
  return SnappyCompress(EncodeWriteRequest(content));
}

}  // namespace rwexport
