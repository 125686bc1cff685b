// Fuzz target: MetricSelector, which parses the sourceMetric of every configured metric entry.
// Input: the selector text on the first line; each further line is a sample tag `key=value`.
// Checks the documented contracts: ToString() parses back to a selector with the same
// canonical form and the same verdict on the tags, and `=`/`!=` terms compare literally (a
// missing tag reads as "").
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "lib/config/selector.h"

namespace {

void Require(bool condition, const char* what, const std::string& detail = "") {
  if (condition) return;
  std::fprintf(stderr, "selector_fuzz: contract broken: %s %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const size_t newline = text.find('\n');
  const absl::string_view selector_text = text.substr(0, newline);
  std::vector<std::pair<std::string, std::string>> tags;
  if (newline != absl::string_view::npos) {
    for (absl::string_view line : absl::StrSplit(text.substr(newline + 1), '\n')) {
      std::pair<std::string, std::string> tag = absl::StrSplit(line, absl::MaxSplits('=', 1));
      tags.push_back(std::move(tag));
    }
  }

  absl::StatusOr<rwexport::MetricSelector> selector =
      rwexport::MetricSelector::Parse(selector_text);
  if (!selector.ok()) return 0;
  const bool matches = selector->Matches(tags);

  bool every_term = true;
  for (const rwexport::TagMatcher& m : selector->matchers()) {
    const std::string* found = rwexport::FindTag(tags, m.tag);
    const std::string value = found != nullptr ? *found : std::string();
    const bool term = m.Matches(value);
    every_term = every_term && term;
    if (m.op == rwexport::MatchOp::kEqual) Require(term == (value == m.value), "= is not literal");
    if (m.op == rwexport::MatchOp::kNotEqual) {
      Require(term == (value != m.value), "!= is not literal");
    }
    if (m.op == rwexport::MatchOp::kRegexMatch || m.op == rwexport::MatchOp::kRegexNoMatch) {
      Require(m.regex != nullptr, "regex term without a compiled regex");
    }
  }
  Require(matches == every_term, "Matches() differs from its terms", std::string(selector_text));

  const std::string canonical = selector->ToString();
  absl::StatusOr<rwexport::MetricSelector> again = rwexport::MetricSelector::Parse(canonical);
  Require(again.ok(), "ToString() does not parse back:", canonical);
  Require(again->ToString() == canonical, "ToString() is not canonical:", canonical);
  Require(again->metric() == selector->metric(), "metric changed in the round trip:", canonical);
  Require(again->matchers().size() == selector->matchers().size(), "matchers lost:", canonical);
  Require(again->Matches(tags) == matches, "round trip changed the verdict:", canonical);
  return 0;
}
