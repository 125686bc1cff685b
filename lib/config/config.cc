#include "lib/config/config.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/common/redact.h"
#include "lib/config/config_internal.h"
#include "lib/model/metric.h"

namespace rwexport {
namespace config_internal {

absl::Status FieldError(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

std::string Quoted(absl::string_view s) {
  constexpr size_t kShown = 64;
  if (s.size() <= kShown) return absl::StrCat("\"", absl::CHexEscape(s), "\"");
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kShown)), "...\" (", s.size(),
                      " characters)");
}

absl::Status CheckLength(absl::string_view path, absl::string_view value, size_t max) {
  if (value.size() <= max) return absl::OkStatus();
  return FieldError(path, absl::StrCat("at most ", max, " characters, got ", value.size()));
}

bool IsBlank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

bool HasControlChar(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return true;
  }
  return false;
}

}  // namespace config_internal

namespace {

using config_internal::FieldError;
using config_internal::Quoted;

constexpr absl::string_view kProvider = "prometheus";

bool IsHostChar(char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
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

  absl::Status status =
      config_internal::ValidateCredentials(path, target, parts.has_userinfo, &out);
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

  status = config_internal::ValidateHeaders(path, target, &out);
  if (!status.ok()) return status;
  status = config_internal::ValidateTls(path, target, &out);
  if (!status.ok()) return status;
  status = config_internal::ValidateSigV4(path, target, parts.has_userinfo, &out);
  if (!status.ok()) return status;
  status = config_internal::ValidateTrendStats(path, target, &out);
  if (!status.ok()) return status;
  status = config_internal::ValidateTestRunIdLabel(path, target, &out);
  if (!status.ok()) return status;
  status = config_internal::ValidateStaticLabels(path, target, &out);
  if (!status.ok()) return status;

  out.stale_markers = target.stale_markers();
  out.native_histograms = target.native_histograms();

  status = config_internal::ValidateMetrics(path, target, &out);
  if (!status.ok()) return status;
  return out;
}

}  // namespace

absl::Status CheckRemoteWriteUrl(absl::string_view url) {
  if (url.size() > kMaxUrlLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", kMaxUrlLength, " characters, got ", url.size()));
  }
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
  // First, so that no single value needs to be looked at to refuse a huge request.
  if (const size_t bytes = request.ByteSizeLong(); bytes > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the configuration is ", bytes, " bytes encoded; at most ", kMaxConfigBytes));
  }
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
  for (int i = 0; i < request.metric_declarations_size(); ++i) {
    const v1::MetricDeclaration& decl = request.metric_declarations(i);
    const std::string field = absl::StrCat("metricDeclarations[", i, "]");
    if (!IsValidMetricName(decl.name())) {
      return FieldError(field, absl::StrCat("\"", decl.name(), "\" is not a valid metric name"));
    }
    if (decl.type() == v1::METRIC_TYPE_UNSPECIFIED || !v1::MetricType_IsValid(decl.type())) {
      return FieldError(
          field, absl::StrCat("\"", decl.name(), "\": type must be counter, gauge, rate or trend"));
    }
    if (!v1::ValueKind_IsValid(decl.kind())) {
      return FieldError(field,
                        absl::StrCat("\"", decl.name(), "\": kind must be default, time or data"));
    }
    const MetricInfo info{static_cast<MetricType>(decl.type() - 1),
                          static_cast<ValueKind>(decl.kind())};
    if (std::optional<MetricInfo> builtin = BuiltinMetric(decl.name());
        builtin.has_value() && builtin->type != info.type) {
      return FieldError(field, absl::StrCat("\"", decl.name(), "\" is k6's built-in ",
                                            MetricTypeName(builtin->type), ", not a ",
                                            MetricTypeName(info.type)));
    }
    config.metric_declarations.emplace_back(decl.name(), info);
  }
  return config;
}

v1::Target RedactTarget(const v1::Target& target) {
  v1::Target out = target;
  out.set_remote_write_url(RedactRemoteWriteUrl(target.remote_write_url()));
  if (!out.credentials().token().empty()) out.mutable_credentials()->set_token(kRedacted);
  if (!out.credentials().password().empty()) out.mutable_credentials()->set_password(kRedacted);
  if (out.has_sigv4()) {
    v1::SigV4* sigv4 = out.mutable_sigv4();
    if (!sigv4->access_key().empty()) sigv4->set_access_key(kRedacted);
    if (!sigv4->secret_key().empty()) sigv4->set_secret_key(kRedacted);
    if (!sigv4->session_token().empty()) sigv4->set_session_token(kRedacted);
  }
  for (auto& [name, value] : *out.mutable_headers()) {
    if (IsSecretParamName(name)) value = kRedacted;
  }
  return out;
}

}  // namespace rwexport
