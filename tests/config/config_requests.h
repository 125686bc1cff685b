// Builders shared by the configuration tests: a valid one-target request, metric entries, and
// the validated target.
#ifndef RWEXPORT_TESTS_CONFIG_CONFIG_REQUESTS_H_
#define RWEXPORT_TESTS_CONFIG_CONFIG_REQUESTS_H_

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/config/config.h"
#include "rwexport/v1/export.pb.h"

namespace rwexport {

// Test run "run-42", one target: provider prometheus, a loopback URL, nothing else.
inline v1::StartExportRequest ValidRequest() {
  v1::StartExportRequest request;
  request.set_test_run_id("run-42");
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url("http://127.0.0.1:9090/api/v1/write");
  return request;
}

inline v1::MetricEntry* AddMetric(v1::Target* target, const std::string& source,
                                  const std::string& target_metric = "",
                                  std::vector<std::string> keep_tags = {}) {
  v1::MetricEntry* entry = target->add_metrics();
  entry->set_source_metric(source);
  entry->set_target_metric(target_metric);
  for (const std::string& tag : keep_tags) entry->add_keep_tags(tag);
  return entry;
}

// The first target of `request`, validated (a test failure if it is not valid).
inline TargetConfig MustValidateTarget(const v1::StartExportRequest& request) {
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok() || config->targets.empty()) return TargetConfig();
  return config->targets[0];
}

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_CONFIG_CONFIG_REQUESTS_H_
