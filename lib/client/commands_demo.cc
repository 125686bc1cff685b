// rwexport demo (lib/client/cli.h).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/client/cli.h"
#include "lib/client/cli_flags.h"
#include "lib/client/export_calls.h"
#include "lib/client/interruption.h"
#include "lib/client/synthetic.h"
#include "lib/prometheus/query_client.h"

namespace rwexport {
namespace {

v1::StartExportRequest DemoRequest(const std::string& url) {
  v1::StartExportRequest request;
  request.set_test_run_id(absl::GetFlag(FLAGS_test_run_id).empty()
                              ? absl::StrCat("demo-", absl::ToUnixSeconds(absl::Now()))
                              : absl::GetFlag(FLAGS_test_run_id));
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(url);
  target->set_resample_rate(absl::GetFlag(FLAGS_resample_rate));
  target->set_include_test_run_id(true);
  v1::MetricEntry* by_endpoint = target->add_metrics();
  by_endpoint->set_source_metric("http_reqs");
  by_endpoint->set_target_metric("k6_http_reqs_by_endpoint");
  by_endpoint->add_keep_tags("name");
  by_endpoint->add_keep_tags("status");
  target->add_metrics()->set_source_metric("http_req_failed");
  target->add_metrics()->set_source_metric("checks");
  target->add_metrics()->set_source_metric("iteration_duration");
  target->add_metrics()->set_source_metric("checkout_step_duration");
  v1::MetricEntry* slow = target->add_metrics();
  slow->set_source_metric("http_req_duration{method=\"POST\"}");
  slow->set_target_metric("k6_http_post_duration");
  return request;
}

}  // namespace

int RunDemo(const std::vector<char*>& args) {
  if (!args.empty()) return Fail("demo takes no arguments (see rwexport demo --help)");
  const std::string url = absl::GetFlag(FLAGS_remote_write_url);
  if (url.empty()) return Fail("--remote_write_url: required");
  // Before any thread starts: every thread then leaves SIGINT/SIGTERM to the interruption.
  Interruption& interruption = Interruption::Install();
  auto stub = Connect();
  const v1::StartExportRequest request = DemoRequest(url);
  absl::StatusOr<v1::StartExportResponse> started = StartExportRpc(*stub, request);
  if (!started.ok()) return Fail(started.status());
  PrintStartResponse(*started);
  const std::string& id = started->export_id();
  std::printf("export %s started for test run %s\n", id.c_str(), request.test_run_id().c_str());

  SyntheticOptions options;
  options.duration = absl::GetFlag(FLAGS_duration) == absl::ZeroDuration()
                         ? absl::Seconds(30)
                         : absl::GetFlag(FLAGS_duration);
  options.vus = absl::GetFlag(FLAGS_vus);
  options.requests_per_second = absl::GetFlag(FLAGS_rps);
  options.stop_fd = interruption.fd();
  options.on_progress = [&](int seconds) {
    if (seconds % 5 == 0) std::printf("  load test running: %ds\n", seconds), std::fflush(stdout);
  };
  std::printf("streaming a synthetic load test for %s (%d VUs, %.0f requests/s)\n",
              absl::FormatDuration(options.duration).c_str(), options.vus,
              options.requests_per_second);
  std::fflush(stdout);
  absl::StatusOr<SyntheticTotals> totals = RunSyntheticLoad(stub.get(), id, options);
  if (!totals.ok()) {
    StopWithFlags(*stub, id).IgnoreError();
    return Fail(totals.status());
  }
  absl::StatusOr<v1::StopExportResponse> stopped = StopWithFlags(*stub, id);
  if (!stopped.ok()) return Fail(stopped.status());
  std::printf("load test %s: %llu samples, %llu HTTP requests (%llu failed), %llu iterations\n",
              interruption.requested() ? "interrupted" : "done",
              static_cast<unsigned long long>(totals->samples),
              static_cast<unsigned long long>(totals->http_reqs),
              static_cast<unsigned long long>(totals->http_reqs_failed),
              static_cast<unsigned long long>(totals->iterations));
  PrintStopResponse(*stopped);
  if (interruption.requested()) return interruption.exit_code();

  const std::string prometheus = absl::GetFlag(FLAGS_prometheus_url);
  if (prometheus.empty()) return 0;
  QueryClient client(prometheus);
  const std::string run = absl::StrCat("{test_run_id=\"", request.test_run_id(), "\"}");
  struct Check {
    std::string metric;  // shown; the query adds the test run's selector
    std::string expected;
    std::string range_function;  // e.g. "max_over_time": over the whole run
  };
  const std::vector<Check> checks = {
      {"k6_http_reqs_total", absl::StrCat(totals->http_reqs), ""},
      {"k6_iterations_total", absl::StrCat(totals->iterations), ""},
      {"k6_data_sent_total", absl::StrFormat("%.0f", totals->data_sent), ""},
      {"k6_data_received_total", absl::StrFormat("%.0f", totals->data_received), ""},
      {"k6_vus", absl::StrCat(options.vus), ""},
      {"k6_http_req_failed_rate", "fraction failed, last window", ""},
      {"k6_checks_rate", "fraction passed, last window", ""},
      {"k6_http_req_duration_p95", "seconds, last window", ""},
      {"k6_http_req_duration_max", absl::StrFormat("%.6f", totals->max_duration_ms / 1000),
       "max_over_time"},
      {"k6_http_post_duration_med", "seconds, POST requests, last window", ""},
      {"k6_http_reqs_by_endpoint_total", "per endpoint and status", ""},
  };
  std::printf("\nwhat landed in Prometheus (%s), test_run_id=%s:\n", prometheus.c_str(),
              request.test_run_id().c_str());
  std::printf("  %-84s %14s   %s\n", "series", "value", "expected");
  // A point carries its window's end time, so the last one may lie up to a window ahead:
  // evaluate a minute ahead to read the newest point of every series.
  const absl::Time at = absl::Now() + absl::Minutes(1);
  int failures = 0;
  for (const Check& check : checks) {
    const std::string query =
        check.range_function.empty()
            ? check.metric + run
            : absl::StrCat(check.range_function, "(", check.metric, run, "[1h])");
    absl::StatusOr<std::vector<InstantSample>> result = client.Query(query, at);
    if (!result.ok()) {
      std::printf("  %s: query failed: %s\n", query.c_str(),
                  std::string(result.status().message()).c_str());
      ++failures;
      continue;
    }
    if (result->empty()) {
      std::printf("  %s: no data\n", query.c_str());
      ++failures;
    }
    for (const InstantSample& s : *result) {
      std::vector<std::string> labels;
      for (const auto& [k, v] : s.labels) {
        if (k != "__name__" && k != "test_run_id")
          labels.push_back(absl::StrCat(k, "=\"", v, "\""));
      }
      std::string shown = check.range_function.empty()
                              ? check.metric
                              : absl::StrCat(check.range_function, "(", check.metric, ")");
      if (!labels.empty()) absl::StrAppend(&shown, "{", absl::StrJoin(labels, ","), "}");
      std::printf("  %-84s %14.10g   %s\n", shown.c_str(), s.value, check.expected.c_str());
    }
  }
  return failures == 0 ? 0 : Fail(absl::StrCat(failures, " queries found no data"));
}

}  // namespace rwexport
