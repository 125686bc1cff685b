// The server side of one `rwexport bench` phase. `rwexport bench` starts itself again as a
// child process with --bench_serve=rwexport|null_sink; the child runs the server in-process on
// 127.0.0.1:0 and talks to its parent over stdin/stdout (lib/client/bench.h) until stdin
// closes. Kept apart from lib/client because it links the server.
#ifndef RWEXPORT_CLIENT_BENCH_SERVE_H_
#define RWEXPORT_CLIENT_BENCH_SERVE_H_

#include <cstddef>

#include "lib/client/bench.h"

namespace rwexport {

// Serves until stdin closes, then stops the server. `workers`: aggregation threads (rwexport
// only; 0 means one per core). Returns the process exit code; errors go to stderr.
int RunBenchServe(BenchServer server, size_t workers);

}  // namespace rwexport

#endif  // RWEXPORT_CLIENT_BENCH_SERVE_H_
