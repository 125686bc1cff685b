// rwexport replay (lib/client/cli.h).
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "lib/client/cli.h"
#include "lib/client/cli_flags.h"
#include "lib/client/cli_json.h"
#include "lib/client/interruption.h"
#include "lib/client/progress.h"
#include "lib/client/replay.h"
#include "lib/client/sample_stream.h"
#include "lib/ingest/batch_decoder.h"

namespace rwexport {
namespace {

// Points sent so far over every target of the export, or -1 if the server does not say
// within a second.
int64_t PointsSentSoFar(v1::ExportService::Stub& stub, const std::string& export_id) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  AddRoutingHeader(&context, export_id);
  v1::GetExportRequest request;
  request.set_export_id(export_id);
  v1::ExportStatus status;
  if (!stub.GetExport(&context, request, &status).ok()) return -1;
  int64_t sent = 0;
  for (const v1::TargetFigures& f : status.figures()) sent += f.points_sent();
  return sent;
}

const char* EndName(LiveInput::End end) {
  switch (end) {
    case LiveInput::End::kIdleTimeout:
      return "idle_timeout";
    case LiveInput::End::kStopped:
      return "interrupted";
    default:
      return "end_of_input";
  }
}

// Reads the replay flags into `options`; an error names the flag.
absl::Status ReplayFlags(ReplayOptions& options) {
  const std::string pace = absl::GetFlag(FLAGS_pace);
  if (pace == "recorded") {
    options.pace = ReplayPace::kRecorded;
  } else if (pace != "fast" && !pace.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pace: expected fast or recorded, got \"", pace, "\""));
  }
  if (absl::GetFlag(FLAGS_batch_size) < 1) {
    return absl::InvalidArgumentError("--batch_size: must be at least 1");
  }
  if (absl::GetFlag(FLAGS_flush_interval) <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--flush_interval: must be positive");
  }
  if (absl::GetFlag(FLAGS_idle_timeout) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--idle_timeout: must be 0 (never) or positive");
  }
  if (!absl::GetFlag(FLAGS_export_id).empty() && !absl::GetFlag(FLAGS_config).empty()) {
    return absl::InvalidArgumentError("--export_id and --config exclude each other");
  }
  // Checked now, not when the export starts: reading a live input may take a while.
  if (absl::GetFlag(FLAGS_export_id).empty()) {
    if (absl::GetFlag(FLAGS_config).empty()) {
      return absl::InvalidArgumentError("--config (or --export_id): required");
    }
    if (absl::GetFlag(FLAGS_test_run_id).empty()) {
      return absl::InvalidArgumentError("--test_run_id: required with --config");
    }
  }
  if (absl::GetFlag(FLAGS_resume_timeout) <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--resume_timeout: must be positive");
  }
  options.stream_id = absl::GetFlag(FLAGS_stream_id);
  if (!options.stream_id.empty() && !IsValidStreamId(options.stream_id)) {
    return absl::InvalidArgumentError(
        "--stream_id: 1 to 128 printable ASCII characters (no space)");
  }
  options.resume_timeout = absl::GetFlag(FLAGS_resume_timeout);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.keep_timestamps = absl::GetFlag(FLAGS_keep_timestamps);
  options.compact = absl::GetFlag(FLAGS_compact);
  options.follow = absl::GetFlag(FLAGS_follow);
  options.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  options.flush_interval = absl::GetFlag(FLAGS_flush_interval);
  return absl::OkStatus();
}

}  // namespace

