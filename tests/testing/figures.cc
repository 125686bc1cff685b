#include "tests/testing/figures.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace rwexport {

std::map<std::string, uint64_t> ByReason(
    const google::protobuf::RepeatedPtrField<v1::Rejection>& rejections) {
  std::map<std::string, uint64_t> out;
  for (const v1::Rejection& r : rejections) out[r.reason()] += r.count();
  return out;
}

void ExpectFinanceRunTotals(PrometheusServer& prometheus, const std::string& test_run_id) {
  const std::map<std::string, double> totals = {{"k6_http_reqs_total", 60},
                                                {"k6_iterations_total", 20},
                                                {"k6_data_received_total", 42039},
                                                {"k6_data_sent_total", 15980}};
  for (const auto& [name, want] : totals) {
    absl::StatusOr<std::vector<QueryResult>> r = prometheus.Query(
        absl::StrCat("last_over_time(", name, "{test_run_id=\"", test_run_id, "\"}[2h])"),
        absl::Now() + absl::Minutes(1));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->size(), 1u) << name;
    EXPECT_EQ(r->front().value, want) << name;
  }
}

}  // namespace rwexport
