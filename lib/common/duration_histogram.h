// A fixed-bucket histogram of durations (send and flush times), for figures and self-metrics.
// A value type; not thread-safe (callers guard it like the figures it belongs to).
#ifndef RWEXPORT_LIB_COMMON_DURATION_HISTOGRAM_H_
#define RWEXPORT_LIB_COMMON_DURATION_HISTOGRAM_H_

#include <algorithm>
#include <array>
#include <cstdint>

#include "absl/time/time.h"

namespace rwexport {

class DurationHistogram {
 public:
  // Upper bounds in seconds, Prometheus's default histogram buckets; one more bucket, +Inf,
  // follows.
  static constexpr std::array<double, 11> kBoundsSeconds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                            0.5,   1,    2.5,   5,    10};

  void Observe(absl::Duration d) {
    const double seconds = absl::ToDoubleSeconds(d);
    size_t i = 0;
    while (i < kBoundsSeconds.size() && seconds > kBoundsSeconds[i]) ++i;
    ++counts_[i];
    sum_seconds_ += seconds;
    max_seconds_ = count_ == 0 ? seconds : std::max(max_seconds_, seconds);
    ++count_;
  }

  // Per bucket (not cumulative); the last one is +Inf.
  const std::array<uint64_t, kBoundsSeconds.size() + 1>& counts() const { return counts_; }
  double sum_seconds() const { return sum_seconds_; }
  uint64_t count() const { return count_; }
  // The largest duration observed; 0 before the first.
  double max_seconds() const { return max_seconds_; }

 private:
  std::array<uint64_t, kBoundsSeconds.size() + 1> counts_{};
  double sum_seconds_ = 0;
  double max_seconds_ = 0;
  uint64_t count_ = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_DURATION_HISTOGRAM_H_
