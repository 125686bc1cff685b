// Resolution of a target's metric entries, plus the default metrics, into the outputs in
// force, the entries skipped (and why) and the default metrics replaced by a user entry.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/config/config.h"
#include "lib/config/config_internal.h"
#include "lib/config/selector.h"
#include "lib/model/metric.h"

namespace rwexport {
namespace config_internal {
namespace {

constexpr absl::string_view kMetricNameRule = "[a-zA-Z_:][a-zA-Z0-9_:]*";

struct Candidate {
  rwexport::v1::MetricEntry entry;
  std::string path;  // "targets[0].metrics[2]"; empty for an added default metric.
};

// Identity of an entry for exact-duplicate removal: source text, target, set of keep tags.
std::string DuplicateKey(const rwexport::v1::MetricEntry& entry) {
  std::vector<std::string> tags(entry.keep_tags().begin(), entry.keep_tags().end());
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return absl::StrCat(entry.source_metric().size(), ":", entry.source_metric(),
                      entry.target_metric().size(), ":", entry.target_metric(),
                      absl::StrJoin(tags, "\n"));
}

// Why `tag` cannot be kept by an entry of `target` as label `label`, or empty if it can.
std::string KeepTagProblem(const TargetConfig& target, const std::string& tag,
                           const std::string& label) {
  if (!IsValidLabelName(label)) {
    return absl::StrCat("keepTags ", Quoted(tag), " cannot become a Prometheus label (",
                        Quoted(label), " is not a valid label name)");
  }
  if (target.include_test_run_id && label == target.test_run_id_label) {
    return absl::StrCat("keepTags ", Quoted(tag), " would become label ", Quoted(label),
                        ", which includeTestRunId already adds");
  }
  for (const auto& [name, value] : target.labels) {
    if (name == label) {
      return absl::StrCat("keepTags ", Quoted(tag), " would become label ", Quoted(label),
                          ", which labels already sets");
    }
  }
  return {};
}

// The target's entries, in request order, then (unless a "*" entry exports them, or
// includeDefaultMetrics is false) the default metrics, whose base names go to `default_names`.
std::vector<Candidate> CollectCandidates(const std::string& path,
                                         const rwexport::v1::Target& target,
                                         absl::flat_hash_set<std::string>* default_names) {
  std::vector<Candidate> candidates;
  bool has_all_metrics = false;
  for (int i = 0; i < target.metrics_size(); ++i) {
    candidates.push_back({target.metrics(i), absl::StrCat(path, ".metrics[", i, "]")});
    if (absl::StripAsciiWhitespace(target.metrics(i).source_metric()) == kAllMetricsEntry &&
        target.metrics(i).target_metric().empty()) {
      has_all_metrics = true;  // (a "*" with targetMetric is skipped below)
    }
  }
  // "*" exports the default metrics too (and with its keepTags).
  if (!has_all_metrics &&
      (!target.has_include_default_metrics() || target.include_default_metrics())) {
    for (const std::string& name : DefaultMetricNames()) {
      Candidate c;
      c.entry.set_source_metric(name);
      candidates.push_back(std::move(c));
      default_names->insert(absl::StrCat("k6_", name));
    }
  }
  return candidates;
}

// The request errors of one entry: lengths, the number of keepTags, empty keepTags.
absl::Status CheckEntryBounds(const Candidate& candidate) {
  const rwexport::v1::MetricEntry& entry = candidate.entry;
  absl::Status length = CheckLength(absl::StrCat(candidate.path, ".sourceMetric"),
                                    entry.source_metric(), kMaxSourceMetricLength);
  if (length.ok()) {
    length = CheckLength(absl::StrCat(candidate.path, ".targetMetric"), entry.target_metric(),
                         kMaxNameLength);
  }
  if (!length.ok()) return length;
  if (static_cast<size_t>(entry.keep_tags_size()) > kMaxKeepTags) {
    return FieldError(
        absl::StrCat(candidate.path, ".keepTags"),
        absl::StrCat("at most ", kMaxKeepTags, " tags, got ", entry.keep_tags_size()));
  }
  for (int k = 0; k < entry.keep_tags_size(); ++k) {
    const std::string kpath = absl::StrCat(candidate.path, ".keepTags[", k, "]");
    if (entry.keep_tags(k).empty()) return FieldError(kpath, "must not be empty");
    length = CheckLength(kpath, entry.keep_tags(k), kMaxNameLength);
    if (!length.ok()) return length;
  }
  return absl::OkStatus();
}

// Fills spec->keep_tags and spec->keep_labels from the entry's keepTags (duplicates removed);
// returns why the entry cannot keep them, or empty if it can.
std::string ResolveKeepTags(const TargetConfig& target, const rwexport::v1::MetricEntry& entry,
                            OutputSpec* spec) {
  absl::flat_hash_map<std::string, std::string> label_owner;  // label -> k6 tag.
  for (const std::string& tag : entry.keep_tags()) {
    if (std::find(spec->keep_tags.begin(), spec->keep_tags.end(), tag) != spec->keep_tags.end()) {
      continue;
    }
    std::string label = SanitizeLabelName(tag);
    std::string tag_problem = KeepTagProblem(target, tag, label);
    if (!tag_problem.empty()) return tag_problem;
    auto [it, inserted] = label_owner.emplace(label, tag);
    if (!inserted) {
      return absl::StrCat("keepTags ", Quoted(it->second), " and ", Quoted(tag),
                          " both become label ", Quoted(label));
    }
    spec->keep_tags.push_back(tag);
    spec->keep_labels.push_back(std::move(label));
  }
  return {};
}

// The candidates of one target, taken in order: each becomes an output, a skipped entry or a
// replaced default, or is dropped as an exact duplicate of an earlier one.
class MetricResolver {
 public:
  MetricResolver(TargetConfig* out, absl::flat_hash_set<std::string> default_names)
      : out_(out), default_names_(std::move(default_names)) {}

