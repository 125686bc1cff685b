#include "tests/testing/series.h"

#include <utility>

#include "lib/common/mutex.h"

namespace rwexport {

const Series* TestSeries(std::vector<Label> labels) {
  static Mutex mu;
  static auto* kept = new std::vector<SeriesPtr>();  // never freed: reachable, not leaked
  SeriesPtr series = MakeSeries(std::move(labels));
  MutexLock lock(&mu);
  kept->push_back(series);
  return series.get();
}

}  // namespace rwexport