int RunReplay(const std::vector<char*>& args) {
  if (args.size() != 1) return Fail("replay takes one argument, the k6 result file (- for stdin)");
  // Before any thread starts: every thread then leaves SIGINT/SIGTERM to the interruption.
  Interruption& interruption = Interruption::Install();
  const std::string path = args[0];
  ReplayOptions options;
  if (absl::Status flags = ReplayFlags(options); !flags.ok()) return Fail(flags);
  options.on_error = [&path](const ReadError& e) {
    std::fprintf(stderr, "rwexport: %s:%lld: %s (line skipped)\n", path.c_str(),
                 static_cast<long long>(e.line), e.message.c_str());
  };
  options.on_notice = [](const std::string& line) {
    std::fprintf(stderr, "rwexport: %s\n", line.c_str());
  };
  options.stop_fd = interruption.fd();
  options.on_resume = [](const std::string& line) {
    std::fprintf(stderr, "rwexport: %s\n", line.c_str());
  };
  std::atomic<int64_t> samples_read{0};
  options.samples_read = &samples_read;
  const bool json = absl::GetFlag(FLAGS_json);

  // The input is opened and, a file, checked before any export is started.
  absl::StatusOr<std::unique_ptr<ReplayInput>> input = ReplayInput::Open(path, options);
  if (interruption.requested()) return interruption.exit_code();
  if (!input.ok()) return Fail(input.status());
  if ((*input)->live()) {
    if (!absl::GetFlag(FLAGS_pace).empty()) {
      return Fail(absl::StrCat("--pace: ", (*input)->source().name(),
                               " is live input, sent as it arrives: --pace applies to files"));
    }
    std::fprintf(stderr,
                 "rwexport: %s is live input: samples are sent as they arrive (at least every "
                 "%s), with their own timestamps\n",
                 (*input)->source().name().c_str(),
                 absl::FormatDuration(options.flush_interval).c_str());
  }

  auto stub = Connect();
  std::string export_id = absl::GetFlag(FLAGS_export_id);
  const bool own_export = export_id.empty();
  if (own_export) {
    absl::StatusOr<StartedExport> started = StartFromConfigFlags(*stub);
    if (!started.ok()) return Fail(started.status());
    export_id = started->response.export_id();
    std::fprintf(stderr, "started export %s\n", export_id.c_str());
  }

  const absl::Time start = absl::Now();
  absl::StatusOr<ReplayResult> result;
  {
    ProgressLine progress([&] {
      return ProgressText(samples_read.load(), absl::Now() - start,
                          PointsSentSoFar(*stub, export_id));
    });
    result = ReplayK6Input(stub.get(), export_id, **input, options);
  }
  if (!result.ok()) {
    if (own_export) StopWithFlags(*stub, export_id).IgnoreError();
    if (absl::IsDeadlineExceeded(result.status())) {  // resuming gave up (--resume_timeout)
      Fail(result.status());
      return kExitResumeGaveUp;
    }
    return Fail(result.status());
  }
  if (!json) {
    std::printf(
        "replayed %s: %lld lines, %lld metrics, %lld samples, %lld malformed lines; "
        "server accepted %llu, rejected %llu%s\n",
        path.c_str(), static_cast<long long>(result->read.lines),
        static_cast<long long>(result->read.metrics), static_cast<long long>(result->read.samples),
        static_cast<long long>(result->read.errors),
        static_cast<unsigned long long>(result->response.accepted()),
        static_cast<unsigned long long>(result->response.rejected()),
        result->end == LiveInput::End::kIdleTimeout
            ? absl::StrCat(" (no new line for ", absl::FormatDuration(options.idle_timeout), ")")
                  .c_str()
            : "");
    std::fflush(stdout);
  }
  std::optional<v1::StopExportResponse> stopped;
  if (own_export) {
    absl::StatusOr<v1::StopExportResponse> stop = StopWithFlags(*stub, export_id);
    if (!stop.ok()) return Fail(stop.status());
    stopped = *std::move(stop);
    if (!json) PrintStopResponse(*stopped);
  }

  const uint64_t rejected = stopped ? stopped->samples_rejected() : result->response.rejected();
  int exit_code = interruption.requested()
                      ? interruption.exit_code()
                      : FiguresExitCode(stopped ? PointsDropped(*stopped) : 0, rejected,
                                        static_cast<uint64_t>(result->read.errors));
  if (json) {
    nlohmann::ordered_json doc = {{"input",
                                   {{"path", path},
                                    {"live", (*input)->live()},
                                    {"lines", result->read.lines},
                                    {"metrics", result->read.metrics},
                                    {"samples", result->read.samples},
                                    {"malformedLines", result->read.errors},
                                    {"shiftNs", result->shift_ns},
                                    {"end", EndName(result->end)}}},
                                  {"exportId", export_id},
                                  {"startedExport", own_export},
                                  {"stream",
                                   {{"samplesSent", result->samples_sent},
                                    {"accepted", result->response.accepted()},
                                    {"rejected", result->response.rejected()},
                                    {"rejections", RejectionsJson(result->response.rejections())}}},
                                  {"stop", stopped ? StopJson(*stopped) : nlohmann::ordered_json()},
                                  {"interrupted", interruption.requested()},
                                  {"exitCode", exit_code}};
    std::printf("%s", JsonText(doc).c_str());
  }
  return exit_code;
}

}  // namespace rwexport
