// Small test helpers over an export's figures and what reached Prometheus, shared by the
// integration tests that feed the same run through different ways in. Test-only.
#ifndef RWEXPORT_TESTS_TESTING_FIGURES_H_
#define RWEXPORT_TESTS_TESTING_FIGURES_H_

#include <cstdint>
#include <map>
#include <string>

#include "rwexport/v1/export.pb.h"
#include "tests/testing/prometheus.h"

namespace rwexport {

// Rejected counts summed by reason.
std::map<std::string, uint64_t> ByReason(
    const google::protobuf::RepeatedPtrField<v1::Rejection>& rejections);

// Expects (gtest) the totals k6 printed for shared/testdata/k6/finance-run.json — http_reqs 60,
// iterations 20, data_received 42039, data_sent 15980 — as the newest stored points of the
// test run's k6_<metric>_total series (label test_run_id).
void ExpectFinanceRunTotals(PrometheusServer& prometheus, const std::string& test_run_id);

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_FIGURES_H_
