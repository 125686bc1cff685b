// Internal to the influx endpoint (server/influx_endpoint.cc, influx_write.cc): the state of
// one HTTP request, of a db being written to, and of a write handed to an ingester.
#ifndef RWEXPORT_SERVER_INFLUX_REQUEST_H_
#define RWEXPORT_SERVER_INFLUX_REQUEST_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lib/aggregate/rejections.h"
#include "lib/common/mutex.h"
#include "lib/export/export.h"
#include "lib/ingest/stream_ingester.h"
#include "server/influx_endpoint.h"

namespace rwexport {

// One HTTP request, from its first callback to MHD's completion notice.
struct InfluxEndpoint::Request {
  enum class Kind { kWrite, kQuery };
  Kind kind = Kind::kWrite;
  std::string body;
  size_t held = 0;  // bytes of body counted in pending_bytes_
  bool too_large = false;
  bool overloaded = false;
  // Set once the answer is known and the samples applied (then the final call sends it).
  Mutex mu;
  bool applied ABSL_GUARDED_BY(mu) = false;
  // False while the batch is being written to the write-ahead log (with --data_dir).
  bool durable ABSL_GUARDED_BY(mu) = true;
  // Set when it could not be: the answer then (507 or 503), whatever the write's own.
  unsigned int wal_status ABSL_GUARDED_BY(mu) = 0;
  std::string wal_message ABSL_GUARDED_BY(mu);
  bool suspended ABSL_GUARDED_BY(mu) = false;
  bool answered = false;
  unsigned int status = 0;
  std::string message;  // error message; empty for 204
};

// A db being written to: its export, and the ingesters its writes use.
struct InfluxEndpoint::Db {
  std::string name;
  std::string export_id;
  std::shared_ptr<Export> exp;
  bool auto_started = false;
  std::atomic<int64_t> last_write_ns{0};
  std::atomic<int> writing{0};
  Mutex mu;
  std::vector<std::unique_ptr<StreamIngester>> idle ABSL_GUARDED_BY(mu);
  size_t ingesters ABSL_GUARDED_BY(mu) = 0;
};

// The ingester a write was handed to, and its counts before the write.
struct InfluxEndpoint::Handed {
  std::shared_ptr<Db> db;
  std::unique_ptr<StreamIngester> ingester;
  uint64_t accepted_before = 0;
  Rejections rejected_before;
  // The write's sequence in the log's "influx" stream, assigned at dispatch (in dispatch
  // order, so a checkpoint can tell which writes its state holds).
  uint64_t sequence = 0;
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_INFLUX_REQUEST_H_
