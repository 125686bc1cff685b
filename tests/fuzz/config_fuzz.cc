// Fuzz target: the configuration paths an untrusted client reaches. The input is read three
// ways: as k6 apm JSON (ParseK6ApmJson, then ValidateStartExport on the request it yields), as
// a k6 script (ParseK6ScriptApm, likewise), and as a serialized StartExportRequest (what a
// gRPC client sends), validated the same way. Checks
// the documented contracts: errors are InvalidArgument, a valid config has every default
// filled in and only URLs that CheckRemoteWriteUrl accepts.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "lib/config/config.h"
#include "lib/config/k6_json.h"
#include "lib/config/k6_script.h"
#include "lib/model/metric.h"
#include "rwexport/v1/export.pb.h"

namespace {

void Require(bool condition, const char* what, const std::string& detail = "") {
  if (condition) return;
  std::fprintf(stderr, "config_fuzz: contract broken: %s %s\n", what, detail.c_str());
  std::abort();
}

void Validate(const rwexport::v1::StartExportRequest& request) {
  absl::StatusOr<rwexport::ExportConfig> config = rwexport::ValidateStartExport(request);
  for (const rwexport::v1::Target& target : request.targets()) {
    rwexport::RedactTarget(target);
    rwexport::RedactRemoteWriteUrl(target.remote_write_url());
  }
  if (!config.ok()) {
    Require(config.status().code() == absl::StatusCode::kInvalidArgument,
            "ValidateStartExport error is not InvalidArgument:", config.status().ToString());
    Require(!config.status().message().empty(), "ValidateStartExport error without a message");
    return;
  }
  Require(config->test_run_id == request.test_run_id(), "test_run_id changed");
  Require(config->targets.size() == static_cast<size_t>(request.targets_size()),
          "target count changed");
  for (const rwexport::TargetConfig& target : config->targets) {
    Require(rwexport::CheckRemoteWriteUrl(target.url).ok(), "accepted a bad URL:", target.url);
    Require(target.resample_rate_s >= 1 && target.resample_rate_s <= 10,
            "resample rate out of range");
    Require(!target.trend_stats.empty(), "no trend statistics");
    Require(target.timeout > absl::ZeroDuration() && target.timeout <= rwexport::kMaxTimeout,
            "timeout out of range");
    for (const auto& [name, value] : target.labels) {
      Require(rwexport::IsValidLabelName(name) && !value.empty(), "accepted a bad label:", name);
    }
    Require(rwexport::IsValidLabelName(target.test_run_id_label), "bad testRunIdLabel");
    for (const rwexport::OutputSpec& output : target.outputs) {
      Require(output.keep_labels.size() == output.keep_tags.size(), "keep_labels not parallel");
      if (output.all_metrics) {
        Require(output.source_metric == "*" && !output.selector.has_matchers(), "bad \"*\" entry");
      } else {
        Require(output.source_metric == output.selector.metric(), "source_metric differs");
      }
    }
  }
}

}  // namespace

// Protobuf logs every string field with invalid UTF-8 it parses; fuzzed input has plenty.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  google::protobuf::SetLogHandler(nullptr);  // discards log messages
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<rwexport::v1::StartExportRequest> request =
      rwexport::ParseK6ApmJson(text, "fuzz-run");
  if (request.ok()) {
    Validate(*request);
  } else {
    Require(request.status().code() == absl::StatusCode::kInvalidArgument,
            "ParseK6ApmJson error is not InvalidArgument:", request.status().ToString());
  }
  // __ENV names starting with "SET" are set (to their own name), the others are not.
  request = rwexport::ParseK6ScriptApm(text, "fuzz-run",
                                       [](absl::string_view name) -> std::optional<std::string> {
                                         if (name.substr(0, 3) != "SET") return std::nullopt;
                                         return std::string(name);
                                       });
  if (request.ok()) {
    Validate(*request);
  } else {
    Require(request.status().code() == absl::StatusCode::kInvalidArgument,
            "ParseK6ScriptApm error is not InvalidArgument:", request.status().ToString());
  }
  rwexport::v1::StartExportRequest raw;
  if (raw.ParseFromArray(data, static_cast<int>(size))) Validate(raw);
  return 0;
}
