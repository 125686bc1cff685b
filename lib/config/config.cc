#include "lib/config/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "lib/common/redact.h"
#include "lib/model/metric.h"

namespace rwexport {
namespace {

constexpr absl::string_view kProvider = "prometheus";
constexpr absl::string_view kMetricNameRule = "[a-zA-Z_:][a-zA-Z0-9_:]*";

absl::Status FieldError(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", absl::CHexEscape(s), "\""); }

bool HasControlChar(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// URLs

bool IsHostChar(char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
}

// ---------------------------------------------------------------------------------------------
// Headers

// RFC 9110 token characters.
bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// Why a header cannot be set by the user, or empty if it can.
absl::string_view ReservedHeaderReason(absl::string_view name) {
  struct Reserved {
    absl::string_view name;
    absl::string_view reason;
  };
  static constexpr Reserved kReserved[] = {
      {"Content-Type", "cannot be set: the remote-write protocol fixes Content-Type"},
      {"Content-Encoding", "cannot be set: the remote-write protocol fixes Content-Encoding"},
      {"X-Prometheus-Remote-Write-Version",
       "cannot be set: the remote-write protocol fixes X-Prometheus-Remote-Write-Version"},
      {"Authorization", "cannot be set: use credentials (token, or username and password)"},
      {"Content-Length", "cannot be set: it is computed for every request"},
      {"Host", "cannot be set: it comes from remoteWriteURL"},
      {"User-Agent", "cannot be set: rwexport identifies itself"},
  };
  for (const Reserved& r : kReserved) {
    if (absl::EqualsIgnoreCase(name, r.name)) return r.reason;
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Files

absl::Status CheckReadableFile(absl::string_view path, absl::string_view file) {
  std::string name(file);
  struct stat st;
  if (stat(name.c_str(), &st) != 0) {
    return FieldError(path, absl::StrCat("cannot read ", Quoted(file), ": ",
                                         std::generic_category().message(errno)));
  }
  if (S_ISDIR(st.st_mode)) {
    return FieldError(path, absl::StrCat("cannot read ", Quoted(file), ": is a directory"));
  }
  FILE* f = std::fopen(name.c_str(), "rb");
  if (f == nullptr) {
    return FieldError(path, absl::StrCat("cannot read ", Quoted(file), ": ",
                                         std::generic_category().message(errno)));
  }
  std::fclose(f);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Target parts

absl::Status ValidateCredentials(const std::string& path, const rwexport::v1::Target& target,
                                 bool url_has_userinfo, TargetConfig* out) {
  if (!target.has_credentials()) return absl::OkStatus();
  const rwexport::v1::Credentials& c = target.credentials();
  const std::string cpath = absl::StrCat(path, ".credentials");
  if (!c.token().empty() && (!c.username().empty() || !c.password().empty())) {
    return FieldError(cpath, "set either token or username and password, not both");
  }
  if (!c.username().empty() && c.password().empty()) {
    return FieldError(absl::StrCat(cpath, ".password"),
                      "required when credentials.username is set");
  }
  if (c.username().empty() && !c.password().empty()) {
    return FieldError(absl::StrCat(cpath, ".username"),
                      "required when credentials.password is set");
  }
  if (HasControlChar(c.token())) {
    return FieldError(absl::StrCat(cpath, ".token"), "must not contain control characters");
  }
  if (HasControlChar(c.username()) || HasControlChar(c.password())) {
    return FieldError(cpath, "username and password must not contain control characters");
  }
  if (absl::StrContains(c.username(), ':')) {
    return FieldError(absl::StrCat(cpath, ".username"),
                      "must not contain ':' (HTTP basic authentication)");
  }
  bool any = !c.token().empty() || !c.username().empty();
  if (any && url_has_userinfo) {
    return FieldError(cpath,
                      "remoteWriteURL already carries user info (user@host); set the "
                      "credentials in one place only");
  }
  out->bearer_token = c.token();
  out->username = c.username();
  out->password = c.password();
  return absl::OkStatus();
}

absl::Status ValidateHeaders(const std::string& path, const rwexport::v1::Target& target,
                             TargetConfig* out) {
  for (const auto& [name, value] : target.headers()) out->headers.emplace_back(name, value);
  std::sort(out->headers.begin(), out->headers.end());
  absl::flat_hash_map<std::string, std::string> seen;  // Lower-case name -> name.
  for (const auto& [name, value] : out->headers) {
    const std::string hpath = absl::StrCat(path, ".headers[", Quoted(name), "]");
    if (name.empty()) return FieldError(absl::StrCat(path, ".headers"), "empty header name");
    for (char c : name) {
      if (!IsTokenChar(c)) {
        return FieldError(hpath,
                          "invalid header name (allowed: letters, digits and "
                          "!#$%&'*+-.^_`|~)");
      }
    }
    absl::string_view reserved = ReservedHeaderReason(name);
    if (!reserved.empty()) return FieldError(hpath, reserved);
    if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      return FieldError(hpath, "value must not contain CR, LF or NUL");
    }
    auto [it, inserted] = seen.emplace(absl::AsciiStrToLower(name), name);
    if (!inserted) {
      return FieldError(hpath, absl::StrCat("duplicate of header ", Quoted(it->second),
                                            " (header names are case-insensitive)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTls(const std::string& path, const rwexport::v1::Target& target,
                         TargetConfig* out) {
  if (!target.has_tls()) return absl::OkStatus();
  const rwexport::v1::TlsOptions& tls = target.tls();
  const std::string tpath = absl::StrCat(path, ".tls");
  if (!tls.cert_file().empty() && tls.key_file().empty()) {
    return FieldError(absl::StrCat(tpath, ".keyFile"), "required when tls.certFile is set");
  }
  if (tls.cert_file().empty() && !tls.key_file().empty()) {
    return FieldError(absl::StrCat(tpath, ".certFile"), "required when tls.keyFile is set");
  }
  const std::pair<absl::string_view, const std::string*> files[] = {
      {"caFile", &tls.ca_file()}, {"certFile", &tls.cert_file()}, {"keyFile", &tls.key_file()}};
  for (const auto& [field, file] : files) {
    if (file->empty()) continue;
    absl::Status status = CheckReadableFile(absl::StrCat(tpath, ".", field), *file);
    if (!status.ok()) return status;
  }
  out->ca_file = tls.ca_file();
  out->cert_file = tls.cert_file();
  out->key_file = tls.key_file();
  out->insecure_skip_verify = tls.insecure_skip_verify();
  return absl::OkStatus();
}

absl::Status ValidateTrendStats(const std::string& path, const rwexport::v1::Target& target,
                                TargetConfig* out) {
  std::vector<TrendStat> stats;
  if (target.trend_stats().empty()) {
    stats = DefaultTrendStats();
  } else {
    for (int i = 0; i < target.trend_stats_size(); ++i) {
      absl::StatusOr<TrendStat> stat = ParseTrendStat(target.trend_stats(i));
      if (!stat.ok()) {
        return FieldError(absl::StrCat(path, ".trendStats[", i, "]"), stat.status().message());
      }
      stats.push_back(*std::move(stat));
    }
  }
  absl::flat_hash_set<std::string> suffixes;
  for (TrendStat& stat : stats) {
    if (suffixes.insert(std::string(stat.suffix())).second) {
      out->trend_stats.push_back(std::move(stat));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Metric entries

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

absl::Status ValidateMetrics(const std::string& path, const rwexport::v1::Target& target,
                             TargetConfig* out) {
  if (static_cast<size_t>(target.metrics_size()) > kMaxMetricEntries) {
    return FieldError(
        absl::StrCat(path, ".metrics"),
        absl::StrCat("at most ", kMaxMetricEntries, " entries, got ", target.metrics_size()));
  }
  std::vector<Candidate> candidates;
  for (int i = 0; i < target.metrics_size(); ++i) {
    candidates.push_back({target.metrics(i), absl::StrCat(path, ".metrics[", i, "]")});
  }
  if (!target.has_include_default_metrics() || target.include_default_metrics()) {
    for (const std::string& name : DefaultMetricNames()) {
      Candidate c;
      c.entry.set_source_metric(name);
      candidates.push_back(std::move(c));
    }
  }

  absl::flat_hash_set<std::string> seen_entries;
  absl::flat_hash_map<std::string, std::string> base_name_owner;  // base_name -> entry.
  for (const Candidate& candidate : candidates) {
    const rwexport::v1::MetricEntry& entry = candidate.entry;
    const bool is_default = candidate.path.empty();
    auto skip = [&](std::string reason) {
      out->skipped.push_back({entry.source_metric(), std::move(reason)});
    };

    // Request errors first, so that they are reported even for a duplicate entry.
    for (int k = 0; k < entry.keep_tags_size(); ++k) {
      if (entry.keep_tags(k).empty()) {
        return FieldError(absl::StrCat(candidate.path, ".keepTags[", k, "]"), "must not be empty");
      }
    }
    const bool blank = absl::StripAsciiWhitespace(entry.source_metric()).empty();
    absl::StatusOr<MetricSelector> selector = MetricSelector::Parse(entry.source_metric());
    if (!blank && !selector.ok()) {
      return FieldError(absl::StrCat(candidate.path, ".sourceMetric"),
                        absl::StrCat("invalid selector ", Quoted(entry.source_metric()), ": ",
                                     selector.status().message()));
    }

    if (!seen_entries.insert(DuplicateKey(entry)).second) continue;

    if (blank) {
      skip("empty sourceMetric");
      continue;
    }
    const std::string& metric = selector->metric();
    if (metric.empty()) {
      skip("no metric name before the tag selector");
      continue;
    }
    if (!IsValidMetricName(metric)) {
      skip(absl::StrCat("metric name ", Quoted(metric),
                        " does not follow Prometheus naming rules (", kMetricNameRule, ")"));
      continue;
    }
    if (!entry.target_metric().empty() && !IsValidMetricName(entry.target_metric())) {
      skip(absl::StrCat("targetMetric ", Quoted(entry.target_metric()),
                        " does not follow Prometheus naming rules (", kMetricNameRule, ")"));
      continue;
    }

    OutputSpec spec;
    spec.entry = entry.source_metric();
    spec.source_metric = metric;
    spec.base_name =
        entry.target_metric().empty() ? absl::StrCat("k6_", metric) : entry.target_metric();

    std::string tag_problem;
    absl::flat_hash_map<std::string, std::string> label_owner;  // label -> k6 tag.
    for (const std::string& tag : entry.keep_tags()) {
      if (std::find(spec.keep_tags.begin(), spec.keep_tags.end(), tag) != spec.keep_tags.end()) {
        continue;
      }
      std::string label = SanitizeLabelName(tag);
      if (!IsValidLabelName(label)) {
        tag_problem = absl::StrCat("keepTags ", Quoted(tag), " cannot become a Prometheus label (",
                                   Quoted(label), " is not a valid label name)");
        break;
      }
      if (label == "test_run_id" && out->include_test_run_id) {
        tag_problem = absl::StrCat("keepTags ", Quoted(tag),
                                   " would become label \"test_run_id\", which includeTestRunId "
                                   "already adds");
        break;
      }
      auto [it, inserted] = label_owner.emplace(label, tag);
      if (!inserted) {
        tag_problem = absl::StrCat("keepTags ", Quoted(it->second), " and ", Quoted(tag),
                                   " both become label ", Quoted(label));
        break;
      }
      spec.keep_tags.push_back(tag);
      spec.keep_labels.push_back(std::move(label));
    }
    if (!tag_problem.empty()) {
      skip(std::move(tag_problem));
      continue;
    }

    auto owner = base_name_owner.find(spec.base_name);
    if (owner != base_name_owner.end()) {
      // A default metric the user already exports under this name yields to the user's entry.
      if (is_default) continue;
      skip(absl::StrCat("exported name ", Quoted(spec.base_name), " is already used by entry ",
                        Quoted(owner->second),
                        "; set targetMetric to export this entry under another name"));
      continue;
    }
    base_name_owner.emplace(spec.base_name, spec.entry);
    spec.selector = *std::move(selector);
    out->outputs.push_back(std::move(spec));
  }
  return absl::OkStatus();
}

absl::StatusOr<TargetConfig> ValidateTarget(const std::string& path,
                                            const rwexport::v1::Target& target) {
  TargetConfig out;

  if (target.provider().empty()) {
    return FieldError(absl::StrCat(path, ".provider"),
                      absl::StrCat("required; expected \"", kProvider, "\""));
  }
  if (!absl::EqualsIgnoreCase(target.provider(), kProvider)) {
    return FieldError(
        absl::StrCat(path, ".provider"),
        absl::StrCat("unsupported provider ", Quoted(target.provider()), "; expected \"", kProvider,
                     "\" (the provider that speaks remote write)"));
  }

  const std::string url_path = absl::StrCat(path, ".remoteWriteURL");
  if (target.remote_write_url().empty()) return FieldError(url_path, "required");
  absl::Status url_status = CheckRemoteWriteUrl(target.remote_write_url());
  if (!url_status.ok()) return FieldError(url_path, url_status.message());
  out.url = target.remote_write_url();
  out.redacted_url = RedactRemoteWriteUrl(out.url);
  UrlParts parts;
  SplitUrl(out.url, &parts);

  absl::Status status = ValidateCredentials(path, target, parts.has_userinfo, &out);
  if (!status.ok()) return status;

  if (target.has_resample_rate()) {
    uint32_t rate = target.resample_rate();
    if (rate < 1 || rate > 10) {
      return FieldError(absl::StrCat(path, ".resampleRate"),
                        absl::StrCat("must be an integer from 1 to 10, got ", rate));
    }
    out.resample_rate_s = static_cast<int>(rate);
  }

  if (target.timeout_ms() != 0) {
    if (absl::Milliseconds(target.timeout_ms()) > kMaxTimeout) {
      return FieldError(
          absl::StrCat(path, ".timeoutMs"),
          absl::StrCat("must be from 1 to ", absl::ToInt64Milliseconds(kMaxTimeout),
                       " (10 minutes; 0 means the default, 10000), got ", target.timeout_ms()));
    }
    out.timeout = absl::Milliseconds(target.timeout_ms());
  }

  status = ValidateHeaders(path, target, &out);
  if (!status.ok()) return status;
  status = ValidateTls(path, target, &out);
  if (!status.ok()) return status;
  status = ValidateTrendStats(path, target, &out);
  if (!status.ok()) return status;

  out.include_test_run_id = target.include_test_run_id();
  out.stale_markers = target.stale_markers();
  out.native_histograms = target.native_histograms();

  status = ValidateMetrics(path, target, &out);
  if (!status.ok()) return status;
  return out;
}

}  // namespace

absl::Status CheckRemoteWriteUrl(absl::string_view url) {
  for (size_t i = 0; i < url.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(url[i]);
    if (c <= 0x20 || c == 0x7F) {
      return absl::InvalidArgumentError(
          absl::StrCat("must not contain spaces or control characters (offset ", i, ")"));
    }
  }
  UrlParts parts;
  if (!SplitUrl(url, &parts)) {
    return absl::InvalidArgumentError("must start with http:// or https://");
  }
  if (!absl::EqualsIgnoreCase(parts.scheme, "http") &&
      !absl::EqualsIgnoreCase(parts.scheme, "https")) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported scheme ", Quoted(parts.scheme), " (want http:// or https://)"));
  }
  if (absl::StrContains(url, '#')) {
    return absl::InvalidArgumentError("must not contain a fragment (#...)");
  }
  absl::string_view host_port = parts.host_port;
  absl::string_view host;
  absl::string_view port;
  bool has_port = false;
  if (!host_port.empty() && host_port[0] == '[') {
    size_t close = host_port.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("missing ']' after the IPv6 address");
    }
    host = host_port.substr(1, close - 1);
    for (char c : host) {
      if (!absl::ascii_isxdigit(c) && c != ':' && c != '.') {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid IPv6 address ", Quoted(host), " in the host"));
      }
    }
    absl::string_view rest = host_port.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') {
        return absl::InvalidArgumentError("unexpected text after the IPv6 address");
      }
      has_port = true;
      port = rest.substr(1);
    }
  } else {
    size_t colon = host_port.find(':');
    host = host_port.substr(0, colon);
    if (colon != absl::string_view::npos) {
      has_port = true;
      port = host_port.substr(colon + 1);
    }
    for (char c : host) {
      if (!IsHostChar(c)) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid character ", Quoted(std::string(1, c)), " in the host"));
      }
    }
  }
  if (host.empty()) return absl::InvalidArgumentError("missing host");
  if (has_port) {
    uint32_t number = 0;
    bool digits = !port.empty() && port.size() <= 5;
    for (char c : port) digits = digits && absl::ascii_isdigit(c);
    if (!digits || !absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid port ", Quoted(port), " (want a number from 1 to 65535)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ExportConfig> ValidateStartExport(const rwexport::v1::StartExportRequest& request) {
  ExportConfig config;
  if (request.test_run_id().empty()) return FieldError("testRunId", "required");
  if (request.test_run_id().size() > kMaxTestRunIdLength) {
    return FieldError("testRunId", absl::StrCat("must be at most ", kMaxTestRunIdLength,
                                                " characters, got ", request.test_run_id().size()));
  }
  config.test_run_id = request.test_run_id();
  if (request.targets().empty()) return FieldError("targets", "at least one target is required");
  if (static_cast<size_t>(request.targets_size()) > kMaxTargets) {
    return FieldError(
        "targets", absl::StrCat("at most ", kMaxTargets, " targets, got ", request.targets_size()));
  }
  for (int i = 0; i < request.targets_size(); ++i) {
    absl::StatusOr<TargetConfig> target =
        ValidateTarget(absl::StrCat("targets[", i, "]"), request.targets(i));
    if (!target.ok()) return target.status();
    config.targets.push_back(*std::move(target));
  }
  return config;
}

v1::Target RedactTarget(const v1::Target& target) {
  v1::Target out = target;
  out.set_remote_write_url(RedactRemoteWriteUrl(target.remote_write_url()));
  if (!out.credentials().token().empty()) out.mutable_credentials()->set_token(kRedacted);
  if (!out.credentials().password().empty()) out.mutable_credentials()->set_password(kRedacted);
  for (auto& [name, value] : *out.mutable_headers()) {
    if (IsSecretParamName(name)) value = kRedacted;
  }
  return out;
}

}  // namespace rwexport
