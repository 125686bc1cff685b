// Blocking ingest for tests: hands a batch to a StreamIngester and waits until its workers
// have applied it. Thread-compatible.
#ifndef RWEXPORT_TESTS_TESTING_INGEST_H_
#define RWEXPORT_TESTS_TESTING_INGEST_H_

#include "absl/status/status.h"
#include "lib/aggregate/aggregator.h"
#include "lib/common/mutex.h"
#include "lib/ingest/stream_ingester.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// Ingest's own error (the export is stopping), or OK once every sample was applied.
inline absl::Status IngestAndWait(StreamIngester& ingester, const v1::SampleBatch& batch) {
  Mutex mu;
  CondVar cv;
  bool done = false;
  absl::Status status = ingester.Ingest(batch, [&] {
    MutexLock lock(&mu);
    done = true;
    cv.Signal();
  });
  if (!status.ok()) return status;
  MutexLock lock(&mu);
  while (!done) cv.Wait(&mu);
  return absl::OkStatus();
}

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_INGEST_H_
