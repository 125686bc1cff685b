// A metric entry's source: a k6 metric name, optionally followed by a tag selector in
// Prometheus syntax, e.g. `http_req_duration{status=~"2..",method!="OPTIONS"}`.
//
// Grammar (whitespace allowed around every token):
//   selector := metric [ "{" [ matcher { "," matcher } [ "," ] ] "}" ]
//   matcher  := tag op string
//   tag      := [A-Za-z_][A-Za-z0-9_.-]*  |  string
//   op       := "=" | "!=" | "=~" | "!~"
//   string   := "..." | '...'  (escapes \" \' \\ \n \r \t \xHH \uHHHH)  |  `raw`
// The metric name is everything before "{" (trimmed); whether it is a valid Prometheus name is
// not checked here (the configuration validator decides what to do with it).
//
// Matching follows PromQL: regexes (RE2) are fully anchored, and a tag the sample does not
// carry reads as the empty string (`status=""` matches a missing tag, `status!=""` requires it).
//
// MetricSelector is an immutable value: copyable (compiled regexes are shared), and safe to use
// from any number of threads at once.
#ifndef RWEXPORT_LIB_CONFIG_SELECTOR_H_
#define RWEXPORT_LIB_CONFIG_SELECTOR_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "re2/re2.h"

namespace rwexport {

// A sample's tags as (key, value) pairs, in any order.
using TagLookup = absl::Span<const std::pair<std::string, std::string>>;

// The value of tag `key` in `tags`, or nullptr when absent (the first one if repeated).
const std::string* FindTag(TagLookup tags, absl::string_view key);

enum class MatchOp { kEqual, kNotEqual, kRegexMatch, kRegexNoMatch };

// "=", "!=", "=~" or "!~".
absl::string_view MatchOpString(MatchOp op);

// One `tag op "value"` term of a selector.
struct TagMatcher {
  std::string tag;
  MatchOp op = MatchOp::kEqual;
  std::string value;                 // The literal, or the regex as written (unanchored).
  std::shared_ptr<const RE2> regex;  // Set for kRegexMatch / kRegexNoMatch.

  // Whether a sample whose tag value is `tag_value` ("" when absent) passes this term.
  bool Matches(absl::string_view tag_value) const;
};

class MetricSelector {
 public:
  // An empty selector: no metric name, no matchers (matches every sample).
  MetricSelector() = default;

  // Parses `text`. Errors: InvalidArgumentError naming the problem and its byte offset in
  // `text`, e.g. "unterminated string at offset 26", "invalid regex "2(.." for tag status: ...".
  static absl::StatusOr<MetricSelector> Parse(absl::string_view text);

  // The metric name (may be empty if `text` had none; not validated).
  const std::string& metric() const { return metric_; }
  bool has_matchers() const { return !matchers_.empty(); }
  const std::vector<TagMatcher>& matchers() const { return matchers_; }

  // Whether a sample of metric() with these tags is selected (every matcher passes). The metric
  // name itself is not compared: callers route by name.
  bool Matches(TagLookup tags) const;

  // Canonical form: `metric` or `metric{tag="v",tag=~"re"}`; parses back to an equal selector.
  std::string ToString() const;

 private:
  std::string metric_;
  std::vector<TagMatcher> matchers_;
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CONFIG_SELECTOR_H_
