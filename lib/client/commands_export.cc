// rwexport start, stop, status and ls (lib/client/cli.h).
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "lib/client/cli.h"
#include "lib/client/cli_flags.h"
#include "lib/client/cli_json.h"
#include "lib/client/export_calls.h"

namespace rwexport {
namespace {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}\n";
  out.push_back('\n');
  return out;
}

const char* StateName(v1::ExportStatus::State state) {
  switch (state) {
    case v1::ExportStatus::RUNNING:
      return "running";
    case v1::ExportStatus::STOPPING:
      return "stopping";
    default:
      return "unknown";
  }
}

// Whole seconds with units: "0s", "42s", "3m12s", "26h5m0s".
std::string Age(int64_t started_unix_ms) {
  const absl::Duration age =
      absl::Trunc(absl::Now() - absl::FromUnixMillis(started_unix_ms), absl::Seconds(1));
  if (age <= absl::ZeroDuration()) return "0s";  // FormatDuration writes a bare "0"
  return absl::FormatDuration(age);
}

void PrintStatus(const v1::ExportStatus& s) {
  std::printf("export %s\n", s.export_id().c_str());
  std::printf("  test run:  %s\n", s.test_run_id().c_str());
  std::printf("  state:     %s, up %s, %u streams\n", StateName(s.state()),
              Age(s.started_unix_ms()).c_str(), s.active_streams());
  if (s.stream_retained_bytes() > 0) {
    // What the open streams keep for their compact-mode declarations (README, "Limits").
    std::printf("  streams keep: %.1f MiB of compact-mode declarations\n",
                static_cast<double>(s.stream_retained_bytes()) / (1 << 20));
  }
  if (s.recovered_unix_ms() != 0) {
    // Its figures continue: what it had accepted was replayed from the write-ahead log
    // (README, "Crash safety").
    std::printf(
        "  recovered: %s ago, by a restarted server (replayed %llu batches, %llu samples)\n",
        Age(s.recovered_unix_ms()).c_str(), static_cast<unsigned long long>(s.replayed_batches()),
        static_cast<unsigned long long>(s.replayed_samples()));
    if (s.checkpoint_unix_ms() != 0) {
      std::printf("             from a checkpoint written %s ago, %llu batches replayed after it\n",
                  Age(s.checkpoint_unix_ms()).c_str(),
                  static_cast<unsigned long long>(s.checkpoint_replayed_batches()));
    }
  }
  if (s.checkpoints_written() != 0) {
    std::printf("  checkpoints: %llu written, the last %s ago\n",
                static_cast<unsigned long long>(s.checkpoints_written()),
                Age(s.last_checkpoint_unix_ms()).c_str());
  }
  std::printf("  samples:   %llu accepted (%llu late), %llu rejected\n",
              static_cast<unsigned long long>(s.samples_accepted()),
              static_cast<unsigned long long>(s.samples_late()),
              static_cast<unsigned long long>(s.samples_rejected()));
  for (const v1::Rejection& r : s.rejections()) {
    std::printf("    rejected %s: %llu (e.g. %s)\n", r.reason().c_str(),
                static_cast<unsigned long long>(r.count()), r.example().c_str());
  }
  for (int t = 0; t < s.targets_size(); ++t) {
    const v1::Target& target = s.targets(t);
    std::string auth = "none";
    if (!target.credentials().token().empty()) auth = "bearer token";
    if (!target.credentials().username().empty()) {
      auth = absl::StrCat("basic (user ", target.credentials().username(), ")");
    }
    std::printf("  target %d:  %s\n", t, target.remote_write_url().c_str());
    std::printf("    config:  resampleRate %us, auth %s, %d metric entries%s%s\n",
                target.has_resample_rate() ? target.resample_rate() : 3u, auth.c_str(),
                target.metrics_size(),
                target.include_default_metrics() || !target.has_include_default_metrics()
                    ? " + defaults"
                    : "",
                target.include_test_run_id() ? ", test_run_id label" : "");
    if (t < s.figures_size()) {
      const v1::TargetFigures& f = s.figures(t);
      std::printf(
          "    figures: %s, points sent %llu, requests %llu, retries %llu, "
          "failures %llu, dropped %llu\n",
          SeriesText(f).c_str(), static_cast<unsigned long long>(f.points_sent()),
          static_cast<unsigned long long>(f.requests()),
          static_cast<unsigned long long>(f.retries()),
          static_cast<unsigned long long>(f.failures()),
          static_cast<unsigned long long>(f.points_dropped()));
      if (f.duplicate_on_retry() > 0) {
        std::printf("    duplicate on retry: %llu (of the points sent: already stored)\n",
                    static_cast<unsigned long long>(f.duplicate_on_retry()));
      }
      if (f.points_already_stored() > 0) {
        std::printf(
            "    already stored: %llu (of the points sent: re-sent after a recovery, delivered "
            "before the crash)\n",
            static_cast<unsigned long long>(f.points_already_stored()));
      }
      if (!f.last_error().empty()) std::printf("    last error: %s\n", f.last_error().c_str());
    }
  }
}

}  // namespace

