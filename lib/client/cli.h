// The commands of the rwexport CLI, which client/main.cc dispatches to: each reads its flags
// (lib/client/cli_flags.h), calls the server, prints, and returns the process's exit code.
// Errors print one line on stderr. Helpers shared by the commands come first.
#ifndef RWEXPORT_LIB_CLIENT_CLI_H_
#define RWEXPORT_LIB_CLIENT_CLI_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rwexport/v1/export.grpc.pb.h"

namespace rwexport {

// Exit codes (README, "Exit codes"); 128 + N after signal N (Interruption).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;          // bad flags or input, a failed call
inline constexpr int kExitUsage = 2;          // no or unknown command
inline constexpr int kExitPointsDropped = 3;  // a target dropped points (--allow_drops)
inline constexpr int kExitSamplesRejected =
    4;  // rejected samples, malformed lines (--allow_rejects)
// A broken stream not resumed within --resume_timeout (replay, bench).
inline constexpr int kExitResumeGaveUp = 5;

// Prints "rwexport: <message>" on stderr; returns kExitError.
int Fail(const std::string& message);
int Fail(const absl::Status& status);

// A stub for --server with the connection flags; exits with a one-line error if they are
// unusable.
std::unique_ptr<v1::ExportService::Stub> Connect();

struct StartedExport {
  v1::StartExportRequest request;
  v1::StartExportResponse response;
};
// Starts an export from --config and --test_run_id; lists skipped metric entries on stderr.
absl::StatusOr<StartedExport> StartFromConfigFlags(v1::ExportService::Stub& stub);

// Lists the target's exported and skipped metric entries on stderr.
void PrintStartResponse(const v1::StartExportResponse& response);

absl::StatusOr<v1::StopExportResponse> StopWithFlags(v1::ExportService::Stub& stub,
                                                     const std::string& export_id);
void PrintStopResponse(const v1::StopExportResponse& response);

// "series 38 exported (10 aggregated)": what the target holds, and what the series limits
// count (a trend's aggregation series is one exported series per statistic).
std::string SeriesText(const v1::TargetFigures& t);

// Points dropped over every target.
uint64_t PointsDropped(const v1::StopExportResponse& response);
// The exit code the figures call for, saying why on stderr: kExitPointsDropped when points
// were dropped (unless --allow_drops), else kExitSamplesRejected when samples were rejected or
// input lines malformed (unless --allow_rejects), else kExitOk.
int FiguresExitCode(uint64_t points_dropped, uint64_t samples_rejected, uint64_t lines_malformed);

// The commands; `args` are the positional arguments after the command name.
int RunStart(const std::vector<char*>& args);
int RunStop(const std::vector<char*>& args);
int RunStatus(const std::vector<char*>& args);
int RunList(const std::vector<char*>& args);
int RunReplay(const std::vector<char*>& args);
int RunDemo(const std::vector<char*>& args);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_CLI_H_
