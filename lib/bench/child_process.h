// The two sides of a `rwexport bench` phase's child process. The parent spawns the server in
// a child (so its CPU time and peak memory are its own, apart from the load generator's) and
// talks to it over the child's stdin and stdout: the child first writes "port N", then answers
// each "usage" line with its usage, until its stdin closes; then it stops its server and exits.
#ifndef RWEXPORT_LIB_BENCH_CHILD_PROCESS_H_
#define RWEXPORT_LIB_BENCH_CHILD_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rwexport {

// CPU and memory of a process, as the child reports them.
struct ProcessUsage {
  double cpu_seconds = 0;    // user + system
  uint64_t peak_rss_kb = 0;  // VmHWM
  uint64_t rss_kb = 0;       // VmRSS
  // Bytes handed out by malloc and not freed (HeapInUseBytes, lib/common/allocator.h), in KiB: the
  // part of the RSS that is live heap, as opposed to memory the allocator keeps for reuse.
  uint64_t heap_in_use_kb = 0;
  // The RSS split (/proc/PID/status RssAnon, RssFile: anonymous memory, and pages of the
  // binary and its libraries) and the threads.
  uint64_t rss_anon_kb = 0;
  uint64_t rss_file_kb = 0;
  uint64_t threads = 0;
  // jemalloc's resident memory and its metadata (CurrentAllocatorResidency), in KiB.
  uint64_t allocator_resident_kb = 0;
  uint64_t allocator_metadata_kb = 0;
};

// This process's usage: getrusage(RUSAGE_SELF), /proc/self/status and HeapInUseBytes.
ProcessUsage CurrentProcessUsage();

// Resident memory (VmRSS) of process `pid`, from /proc/<pid>/status.
// Errors: the file cannot be read or has no VmRSS line (e.g. the process has exited).
absl::StatusOr<uint64_t> ProcessRssKb(int pid);

// The child side of a phase: tells the parent `port` on stdout, then answers each "usage"
// line on stdin with its usage, until stdin closes. Returns then (the caller stops its server).
absl::Status ServeBenchChild(int port);

// The parent side: a running child process. Thread-compatible.
class ChildProcess {
 public:
  // Starts argv[0] with `argv`, its stdin and stdout piped to us, and waits (up to 30 s) for
  // "port N".
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv);
  // Closes its stdin (it stops its server and exits) and reaps it; killed after 30 s.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Asks the child for its usage (answered within 30 s).
  absl::StatusOr<ProcessUsage> Usage();

 private:
  ChildProcess(pid_t pid, int to_child, int from_child)
      : pid_(pid), to_child_(to_child), from_child_(from_child) {}
  // The next line from the child, without its newline (bounded by 30 s).
  absl::StatusOr<std::string> ReadLine();

  const pid_t pid_;
  const int to_child_;
  const int from_child_;
  int port_ = 0;
  std::string buffer_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_BENCH_CHILD_PROCESS_H_