int RunStart(const std::vector<char*>& args) {
  if (args.size() != 0) return Fail("start takes no arguments (see rwexport start --help)");
  auto stub = Connect();
  absl::StatusOr<StartedExport> started = StartFromConfigFlags(*stub);
  if (!started.ok()) return Fail(started.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s", JsonText(StartJson(started->request, started->response)).c_str());
  } else {
    std::printf("%s\n", started->response.export_id().c_str());
  }
  return kExitOk;
}

int RunStop(const std::vector<char*>& args) {
  if (args.size() != 1) return Fail("stop takes one argument, the export id");
  auto stub = Connect();
  absl::StatusOr<v1::StopExportResponse> response = StopWithFlags(*stub, args[0]);
  if (!response.ok()) return Fail(response.status());
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::ordered_json json = {{"exportId", args[0]}};
    json.update(StopJson(*response));
    json["exitCode"] = FiguresExitCode(PointsDropped(*response), response->samples_rejected(), 0);
    std::printf("%s", JsonText(json).c_str());
    return json["exitCode"].get<int>();
  }
  PrintStopResponse(*response);
  return FiguresExitCode(PointsDropped(*response), response->samples_rejected(), 0);
}

int RunStatus(const std::vector<char*>& args) {
  if (args.size() != 1) return Fail("status takes one argument, the export id");
  auto stub = Connect();
  absl::StatusOr<v1::ExportStatus> found = GetExportRpc(*stub, args[0]);
  if (!found.ok()) return Fail(found.status());
  const v1::ExportStatus& status = *found;
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s", ToJson(status).c_str());
  } else {
    PrintStatus(status);
  }
  return 0;
}

int RunList(const std::vector<char*>& args) {
  if (!args.empty()) return Fail("ls takes no arguments");
  auto stub = Connect();
  absl::StatusOr<v1::ListExportsResponse> listed = ListExportsRpc(*stub);
  if (!listed.ok()) return Fail(listed.status());
  const v1::ListExportsResponse& response = *listed;
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s", ToJson(response).c_str());
    return 0;
  }
  // SERIES: exported series / aggregation series, summed over the targets. RECOVERED: how long
  // ago a restarted server brought the export back from its data directory, or "-".
  std::printf("%-32s  %-24s  %-8s  %-8s  %7s  %12s  %15s  %12s  %10s  %s\n", "EXPORT", "TEST RUN",
              "STATE", "AGE", "STREAMS", "SAMPLES", "SERIES EXP/AGG", "POINTS SENT", "DROPPED",
              "RECOVERED");
  for (const v1::ExportStatus& s : response.exports()) {
    uint64_t sent = 0, dropped = 0, exported = 0, aggregated = 0;
    for (const v1::TargetFigures& f : s.figures()) {
      sent += f.points_sent();
      dropped += f.points_dropped();
      exported += f.exported_series();
      aggregated += f.series();
    }
    const std::string recovered =
        s.recovered_unix_ms() != 0 ? absl::StrCat(Age(s.recovered_unix_ms()), " ago") : "-";
    std::printf(
        "%-32s  %-24s  %-8s  %-8s  %7u  %12llu  %15s  %12llu  %10llu  %s\n", s.export_id().c_str(),
        s.test_run_id().c_str(), StateName(s.state()), Age(s.started_unix_ms()).c_str(),
        s.active_streams(), static_cast<unsigned long long>(s.samples_accepted()),
        absl::StrCat(exported, "/", aggregated).c_str(), static_cast<unsigned long long>(sent),
        static_cast<unsigned long long>(dropped), recovered.c_str());
  }
  return 0;
}

}  // namespace rwexport
