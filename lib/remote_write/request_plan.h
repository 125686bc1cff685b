// How a batch of points becomes HTTP requests: cut by the per-request caps, and halved when a
// target answers 413. Pure functions; thread-safe.
//
// Order: a series is cut only when it alone exceeds a cap; its pieces then share a non-zero
// chain id, and the sender starts a piece only after the one before it has ended, so the
// points of one series always arrive in order.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_REQUEST_PLAN_H_
#define RWEXPORT_LIB_REMOTE_WRITE_REQUEST_PLAN_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "lib/model/series.h"

namespace rwexport {

// The content of one request, before encoding.
struct Piece {
  std::vector<SeriesPoints> content;
  uint64_t points = 0;
  // Non-zero for the pieces of one series too long for a single request.
  uint64_t chain = 0;
  int64_t min_timestamp_ms = std::numeric_limits<int64_t>::max();
  int64_t max_timestamp_ms = std::numeric_limits<int64_t>::min();
};

// Cuts `batch` into requests of at most `max_points` points and (but for a single point)
// `max_bytes` encoded bytes, in order. A series is cut only when it alone exceeds a cap: its
// pieces share a chain id taken from `*next_chain`.
std::vector<Piece> CutIntoPieces(PointBatch batch, size_t max_points, size_t max_bytes,
                                 uint64_t* next_chain);

// `batch` as one batch per timestamp (an aggregation window: every point of a window carries
// its end), oldest first, each with the batch's owner: a recovered export's re-sent windows
// travel one window per request, so that a target refusing one window (it holds a later one)
// refuses no other with it. A batch with one timestamp (or none) is returned as it is.
std::vector<PointBatch> SplitByTimestamp(PointBatch batch);

// The two halves of a request answered 413 (`content` holds `points` > 1 points), in order:
// with several series, whole series to each half, about half of the points each (disjoint
// series, so they keep `chain`); with one series, its first points then the rest, which share
// `chain` or, when it is 0, a new one from `*next_chain`.
std::array<Piece, 2> SplitInHalves(std::vector<SeriesPoints> content, uint64_t points,
                                   uint64_t chain, uint64_t* next_chain);

// snappy(WriteRequest) of `content`: a request's body.
absl::StatusOr<std::string> EncodeBody(absl::Span<const SeriesPoints> content);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_REQUEST_PLAN_H_
