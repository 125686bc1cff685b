// `rwexport bench` (see lib/bench/bench.h): the command's flags, and the child process it
// starts for each phase (`rwexport bench --bench_serve=rwexport|null_sink`), which runs the real
// server (server/server.h) or the null sink in-process on 127.0.0.1:0 until its stdin closes.
#ifndef RWEXPORT_CLIENT_BENCH_COMMAND_H_
#define RWEXPORT_CLIENT_BENCH_COMMAND_H_

#include <vector>

namespace rwexport {

// Runs the command with its positional `args` (flags already parsed); the process exit code.
int RunBenchCommand(const std::vector<char*>& args);

}  // namespace rwexport

#endif  // RWEXPORT_CLIENT_BENCH_COMMAND_H_
