// Series for tests that build batches of points by hand.
#ifndef RWEXPORT_TESTS_TESTING_SERIES_H_
#define RWEXPORT_TESTS_TESTING_SERIES_H_

#include <vector>

#include "lib/model/series.h"

namespace rwexport {

// MakeSeries(labels), kept until the test binary exits, so that the points naming it need no
// PointBatch::owner. Thread-safe.
const Series* TestSeries(std::vector<Label> labels);

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_SERIES_H_
