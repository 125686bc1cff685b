#include "lib/config/k6_json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace rwexport {
namespace {

using Json = nlohmann::json;
using rwexport::v1::Credentials;
using rwexport::v1::MetricEntry;
using rwexport::v1::SigV4;
using rwexport::v1::Target;
using rwexport::v1::TlsOptions;

absl::Status PathError(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// What a value is, for "expected X, got Y". Numbers are shown unless `secret`.
std::string Describe(const Json& value, bool secret = false) {
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return secret ? "a number" : value.dump();
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

absl::Status TypeError(absl::string_view path, absl::string_view expected, const Json& value,
                       bool secret = false) {
  return PathError(path, absl::StrCat("expected ", expected, ", got ", Describe(value, secret)));
}

// Lower case without '_', '-', '.': "remote_write_url" and "remoteWriteUrl" both match
// "remoteWriteURL".
std::string Normalize(absl::string_view key) {
  std::string out;
  for (char c : key) {
    if (c != '_' && c != '-' && c != '.') out.push_back(absl::ascii_tolower(c));
  }
  return out;
}

absl::Status UnknownField(absl::string_view path, absl::string_view key,
                          const std::vector<absl::string_view>& known) {
  std::string field_path = absl::StrCat(path, ".", key);
  std::string normalized = Normalize(key);
  for (absl::string_view candidate : known) {
    if (Normalize(candidate) == normalized) {
      return PathError(field_path, absl::StrCat("unknown field (did you mean ", candidate, "?)"));
    }
  }
  return PathError(field_path,
                   absl::StrCat("unknown field; expected one of: ", absl::StrJoin(known, ", ")));
}

absl::Status ReadString(absl::string_view path, const Json& value, std::string* out,
                        bool secret = false) {
  if (!value.is_string()) return TypeError(path, "a string", value, secret);
  *out = value.get<std::string>();
  return absl::OkStatus();
}

absl::Status ReadBool(absl::string_view path, const Json& value, bool* out) {
  if (!value.is_boolean()) return TypeError(path, "true or false", value);
  *out = value.get<bool>();
  return absl::OkStatus();
}

// A JSON integer (or an integral float such as 3.0) in [0, 2^32 - 1]; `range` describes the
// accepted values for the message.
absl::Status ReadUint32(absl::string_view path, const Json& value, absl::string_view range,
                        uint32_t* out) {
  if (!value.is_number()) return TypeError(path, "an integer", value);
  constexpr double kMax = std::numeric_limits<uint32_t>::max();
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v > kMax) return PathError(path, absl::StrCat("must be ", range, ", got ", value.dump()));
    *out = static_cast<uint32_t>(v);
    return absl::OkStatus();
  }
  if (value.is_number_integer()) {
    int64_t v = value.get<int64_t>();
    if (v < 0 || v > kMax) {
      return PathError(path, absl::StrCat("must be ", range, ", got ", value.dump()));
    }
    *out = static_cast<uint32_t>(v);
    return absl::OkStatus();
  }
  double v = value.get<double>();
  if (!std::isfinite(v) || std::floor(v) != v) return TypeError(path, "an integer", value);
  if (v < 0 || v > kMax) {
    return PathError(path, absl::StrCat("must be ", range, ", got ", value.dump()));
  }
  *out = static_cast<uint32_t>(v);
  return absl::OkStatus();
}

absl::Status ReadStringArray(absl::string_view path, const Json& value,
                             google::protobuf::RepeatedPtrField<std::string>* out) {
  if (!value.is_array()) return TypeError(path, "an array of strings", value);
  for (size_t i = 0; i < value.size(); ++i) {
    absl::Status status = ReadString(absl::StrCat(path, "[", i, "]"), value[i], out->Add());
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ReadCredentials(const std::string& path, const Json& value, Credentials* out) {
  if (!value.is_object()) return TypeError(path, "an object", value);
  for (const auto& [key, item] : value.items()) {
    if (item.is_null()) continue;
    const std::string field = absl::StrCat(path, ".", key);
    absl::Status status;
    if (key == "token") {
      status = ReadString(field, item, out->mutable_token(), /*secret=*/true);
    } else if (key == "username") {
      status = ReadString(field, item, out->mutable_username(), /*secret=*/true);
    } else if (key == "password") {
      status = ReadString(field, item, out->mutable_password(), /*secret=*/true);
    } else {
      return UnknownField(path, key, {"token", "username", "password"});
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ReadTls(const std::string& path, const Json& value, TlsOptions* out) {
  if (!value.is_object()) return TypeError(path, "an object", value);
  for (const auto& [key, item] : value.items()) {
    if (item.is_null()) continue;
    const std::string field = absl::StrCat(path, ".", key);
    absl::Status status;
    if (key == "caFile") {
      status = ReadString(field, item, out->mutable_ca_file());
    } else if (key == "certFile") {
      status = ReadString(field, item, out->mutable_cert_file());
    } else if (key == "keyFile") {
      status = ReadString(field, item, out->mutable_key_file());
    } else if (key == "insecureSkipVerify") {
      bool b = false;
      status = ReadBool(field, item, &b);
      out->set_insecure_skip_verify(b);
    } else {
      return UnknownField(path, key, {"caFile", "certFile", "keyFile", "insecureSkipVerify"});
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// An object of strings (headers, labels) into `out`.
absl::Status ReadStringMap(absl::string_view path, const Json& value, bool secret,
                           google::protobuf::Map<std::string, std::string>* out) {
  if (!value.is_object()) return TypeError(path, "an object of strings", value);
  for (const auto& [key, item] : value.items()) {
    const std::string field = absl::StrCat(path, "[\"", absl::CHexEscape(key), "\"]");
    std::string map_value;
    absl::Status status = ReadString(field, item, &map_value, secret);
    if (!status.ok()) return status;
    (*out)[key] = std::move(map_value);
  }
  return absl::OkStatus();
}

absl::Status ReadSigV4(const std::string& path, const Json& value, SigV4* out) {
  if (!value.is_object()) return TypeError(path, "an object", value);
  for (const auto& [key, item] : value.items()) {
    if (item.is_null()) continue;
    const std::string field = absl::StrCat(path, ".", key);
    absl::Status status;
    if (key == "region") {
      status = ReadString(field, item, out->mutable_region());
    } else if (key == "service") {
      status = ReadString(field, item, out->mutable_service());
    } else if (key == "accessKey") {
      status = ReadString(field, item, out->mutable_access_key(), /*secret=*/true);
    } else if (key == "secretKey") {
      status = ReadString(field, item, out->mutable_secret_key(), /*secret=*/true);
    } else if (key == "sessionToken") {
      status = ReadString(field, item, out->mutable_session_token(), /*secret=*/true);
    } else {
      return UnknownField(path, key,
                          {"region", "accessKey", "secretKey", "sessionToken", "service"});
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ReadMetric(const std::string& path, const Json& value, MetricEntry* out) {
  if (value.is_string()) {
    out->set_source_metric(value.get<std::string>());
    return absl::OkStatus();
  }
  if (!value.is_object()) return TypeError(path, "a metric name or an object", value);
  for (const auto& [key, item] : value.items()) {
    if (item.is_null()) continue;
    const std::string field = absl::StrCat(path, ".", key);
    absl::Status status;
    if (key == "sourceMetric") {
      status = ReadString(field, item, out->mutable_source_metric());
    } else if (key == "targetMetric") {
      status = ReadString(field, item, out->mutable_target_metric());
    } else if (key == "keepTags") {
      status = ReadStringArray(field, item, out->mutable_keep_tags());
    } else {
      return UnknownField(path, key, {"sourceMetric", "targetMetric", "keepTags"});
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

const std::vector<absl::string_view>& TargetFields() {
  static const auto* const fields = new std::vector<absl::string_view>{
      "provider",      "remoteWriteURL",   "credentials",      "metrics", "includeDefaultMetrics",
      "resampleRate",  "includeTestRunId", "headers",          "tls",     "timeoutMs",
      "trendStats",    "staleMarkers",     "nativeHistograms", "labels",  "sigv4",
      "testRunIdLabel"};
  return *fields;
}

absl::Status ReadTarget(const std::string& path, const Json& value, Target* out) {
  if (!value.is_object()) return TypeError(path, "an object", value);
  for (const auto& [key, item] : value.items()) {
    if (item.is_null()) continue;
    const std::string field = absl::StrCat(path, ".", key);
    absl::Status status;
    if (key == "provider") {
      status = ReadString(field, item, out->mutable_provider());
    } else if (key == "remoteWriteURL") {
      status = ReadString(field, item, out->mutable_remote_write_url());
    } else if (key == "credentials") {
      status = ReadCredentials(field, item, out->mutable_credentials());
    } else if (key == "metrics") {
      if (!item.is_array()) return TypeError(field, "an array", item);
      for (size_t i = 0; i < item.size() && status.ok(); ++i) {
        status = ReadMetric(absl::StrCat(field, "[", i, "]"), item[i], out->add_metrics());
      }
    } else if (key == "includeDefaultMetrics") {
      bool b = true;
      status = ReadBool(field, item, &b);
      out->set_include_default_metrics(b);
    } else if (key == "resampleRate") {
      uint32_t rate = 0;
      status = ReadUint32(field, item, "an integer from 1 to 10", &rate);
      out->set_resample_rate(rate);
    } else if (key == "includeTestRunId") {
      bool b = false;
      status = ReadBool(field, item, &b);
      out->set_include_test_run_id(b);
    } else if (key == "headers") {
      status = ReadStringMap(field, item, /*secret=*/true, out->mutable_headers());
    } else if (key == "labels") {
      status = ReadStringMap(field, item, /*secret=*/false, out->mutable_labels());
    } else if (key == "sigv4") {
      status = ReadSigV4(field, item, out->mutable_sigv4());
    } else if (key == "testRunIdLabel") {
      status = ReadString(field, item, out->mutable_test_run_id_label());
    } else if (key == "tls") {
      status = ReadTls(field, item, out->mutable_tls());
    } else if (key == "timeoutMs") {
      uint32_t ms = 0;
      status = ReadUint32(field, item, "a number of milliseconds from 0 to 600000", &ms);
      out->set_timeout_ms(ms);
    } else if (key == "trendStats") {
      status = ReadStringArray(field, item, out->mutable_trend_stats());
    } else if (key == "staleMarkers") {
      bool b = false;
      status = ReadBool(field, item, &b);
      out->set_stale_markers(b);
    } else if (key == "nativeHistograms") {
      bool b = false;
      status = ReadBool(field, item, &b);
      out->set_native_histograms(b);
    } else {
      return UnknownField(path, key, TargetFields());
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Finds the apm array in the document; sets *path to its JSON path.
absl::StatusOr<const Json*> FindApm(const Json& doc, std::string* path) {
  if (doc.is_array()) {
    *path = "apm";
    return &doc;
  }
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected the apm array, an object with \"apm\", or k6 options with "
                     "\"ext.loadimpact.apm\"; got ",
                     Describe(doc)));
  }
  const Json* apm = nullptr;
  if (doc.contains("apm")) {
    *path = "apm";
    apm = &doc.at("apm");
  } else if (doc.contains("ext")) {
    const Json& ext = doc.at("ext");
    if (!ext.is_object()) return TypeError("ext", "an object", ext);
    if (!ext.contains("loadimpact")) return PathError("ext.loadimpact", "not found");
    const Json& loadimpact = ext.at("loadimpact");
    if (!loadimpact.is_object()) return TypeError("ext.loadimpact", "an object", loadimpact);
    if (!loadimpact.contains("apm")) return PathError("ext.loadimpact.apm", "not found");
    *path = "ext.loadimpact.apm";
    apm = &loadimpact.at("apm");
  } else {
    return absl::InvalidArgumentError(
        "no apm configuration: expected the apm array, an object with \"apm\", or k6 options "
        "with \"ext.loadimpact.apm\"");
  }
  if (!apm->is_array()) return TypeError(*path, "an array", *apm);
  return apm;
}

// "parse error at line 2, column 7: ..." from nlohmann's "[json.exception.parse_error.101] ...".
std::string ParseErrorText(const std::exception& e) {
  absl::string_view what = e.what();
  size_t bracket = what.find("] ");
  if (!what.empty() && what[0] == '[' && bracket != absl::string_view::npos) {
    what.remove_prefix(bracket + 2);
  }
  return std::string(what);
}

// Where a mistake JSON users often make lies in text[0, end): a trailing comma, or a
// single-quoted string (JavaScript habits: a k6 script's options pasted as JSON). The parser
// only says which token it did not expect, after the mistake; this names the mistake and its
// own place. Empty if there is none: strings and comments are skipped.
std::string FindCommonMistake(absl::string_view text, size_t end) {
  end = std::min(end, text.size());
  auto position = [&](size_t at) {
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < at; ++i) {
      if (text[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    return absl::StrCat("parse error at line ", line, ", column ", at - line_start + 1, ": ");
  };
  // The offset after whitespace and comments from `i`.
  auto skip_blank = [&](size_t i) {
    while (i < text.size()) {
      if (absl::ascii_isspace(text[i])) {
        ++i;
      } else if (text.substr(i, 2) == "//") {
        size_t nl = text.find('\n', i);
        i = nl == absl::string_view::npos ? text.size() : nl + 1;
      } else if (text.substr(i, 2) == "/*") {
        size_t close = text.find("*/", i + 2);
        i = close == absl::string_view::npos ? text.size() : close + 2;
      } else {
        break;
      }
    }
    return i;
  };
  for (size_t i = 0; i < end; ++i) {
    const char c = text[i];
    if (c == '"') {
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
    } else if (c == '/' && (text.substr(i, 2) == "//" || text.substr(i, 2) == "/*")) {
      i = skip_blank(i) - 1;
    } else if (c == '\'') {
      return absl::StrCat(position(i),
                          "single-quoted string (JSON strings use double quotes: \"...\")");
    } else if (c == ',') {
      size_t next = skip_blank(i + 1);
      if (next < text.size() && (text[next] == '}' || text[next] == ']')) {
        return absl::StrCat(position(i), "trailing comma before '", std::string(1, text[next]),
                            "' (JSON does not allow trailing commas; remove it)");
      }
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<std::vector<v1::MetricDeclaration>> ParseMetricTypes(absl::string_view spec) {
  std::vector<v1::MetricDeclaration> out;
  for (absl::string_view entry : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    std::vector<absl::string_view> parts = absl::StrSplit(entry, ':');
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", entry, "\": expected name:type or name:type:kind"));
    }
    v1::MetricDeclaration decl;
    decl.set_name(std::string(parts[0]));
    // The API's enum names are the k6 names upper-cased (COUNTER ..., DEFAULT, TIME, DATA).
    v1::MetricType type;
    if (!v1::MetricType_Parse(absl::AsciiStrToUpper(parts[1]), &type) ||
        type == v1::METRIC_TYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("\"", entry, "\": type \"", parts[1],
                                                     "\" is not counter, gauge, rate or trend"));
    }
    v1::ValueKind kind = v1::DEFAULT;
    if (parts.size() == 3 && !v1::ValueKind_Parse(absl::AsciiStrToUpper(parts[2]), &kind)) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", entry, "\": kind \"", parts[2], "\" is not default, time or data"));
    }
    decl.set_type(type);
    decl.set_kind(kind);
    out.push_back(std::move(decl));
  }
  return out;
}

absl::StatusOr<rwexport::v1::StartExportRequest> ParseK6ApmJson(absl::string_view json,
                                                                absl::string_view test_run_id) {
  Json doc;
  try {
    doc = Json::parse(json.begin(), json.end(), /*cb=*/nullptr, /*allow_exceptions=*/true,
                      /*ignore_comments=*/true);
  } catch (const Json::parse_error& e) {
    // e.byte: 1-based offset of the last character read; the mistake is at or before it.
    std::string mistake = FindCommonMistake(json, e.byte);
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON: ", mistake.empty() ? ParseErrorText(e) : mistake));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", ParseErrorText(e)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.what()));
  }

  rwexport::v1::StartExportRequest request;
  request.set_test_run_id(std::string(test_run_id));
  try {
    std::string path;
    absl::StatusOr<const Json*> apm = FindApm(doc, &path);
    if (!apm.ok()) return apm.status();
    for (size_t i = 0; i < (*apm)->size(); ++i) {
      absl::Status status =
          ReadTarget(absl::StrCat(path, "[", i, "]"), (**apm)[i], request.add_targets());
      if (!status.ok()) return status;
    }
    // rwexport's extra beside "apm" (or k6's "ext"): {"metricTypes": {"name": "type[:kind]"}}.
    if (doc.is_object() && doc.contains("metricTypes")) {
      const Json& types = doc.at("metricTypes");
      if (!types.is_object()) return TypeError("metricTypes", "an object", types);
      for (const auto& [name, spec] : types.items()) {
        const std::string field = absl::StrCat("metricTypes.", name);
        if (!spec.is_string()) return TypeError(field, "a string \"type[:kind]\"", spec);
        absl::StatusOr<std::vector<v1::MetricDeclaration>> parsed =
            ParseMetricTypes(absl::StrCat(name, ":", spec.get<std::string>()));
        if (!parsed.ok()) return PathError(field, parsed.status().message());
        for (v1::MetricDeclaration& decl : *parsed) {
          *request.add_metric_declarations() = std::move(decl);
        }
      }
    }
  } catch (const std::exception& e) {
    // Every access above is type-checked first; this is a safety net, not a code path.
    return absl::InternalError(absl::StrCat("reading the apm configuration: ", e.what()));
  }
  return request;
}

}  // namespace rwexport
