// Remote-write 1.0 payloads: a prometheus.WriteRequest encoded by hand from exported series
// (no generated protobuf code on the hot path), and snappy block compression.
//
// Stateless functions; thread-safe.
#ifndef RWEXPORT_LIB_REMOTE_WRITE_ENCODER_H_
#define RWEXPORT_LIB_REMOTE_WRITE_ENCODER_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "lib/model/series.h"

namespace rwexport {

// The protobuf bytes of a prometheus.WriteRequest with one TimeSeries per element of `series`
// (in order; elements without points are skipped): the series' pre-encoded labels, its float
// points as Samples, then its histogram points as Histograms (integer counts: count_int,
// zero_count_int, spans and sint64 deltas, as given). Values are copied bit for bit, so stale
// markers survive.
std::string EncodeWriteRequest(absl::Span<const SeriesPoints> series);

// The bytes `series` adds to EncodeWriteRequest's output (its TimeSeries field: tag, length,
// labels, samples, histograms); 0 when it has no points.
size_t EncodedSeriesSize(const SeriesPoints& series);

// The bytes one point adds inside a TimeSeries (its Sample field: tag, length, sample).
size_t EncodedSampleSize(const Point& point);

// The bytes one histogram point adds inside a TimeSeries (its Histogram field).
size_t EncodedHistogramSize(const HistogramPoint& histogram);

// Snappy block format (not the framing format), as remote write requires. Fails only for
// inputs snappy cannot represent (4 GiB and more).
absl::StatusOr<std::string> SnappyCompress(absl::string_view raw);

// Inverse of SnappyCompress. Fails on corrupt input or when the decompressed size would exceed
// `max_size` bytes.
absl::StatusOr<std::string> SnappyUncompress(absl::string_view compressed,
                                             size_t max_size = size_t{256} << 20);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_REMOTE_WRITE_ENCODER_H_
