// The input of `rwexport replay`: a k6 result file, standard input, or a file still being
// written and followed like `tail -f`, read as a K6ByteSource.
//
// A live input (a pipe, FIFO, socket or terminal, or any followed input) is read as bytes
// arrive: whenever the reader would wait, it calls `on_wait` first, so the caller can send
// what it has (`rwexport replay --flush_interval`). A followed regular file is watched with
// inotify; when it shrinks (truncated by a new k6 run) reading starts again from its start.
//
// Not thread-safe: one thread reads. The stop descriptor may be made readable from anywhere.
#ifndef RWEXPORT_LIB_CLIENT_LIVE_INPUT_H_
#define RWEXPORT_LIB_CLIENT_LIVE_INPUT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/k6/results_reader.h"

namespace rwexport {

struct LiveInputOptions {
  // At the end of input, wait for more instead of ending (a regular file: `tail -f`; a pipe
  // still ends when its writer closes it).
  bool follow = false;
  // follow: end after this long without new bytes (and, for a file that does not exist yet,
  // without it appearing); zero: never.
  absl::Duration idle_timeout = absl::ZeroDuration();
  // Once this descriptor is readable (e.g. Interruption::fd()), Read returns 0. -1: none.
  int stop_fd = -1;
  // Called on the reading thread whenever Read is about to wait for bytes; returns when it
  // wants to be called again (absl::InfiniteFuture(): not before more bytes came).
  std::function<absl::Time()> on_wait;
  // Called with a line about what the input does (waiting for the file, truncated).
  std::function<void(const std::string&)> on_notice;
};

class LiveInput : public K6ByteSource {
 public:
  enum class End {
    kNone,         // still reading
    kEndOfInput,   // end of file, or the pipe's writer closed it
    kIdleTimeout,  // follow: idle_timeout passed without new bytes
    kStopped,      // stop_fd became readable, or Stop() was called
  };

  // Opens `path`, "-" for standard input. Errors name the path: NotFound (with follow, only
  // once idle_timeout passed without the file appearing), a directory, unreadable.
  static absl::StatusOr<std::unique_ptr<LiveInput>> Open(const std::string& path,
                                                         LiveInputOptions options);
  ~LiveInput() override;
  LiveInput(const LiveInput&) = delete;
  LiveInput& operator=(const LiveInput&) = delete;

  absl::StatusOr<size_t> Read(char* dst, size_t n) override;

  // True when bytes may still arrive after a read returned none: followed, or not a regular
  // file. A live input cannot be read twice, so its timestamps cannot be shifted.
  bool live() const { return follow_ || !regular_; }
  // Reads again from the start of a regular file that is not followed; false otherwise.
  bool Rewind();
  // Makes the next Read return 0 (End::kStopped); for the reading thread.
  void Stop() { stopped_ = true; }
  // Stop() was called, or stop_fd seen readable.
  bool stopping() const { return stopped_; }
  // Replaces options.on_wait.
  void set_on_wait(std::function<absl::Time()> on_wait) { on_wait_ = std::move(on_wait); }
  End end() const { return end_; }
  const std::string& name() const { return name_; }

 private:
  LiveInput(int fd, std::string path, LiveInputOptions options, bool regular);
  bool StopRequested();
  // Waits until `fd_` (a pipe) or the watched file may have bytes, stop_fd is readable, or
  // `until` passed.
  void Wait(absl::Time until);

  const int fd_;
  const std::string path_;
  const std::string name_;
  const LiveInputOptions options_;
  const bool regular_;
  const bool follow_;
  std::function<absl::Time()> on_wait_;
  int inotify_fd_ = -1;
  int64_t offset_ = 0;
  absl::Time last_bytes_;
  bool stopped_ = false;
  End end_ = End::kNone;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_LIVE_INPUT_H_