  // Errors: the candidate's request errors (reported even for a duplicate entry).
  absl::Status Resolve(const Candidate& candidate);

 private:
  // base_name -> the entry using it, and whether that entry takes every sample of its metric.
  struct Owner {
    std::string entry;
    std::string metric;
    bool whole_metric;
  };

  void Skip(const rwexport::v1::MetricEntry& entry, std::string reason) {
    out_->skipped.push_back({entry.source_metric(), std::move(reason)});
  }
  // Why the names of an entry (its metric `metric`, "*" when `all_metrics`, and targetMetric)
  // keep it from being exported, or empty.
  std::string NameProblem(const rwexport::v1::MetricEntry& entry, const std::string& metric,
                          bool all_metrics, bool has_selector) const;
  // Adds `spec` to the outputs unless its exported name is taken.
  void Place(const rwexport::v1::MetricEntry& entry, bool is_default, bool has_selector,
             OutputSpec spec);

  TargetConfig* out_;
  const absl::flat_hash_set<std::string> default_names_;  // Base names of the defaults added.
  absl::flat_hash_set<std::string> seen_entries_;
  absl::flat_hash_map<std::string, Owner> base_name_owner_;
  bool all_metrics_seen_ = false;
};

absl::Status MetricResolver::Resolve(const Candidate& candidate) {
  const rwexport::v1::MetricEntry& entry = candidate.entry;
  const bool is_default = candidate.path.empty();

  // Request errors first, so that they are reported even for a duplicate entry.
  absl::Status bounds = CheckEntryBounds(candidate);
  if (!bounds.ok()) return bounds;
  const absl::string_view stripped = absl::StripAsciiWhitespace(entry.source_metric());
  const bool blank = stripped.empty();
  const bool all_metrics = stripped == kAllMetricsEntry;
  if (!all_metrics && absl::StartsWith(stripped, kAllMetricsEntry)) {
    if (!seen_entries_.insert(DuplicateKey(entry)).second) return absl::OkStatus();
    Skip(entry, "\"*\" takes no tag selector: write \"*\" alone, and a selector entry per metric");
    return absl::OkStatus();
  }
  absl::StatusOr<MetricSelector> selector =
      all_metrics ? MetricSelector() : MetricSelector::Parse(entry.source_metric());
  if (!blank && !selector.ok()) {
    return FieldError(absl::StrCat(candidate.path, ".sourceMetric"),
                      absl::StrCat("invalid selector ", Quoted(entry.source_metric()), ": ",
                                   selector.status().message()));
  }

  if (!seen_entries_.insert(DuplicateKey(entry)).second) return absl::OkStatus();

  if (blank) {
    Skip(entry, "empty sourceMetric");
    return absl::OkStatus();
  }
  const std::string metric = all_metrics ? std::string(kAllMetricsEntry) : selector->metric();
  const bool has_selector = !all_metrics && selector->has_matchers();
  std::string problem = NameProblem(entry, metric, all_metrics, has_selector);
  if (!problem.empty()) {
    Skip(entry, std::move(problem));
    return absl::OkStatus();
  }

  OutputSpec spec;
  spec.entry = entry.source_metric();
  spec.source_metric = metric;
  spec.all_metrics = all_metrics;
  spec.base_name = all_metrics                     ? std::string("k6_")
                   : entry.target_metric().empty() ? absl::StrCat("k6_", metric)
                                                   : entry.target_metric();
  problem = ResolveKeepTags(*out_, entry, &spec);
  if (!problem.empty()) {
    Skip(entry, std::move(problem));
    return absl::OkStatus();
  }
  spec.selector = *std::move(selector);
  Place(entry, is_default, has_selector, std::move(spec));
  return absl::OkStatus();
}

std::string MetricResolver::NameProblem(const rwexport::v1::MetricEntry& entry,
                                        const std::string& metric, bool all_metrics,
                                        bool has_selector) const {
  if (all_metrics) {
    if (all_metrics_seen_) return "only one \"*\" entry per target";
    if (!entry.target_metric().empty()) {
      return "\"*\" takes no targetMetric: every metric keeps its own name (k6_<name>)";
    }
  } else if (metric.empty()) {
    return "no metric name before the tag selector";
  } else if (!IsValidMetricName(metric)) {
    return absl::StrCat("metric name ", Quoted(metric),
                        " does not follow Prometheus naming rules (", kMetricNameRule, ")");
  }
  if (!entry.target_metric().empty() && !IsValidMetricName(entry.target_metric())) {
    return absl::StrCat("targetMetric ", Quoted(entry.target_metric()),
                        " does not follow Prometheus naming rules (", kMetricNameRule, ")");
  }
  if (has_selector && entry.target_metric().empty()) {
    return absl::StrCat("a tag selector exports only some samples of ", Quoted(metric),
                        ": set targetMetric to give them a name of their own (\"k6_", metric,
                        "\" is the whole metric's)");
  }
  return {};
}

void MetricResolver::Place(const rwexport::v1::MetricEntry& entry, bool is_default,
                           bool has_selector, OutputSpec spec) {
  if (spec.all_metrics) {
    all_metrics_seen_ = true;
    out_->outputs.push_back(std::move(spec));
    return;
  }
  const std::string& metric = spec.source_metric;
  const bool whole_metric = !has_selector;
  auto owner = base_name_owner_.find(spec.base_name);
  if (owner != base_name_owner_.end()) {
    if (is_default) {
      // Only an entry exporting the same series (every sample of this metric, under this
      // name) replaces a default; the others were refused the name below.
      out_->replaced_defaults.push_back({metric, owner->second.entry});
      return;
    }
    Skip(entry, absl::StrCat("exported name ", Quoted(spec.base_name), " is already used by entry ",
                             Quoted(owner->second.entry),
                             "; set targetMetric to export this entry under another name"));
    return;
  }
  if (!is_default && default_names_.contains(spec.base_name) &&
      (!whole_metric || spec.base_name != absl::StrCat("k6_", metric))) {
    Skip(entry, absl::StrCat("exported name ", Quoted(spec.base_name),
                             " belongs to the default metric ", Quoted(spec.base_name.substr(3)),
                             "; set another targetMetric (or includeDefaultMetrics: false)"));
    return;
  }
  base_name_owner_.emplace(spec.base_name, Owner{spec.entry, metric, whole_metric});
  out_->outputs.push_back(std::move(spec));
}

}  // namespace

absl::Status ValidateMetrics(const std::string& path, const rwexport::v1::Target& target,
                             TargetConfig* out) {
  if (static_cast<size_t>(target.metrics_size()) > kMaxMetricEntries) {
    return FieldError(
        absl::StrCat(path, ".metrics"),
        absl::StrCat("at most ", kMaxMetricEntries, " entries, got ", target.metrics_size()));
  }
  absl::flat_hash_set<std::string> default_names;
  const std::vector<Candidate> candidates = CollectCandidates(path, target, &default_names);
  MetricResolver resolver(out, std::move(default_names));
  for (const Candidate& candidate : candidates) {
    absl::Status status = resolver.Resolve(candidate);
    if (!status.ok()) return status;
  }
  if (out->outputs.empty()) {
    // Only possible without the default metrics: an export that could never send anything.
    const std::string mpath = absl::StrCat(path, ".metrics");
    if (out->skipped.empty()) {
      return FieldError(mpath,
                        "nothing to export: includeDefaultMetrics is false and no metric entry "
                        "is given");
    }
    return FieldError(
        mpath, absl::StrCat("nothing to export: includeDefaultMetrics is false and "
                            "every metric entry was skipped (",
                            Quoted(out->skipped[0].entry), ": ", out->skipped[0].reason, ")"));
  }
  return absl::OkStatus();
}

}  // namespace config_internal
}  // namespace rwexport
