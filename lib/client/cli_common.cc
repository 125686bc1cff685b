// Helpers shared by the CLI's commands (lib/client/cli.h).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/client/channel.h"
#include "lib/client/cli.h"
#include "lib/client/cli_flags.h"
#include "lib/client/export_calls.h"
#include "lib/common/file.h"
#include "lib/config/k6_json.h"
#include "lib/config/k6_script.h"

namespace rwexport {

void PrintStartResponse(const v1::StartExportResponse& response) {
  for (int t = 0; t < response.targets_size(); ++t) {
    const v1::TargetReport& target = response.targets(t);
    std::fprintf(stderr, "target %d: %s: exporting %s\n", t, target.remote_write_url().c_str(),
                 absl::StrJoin(target.exported_metrics(), ", ").c_str());
    for (const v1::SkippedMetric& s : target.skipped_metrics()) {
      std::fprintf(stderr, "target %d: skipped metric %s: %s\n", t, s.entry().c_str(),
                   s.reason().c_str());
    }
    for (const v1::ReplacedDefault& r : target.replaced_defaults()) {
      std::fprintf(stderr, "target %d: default metric %s replaced by entry %s\n", t,
                   r.metric().c_str(), r.entry().c_str());
    }
  }
}

std::string SeriesText(const v1::TargetFigures& t) {
  return absl::StrCat("series ", t.exported_series(), " exported (", t.series(), " aggregated)");
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "rwexport: %s\n", message.c_str());
  return kExitError;
}

int Fail(const absl::Status& status) {
  return Fail(absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message()));
}

std::unique_ptr<v1::ExportService::Stub> Connect() {
  ChannelOptions options;
  options.address = absl::GetFlag(FLAGS_server);
  options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  if (!absl::GetFlag(FLAGS_auth_token_file).empty()) {
    absl::StatusOr<std::string> token = ReadFileToString(absl::GetFlag(FLAGS_auth_token_file));
    if (!token.ok()) {
      std::exit(Fail(absl::StrCat("--auth_token_file: ", token.status().message())));
    }
    options.bearer_token = std::string(absl::StripAsciiWhitespace(*token));
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  if (!channel.ok()) std::exit(Fail(std::string(channel.status().message())));
  return v1::ExportService::NewStub(*channel);
}

absl::StatusOr<StartedExport> StartFromConfigFlags(v1::ExportService::Stub& stub) {
  const std::string config_path = absl::GetFlag(FLAGS_config);
  const std::string test_run_id = absl::GetFlag(FLAGS_test_run_id);
  if (config_path.empty()) return absl::InvalidArgumentError("--config: required");
  if (test_run_id.empty()) return absl::InvalidArgumentError("--test_run_id: required");
  absl::StatusOr<std::string> json = ReadFileToString(config_path);
  if (!json.ok()) return json.status();
  // A k6 script (.js) holds it in `export const options`; its __ENV.NAME come from ours.
  absl::StatusOr<v1::StartExportRequest> request =
      IsK6ScriptPath(config_path)
          ? ParseK6ScriptApm(*json, test_run_id,
                             [](absl::string_view name) -> std::optional<std::string> {
                               const char* value = std::getenv(std::string(name).c_str());
                               if (value == nullptr) return std::nullopt;
                               return std::string(value);
                             })
          : ParseK6ApmJson(*json, test_run_id);
  if (!request.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", request.status().message()));
  }
  absl::StatusOr<std::vector<v1::MetricDeclaration>> declared =
      ParseMetricTypes(absl::GetFlag(FLAGS_metric_types));
  if (!declared.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metric_types: ", declared.status().message()));
  }
  for (v1::MetricDeclaration& d : *declared) *request->add_metric_declarations() = std::move(d);
  absl::StatusOr<v1::StartExportResponse> response = StartExportRpc(stub, *request);
  if (!response.ok()) return response.status();
  PrintStartResponse(*response);
  return StartedExport{*std::move(request), *std::move(response)};
}

absl::StatusOr<v1::StopExportResponse> StopWithFlags(v1::ExportService::Stub& stub,
                                                     const std::string& export_id) {
  return StopExportRpc(stub, export_id, absl::GetFlag(FLAGS_delivery_timeout));
}

void PrintStopResponse(const v1::StopExportResponse& r) {
  std::printf("samples accepted: %llu, rejected: %llu\n",
              static_cast<unsigned long long>(r.samples_accepted()),
              static_cast<unsigned long long>(r.samples_rejected()));
  for (const v1::Rejection& rej : r.rejections()) {
    std::printf("  rejected %s: %llu (e.g. %s)\n", rej.reason().c_str(),
                static_cast<unsigned long long>(rej.count()), rej.example().c_str());
  }
  for (const v1::TargetFigures& t : r.targets()) {
    std::printf(
        "target %s: %s, points sent %llu, requests %llu, retries %llu, failures %llu, "
        "points dropped %llu, bytes sent %llu\n",
        t.remote_write_url().c_str(), SeriesText(t).c_str(),
        static_cast<unsigned long long>(t.points_sent()),
        static_cast<unsigned long long>(t.requests()), static_cast<unsigned long long>(t.retries()),
        static_cast<unsigned long long>(t.failures()),
        static_cast<unsigned long long>(t.points_dropped()),
        static_cast<unsigned long long>(t.bytes_sent()));
    if (t.duplicate_on_retry() > 0) {
      std::printf("  duplicate on retry: %llu (of the points sent: already stored)\n",
                  static_cast<unsigned long long>(t.duplicate_on_retry()));
    }
    if (t.points_already_stored() > 0) {
      std::printf(
          "  already stored: %llu (of the points sent: re-sent after a recovery, delivered "
          "before the crash)\n",
          static_cast<unsigned long long>(t.points_already_stored()));
    }
    for (const auto& [reason, n] : t.dropped_by_reason()) {
      std::printf("  dropped %s: %llu\n", reason.c_str(), static_cast<unsigned long long>(n));
    }
    if (!t.last_error().empty()) std::printf("  last error: %s\n", t.last_error().c_str());
  }
}

uint64_t PointsDropped(const v1::StopExportResponse& response) {
  uint64_t dropped = 0;
  for (const v1::TargetFigures& t : response.targets()) dropped += t.points_dropped();
  return dropped;
}

int FiguresExitCode(uint64_t points_dropped, uint64_t samples_rejected, uint64_t lines_malformed) {
  const bool drops = points_dropped > 0 && !absl::GetFlag(FLAGS_allow_drops);
  const bool rejects =
      (samples_rejected > 0 || lines_malformed > 0) && !absl::GetFlag(FLAGS_allow_rejects);
  if (drops) {
    std::fprintf(stderr, "rwexport: %llu points dropped (--allow_drops accepts that)\n",
                 static_cast<unsigned long long>(points_dropped));
  }
  if (rejects) {
    std::fprintf(stderr,
                 "rwexport: %llu samples rejected, %llu input lines malformed (--allow_rejects "
                 "accepts that)\n",
                 static_cast<unsigned long long>(samples_rejected),
                 static_cast<unsigned long long>(lines_malformed));
  }
  if (drops) return kExitPointsDropped;
  return rejects ? kExitSamplesRejected : kExitOk;
}

}  // namespace rwexport
