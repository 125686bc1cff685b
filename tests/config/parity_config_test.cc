// The configuration k6 users expect from k6's own output: static labels, "*", selector entries
// that cannot hide a default, the test-run label's name, SigV4 (validation and redaction).
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/config/config.h"
#include "rwexport/v1/export.pb.h"
#include "tests/config/config_requests.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::StartsWith;

using rwexport::v1::MetricEntry;
using rwexport::v1::StartExportRequest;
using rwexport::v1::Target;

StartExportRequest Request() {
  StartExportRequest request = ValidRequest();
  request.set_test_run_id("run-7");
  return request;
}

MetricEntry* Add(Target* target, const std::string& source, const std::string& target_metric = "",
                 std::vector<std::string> keep_tags = {}) {
  return AddMetric(target, source, target_metric, std::move(keep_tags));
}

TargetConfig Valid(const StartExportRequest& request) { return MustValidateTarget(request); }

std::string Error(const StartExportRequest& request) {
  absl::StatusOr<ExportConfig> config = ValidateStartExport(request);
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

std::vector<std::string> Names(const TargetConfig& t) {
  std::vector<std::string> names;
  for (const OutputSpec& o : t.outputs) names.push_back(o.base_name);
  return names;
}

std::vector<std::string> Skipped(const TargetConfig& t) {
  std::vector<std::string> out;
  for (const SkippedEntry& s : t.skipped) out.push_back(s.entry + ": " + s.reason);
  return out;
}

// ---- 1. static labels

TEST(StaticLabelsTest, SortedAndKept) {
  StartExportRequest request = Request();
  (*request.mutable_targets(0)->mutable_labels())["team"] = "checkout";
  (*request.mutable_targets(0)->mutable_labels())["env"] = "staging";
  EXPECT_THAT(Valid(request).labels, ElementsAre(Pair("env", "staging"), Pair("team", "checkout")));
}

TEST(StaticLabelsTest, InvalidReservedEmptyAndTestRunLabelAreRefused) {
  auto with = [](const std::string& name, const std::string& value, bool run_id = false) {
    StartExportRequest request = Request();
    (*request.mutable_targets(0)->mutable_labels())[name] = value;
    request.mutable_targets(0)->set_include_test_run_id(run_id);
    return request;
  };
  EXPECT_THAT(Error(with("my-env", "x")), StartsWith("targets[0].labels[\"my-env\"]: "));
  EXPECT_THAT(Error(with("my-env", "x")), HasSubstr("not a valid label name"));
  EXPECT_THAT(Error(with("__name__", "x")), HasSubstr("reserved"));
  EXPECT_THAT(Error(with("env", "")), HasSubstr("empty value"));
  EXPECT_THAT(Error(with("test_run_id", "x", true)), HasSubstr("includeTestRunId"));
  // Without includeTestRunId, test_run_id is a label like any other.
  EXPECT_THAT(Valid(with("test_run_id", "x")).labels, ElementsAre(Pair("test_run_id", "x")));
}

TEST(StaticLabelsTest, AKeptTagBecomingAStaticLabelSkipsTheEntry) {
  StartExportRequest request = Request();
  (*request.mutable_targets(0)->mutable_labels())["env"] = "staging";
  Add(request.mutable_targets(0), "http_reqs", "", {"env", "name"});
  Add(request.mutable_targets(0), "checks", "", {"check"});
  const TargetConfig t = Valid(request);
  EXPECT_THAT(Skipped(t), ElementsAre("http_reqs: keepTags \"env\" would become label \"env\", "
                                      "which labels already sets"));
  // The default http_reqs is exported instead, without tags.
  EXPECT_EQ(t.outputs[0].base_name, "k6_checks");
  EXPECT_THAT(Names(t), ::testing::Contains("k6_http_reqs"));
}

// ---- 2. "*"

TEST(AllMetricsTest, StarIsOneOutputAndTakesTheDefaultsPlace) {
  StartExportRequest request = Request();
  Add(request.mutable_targets(0), "*", "", {"scenario"});
  Add(request.mutable_targets(0), "http_req_duration", "", {"name"});
  Add(request.mutable_targets(0), "http_reqs", "requests");
  const TargetConfig t = Valid(request);
  EXPECT_THAT(Skipped(t), IsEmpty());
  ASSERT_EQ(t.outputs.size(), 3u);  // no default added: "*" exports them
  EXPECT_TRUE(t.outputs[0].all_metrics);
  EXPECT_EQ(t.outputs[0].base_name, "k6_");
  EXPECT_THAT(t.outputs[0].keep_labels, ElementsAre("scenario"));
  EXPECT_EQ(t.outputs[1].base_name, "k6_http_req_duration");
  EXPECT_EQ(t.outputs[2].base_name, "requests");
}

TEST(AllMetricsTest, StarTakesNoTargetMetricNoSelectorAndOnlyOnce) {
  StartExportRequest request = Request();
  Add(request.mutable_targets(0), "*", "everything");
  Add(request.mutable_targets(0), "*{status=\"200\"}");
  Add(request.mutable_targets(0), "*", "", {"name"});
  Add(request.mutable_targets(0), "*", "", {"status"});
  const TargetConfig t = Valid(request);
  EXPECT_THAT(Skipped(t), ElementsAre(HasSubstr("\"*\" takes no targetMetric"),
                                      HasSubstr("\"*\" takes no tag selector"),
                                      "*: only one \"*\" entry per target"));
  ASSERT_EQ(t.outputs.size(), 1u);
  EXPECT_THAT(t.outputs[0].keep_tags, ElementsAre("name"));
}

// ---- 6. a selector cannot hide a default

TEST(SelectorEntryTest, NeedsATargetMetricAndLeavesTheDefaultInPlace) {
  StartExportRequest request = Request();
  Add(request.mutable_targets(0), "http_req_duration{status=\"500\"}");
  const TargetConfig t = Valid(request);
  EXPECT_THAT(Skipped(t), ElementsAre(StartsWith(
                              "http_req_duration{status=\"500\"}: a tag selector exports only "
                              "some samples of \"http_req_duration\": set targetMetric")));
  EXPECT_THAT(Names(t), ElementsAre("k6_data_sent", "k6_data_received", "k6_http_req_duration",
                                    "k6_http_reqs", "k6_iterations", "k6_vus"));
  EXPECT_THAT(t.replaced_defaults, IsEmpty());
}

TEST(SelectorEntryTest, WithItsOwnNameItIsExportedBesideTheDefault) {
  StartExportRequest request = Request();
  Add(request.mutable_targets(0), "http_req_duration{status=\"500\"}", "k6_error_duration");
  const TargetConfig t = Valid(request);
  EXPECT_THAT(Skipped(t), IsEmpty());
  EXPECT_EQ(t.outputs[0].base_name, "k6_error_duration");
  EXPECT_THAT(Names(t), ::testing::Contains("k6_http_req_duration"));
}

TEST(SelectorEntryTest, TheDefaultsNameIsRefusedToASelectorOrAnotherMetric) {
  StartExportRequest request = Request();
  Add(request.mutable_targets(0), "http_req_duration{status=\"500\"}", "k6_http_req_duration");
  Add(request.mutable_targets(0), "my_counter", "k6_http_reqs");
  const TargetConfig t = Valid(request);
  EXPECT_THAT(Skipped(t),
              ElementsAre(HasSubstr("exported name \"k6_http_req_duration\" belongs to the "
                                    "default metric \"http_req_duration\""),
                          HasSubstr("exported name \"k6_http_reqs\" belongs to the default")));
  EXPECT_THAT(t.replaced_defaults, IsEmpty());
  // Without the defaults the names are free.
  request.mutable_targets(0)->set_include_default_metrics(false);
  EXPECT_THAT(Names(Valid(request)), ElementsAre("k6_http_req_duration", "k6_http_reqs"));
}

TEST(SelectorEntryTest, AnEntryExportingTheSameSeriesReplacesTheDefaultAndIsListed) {
  StartExportRequest request = Request();
  Add(request.mutable_targets(0), "http_req_duration", "", {"name", "method"});
  Add(request.mutable_targets(0), "vus");
  const TargetConfig t = Valid(request);
  EXPECT_THAT(Skipped(t), IsEmpty());
  EXPECT_THAT(Names(t), ElementsAre("k6_http_req_duration", "k6_vus", "k6_data_sent",
                                    "k6_data_received", "k6_http_reqs", "k6_iterations"));
  // `vus` as given is the default itself: nothing is replaced.
  ASSERT_EQ(t.replaced_defaults.size(), 1u);
  EXPECT_EQ(t.replaced_defaults[0].metric, "http_req_duration");
  EXPECT_EQ(t.replaced_defaults[0].entry, "http_req_duration");
}

// ---- 7. testRunIdLabel

TEST(TestRunIdLabelTest, DefaultsToTestRunIdAndTakesAValidName) {
  StartExportRequest request = Request();
  request.mutable_targets(0)->set_include_test_run_id(true);
  EXPECT_EQ(Valid(request).test_run_id_label, "test_run_id");
  request.mutable_targets(0)->set_test_run_id_label("testid");
  EXPECT_EQ(Valid(request).test_run_id_label, "testid");

  request.mutable_targets(0)->set_test_run_id_label("test-id");
  EXPECT_THAT(Error(request), StartsWith("targets[0].testRunIdLabel: "));
  request.mutable_targets(0)->set_test_run_id_label("__testid");
  EXPECT_THAT(Error(request), HasSubstr("reserved"));
  request.mutable_targets(0)->set_test_run_id_label("testid");
  request.mutable_targets(0)->set_include_test_run_id(false);
  EXPECT_THAT(Error(request), HasSubstr("without includeTestRunId"));
}

TEST(TestRunIdLabelTest, AKeptTagOfThatNameSkipsTheEntry) {
  StartExportRequest request = Request();
  request.mutable_targets(0)->set_include_test_run_id(true);
  request.mutable_targets(0)->set_test_run_id_label("testid");
  Add(request.mutable_targets(0), "checks", "", {"testid"});
  Add(request.mutable_targets(0), "http_reqs", "", {"test_run_id"});  // free now
  const TargetConfig t = Valid(request);
  EXPECT_THAT(Skipped(t), ElementsAre(HasSubstr("would become label \"testid\"")));
  EXPECT_EQ(t.outputs[0].base_name, "k6_http_reqs");
}

// ---- 3. SigV4

Target* WithSigV4(StartExportRequest* request) {
  Target* target = request->mutable_targets(0);
  target->mutable_sigv4()->set_region("eu-west-1");
  target->mutable_sigv4()->set_access_key("AKIDEXAMPLE");
  target->mutable_sigv4()->set_secret_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  target->mutable_sigv4()->set_session_token("FwoGZXIvYXdzEXAMPLETOKEN");
  return target;
}

TEST(SigV4ConfigTest, DefaultsToTheApsService) {
  StartExportRequest request = Request();
  WithSigV4(&request);
  const TargetConfig t = Valid(request);
  ASSERT_TRUE(t.sigv4.has_value());
  EXPECT_EQ(t.sigv4->region, "eu-west-1");
  EXPECT_EQ(t.sigv4->service, "aps");
  EXPECT_EQ(t.sigv4->session_token, "FwoGZXIvYXdzEXAMPLETOKEN");
}

TEST(SigV4ConfigTest, RefusesMissingKeysBadRegionsCredentialsAndAmzHeaders) {
  StartExportRequest request = Request();
  WithSigV4(&request)->mutable_sigv4()->clear_region();
  EXPECT_THAT(Error(request), StartsWith("targets[0].sigv4.region: required"));
  request = Request();
  WithSigV4(&request)->mutable_sigv4()->set_region("EU West");
  EXPECT_THAT(Error(request), StartsWith("targets[0].sigv4.region: "));
  request = Request();
  WithSigV4(&request)->mutable_sigv4()->clear_secret_key();
  EXPECT_THAT(Error(request), StartsWith("targets[0].sigv4.secretKey: required"));
  request = Request();
  WithSigV4(&request)->mutable_credentials()->set_token("t0ken");
  EXPECT_THAT(Error(request), HasSubstr("either sigv4 or credentials"));
  request = Request();
  (*WithSigV4(&request)->mutable_headers())["X-Amz-Date"] = "20150830T123600Z";
  EXPECT_THAT(Error(request), HasSubstr("the signature sets the X-Amz-* headers"));
}

TEST(SigV4ConfigTest, ErrorsAndRedactedTargetsShowNoKey) {
  StartExportRequest request = Request();
  WithSigV4(&request)->mutable_sigv4()->set_session_token("tok\nen");
  const std::string error = Error(request);
  EXPECT_THAT(error, StartsWith("targets[0].sigv4.sessionToken: "));
  EXPECT_THAT(error, ::testing::Not(HasSubstr("tok")));

  request = Request();
  const Target redacted = RedactTarget(*WithSigV4(&request));
  EXPECT_EQ(redacted.sigv4().region(), "eu-west-1");
  EXPECT_EQ(redacted.sigv4().access_key(), "REDACTED");
  EXPECT_EQ(redacted.sigv4().secret_key(), "REDACTED");
  EXPECT_EQ(redacted.sigv4().session_token(), "REDACTED");
  EXPECT_THAT(redacted.DebugString(), ::testing::Not(HasSubstr("EXAMPLE")));
}

}  // namespace
}  // namespace rwexport
