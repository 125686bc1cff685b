#include "lib/client/cli_json.h"

#include <utility>

#include "absl/time/time.h"
#include "lib/config/config.h"

namespace rwexport {
namespace {

using Json = nlohmann::ordered_json;

Json TargetFiguresJson(const v1::TargetFigures& t) {
  Json dropped_by_reason = Json::object();
  for (const auto& [reason, n] : t.dropped_by_reason()) dropped_by_reason[reason] = n;
  return Json{{"remoteWriteURL", t.remote_write_url()},
              {"series", t.series()},
              {"pointsSent", t.points_sent()},
              {"duplicateOnRetry", t.duplicate_on_retry()},
              {"pointsAlreadyStored", t.points_already_stored()},
              {"requests", t.requests()},
              {"retries", t.retries()},
              {"failures", t.failures()},
              {"pointsDropped", t.points_dropped()},
              {"droppedByReason", std::move(dropped_by_reason)},
              {"pointsPending", t.points_pending()},
              {"bytesSent", t.bytes_sent()},
              {"seriesRefused", t.series_refused()},
              {"highestTimestampMs", t.highest_timestamp_ms()},
              {"lastError", t.last_error()}};
}

// The target as the server applies it: ValidateStartExport's defaults. TLS files are the
// server's, not necessarily readable here, so they are left out of the local check.
Json EffectiveTargetJson(const v1::Target& given) {
  v1::Target target = given;
  target.clear_tls();
  v1::StartExportRequest request;
  request.set_test_run_id("x");
  *request.add_targets() = target;
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  Json out = Json::object();
  if (!config.ok()) return out;  // the server accepted it, so this does not happen
  const TargetConfig& t = config->targets[0];
  out["remoteWriteURL"] = t.redacted_url;
  out["auth"] = !t.bearer_token.empty() ? "bearer" : !t.username.empty() ? "basic" : "none";
  out["resampleRate"] = t.resample_rate_s;
  out["timeoutMs"] = absl::ToInt64Milliseconds(t.timeout);
  out["includeDefaultMetrics"] =
      !given.has_include_default_metrics() || given.include_default_metrics();
  out["includeTestRunId"] = t.include_test_run_id;
  Json stats = Json::array();
  for (const TrendStat& stat : t.trend_stats) stats.push_back(stat.name());
  out["trendStats"] = std::move(stats);
  out["staleMarkers"] = t.stale_markers;
  out["nativeHistograms"] = t.native_histograms;
  return out;
}

}  // namespace

Json RejectionsJson(const google::protobuf::RepeatedPtrField<v1::Rejection>& rejections) {
  Json out = Json::array();
  for (const v1::Rejection& r : rejections) {
    out.push_back(Json{{"reason", r.reason()}, {"count", r.count()}, {"example", r.example()}});
  }
  return out;
}

Json StartJson(const v1::StartExportRequest& request, const v1::StartExportResponse& response) {
  Json targets = Json::array();
  for (int i = 0; i < request.targets_size(); ++i) {
    Json target = EffectiveTargetJson(request.targets(i));
    Json exported = Json::array();
    Json skipped = Json::array();
    if (i < response.targets_size()) {
      for (const std::string& m : response.targets(i).exported_metrics()) exported.push_back(m);
      for (const v1::SkippedMetric& s : response.targets(i).skipped_metrics()) {
        skipped.push_back(Json{{"entry", s.entry()}, {"reason", s.reason()}});
      }
    }
    target["exportedMetrics"] = std::move(exported);
    target["skippedMetrics"] = std::move(skipped);
    targets.push_back(std::move(target));
  }
  return Json{{"exportId", response.export_id()},
              {"testRunId", request.test_run_id()},
              {"targets", std::move(targets)}};
}

Json StopJson(const v1::StopExportResponse& response) {
  Json targets = Json::array();
  uint64_t dropped = 0;
  for (const v1::TargetFigures& t : response.targets()) {
    targets.push_back(TargetFiguresJson(t));
    dropped += t.points_dropped();
  }
  return Json{{"samplesAccepted", response.samples_accepted()},
              {"samplesRejected", response.samples_rejected()},
              {"rejections", RejectionsJson(response.rejections())},
              {"pointsDropped", dropped},
              {"targets", std::move(targets)}};
}

std::string JsonText(const Json& json) {
  return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace rwexport
