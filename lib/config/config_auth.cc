// Validation of how a target is reached and authenticated: credentials, extra headers, TLS
// files and AWS SigV4.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/config/config.h"
#include "lib/config/config_internal.h"

namespace rwexport {
namespace config_internal {
namespace {

// `s` quoted and escaped in full: for values whose size is bounded already (file paths).
std::string QuotedInFull(absl::string_view s) {
  return absl::StrCat("\"", absl::CHexEscape(s), "\"");
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
    return FieldError(path, absl::StrCat("cannot read ", QuotedInFull(file), ": ",
                                         std::generic_category().message(errno)));
  }
  if (S_ISDIR(st.st_mode)) {
    return FieldError(path, absl::StrCat("cannot read ", QuotedInFull(file), ": is a directory"));
  }
  FILE* f = std::fopen(name.c_str(), "rb");
  if (f == nullptr) {
    return FieldError(path, absl::StrCat("cannot read ", QuotedInFull(file), ": ",
                                         std::generic_category().message(errno)));
  }
  std::fclose(f);
  return absl::OkStatus();
}

bool IsAwsNameChar(char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-'; }

}  // namespace

absl::Status ValidateCredentials(const std::string& path, const rwexport::v1::Target& target,
                                 bool url_has_userinfo, TargetConfig* out) {
  if (!target.has_credentials()) return absl::OkStatus();
  const rwexport::v1::Credentials& c = target.credentials();
  const std::string cpath = absl::StrCat(path, ".credentials");
  // Checked before anything is quoted or compared; secrets are never quoted.
  for (const auto& [field, value, max] :
       {std::make_tuple("token", &c.token(), kMaxTokenLength),
        std::make_tuple("username", &c.username(), kMaxNameLength),
        std::make_tuple("password", &c.password(), kMaxPasswordLength)}) {
    absl::Status length = CheckLength(absl::StrCat(cpath, ".", field), *value, max);
    if (!length.ok()) return length;
  }
  if (c.token().empty() && c.username().empty() && c.password().empty()) {
    return FieldError(cpath,
                      "empty: set token, or username and password (or leave credentials out "
                      "for no authentication)");
  }
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
  if (!c.token().empty() && IsBlank(c.token())) {
    return FieldError(absl::StrCat(cpath, ".token"), "must not be blank (only whitespace)");
  }
  if (c.token() != absl::StripAsciiWhitespace(c.token())) {
    return FieldError(absl::StrCat(cpath, ".token"),
                      "must not begin or end with whitespace (a line break copied with it?)");
  }
  if (!c.username().empty() && IsBlank(c.username())) {
    return FieldError(absl::StrCat(cpath, ".username"), "must not be blank (only whitespace)");
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
  if (static_cast<size_t>(target.headers_size()) > kMaxHeaders) {
    return FieldError(
        absl::StrCat(path, ".headers"),
        absl::StrCat("at most ", kMaxHeaders, " headers, got ", target.headers_size()));
  }
  for (const auto& [name, value] : target.headers()) out->headers.emplace_back(name, value);
  std::sort(out->headers.begin(), out->headers.end());
  absl::flat_hash_map<std::string, std::string> seen;  // Lower-case name -> name.
  for (const auto& [name, value] : out->headers) {
    const std::string hpath = absl::StrCat(path, ".headers[", Quoted(name), "]");
    if (name.empty()) return FieldError(absl::StrCat(path, ".headers"), "empty header name");
    if (name.size() > kMaxNameLength) {
      return FieldError(hpath, absl::StrCat("header name: at most ", kMaxNameLength,
                                            " characters, got ", name.size()));
    }
    if (value.size() > kMaxHeaderValueLength) {
      return FieldError(hpath, absl::StrCat("value: at most ", kMaxHeaderValueLength,
                                            " characters, got ", value.size()));
    }
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
    absl::Status status = CheckLength(absl::StrCat(tpath, ".", field), *file, kMaxPathLength);
    if (!status.ok()) return status;
    status = CheckReadableFile(absl::StrCat(tpath, ".", field), *file);
    if (!status.ok()) return status;
  }
  out->ca_file = tls.ca_file();
  out->cert_file = tls.cert_file();
  out->key_file = tls.key_file();
  out->insecure_skip_verify = tls.insecure_skip_verify();
  return absl::OkStatus();
}

absl::Status ValidateSigV4(const std::string& path, const rwexport::v1::Target& target,
                           bool url_has_userinfo, TargetConfig* out) {
  if (!target.has_sigv4()) return absl::OkStatus();
  const rwexport::v1::SigV4& in = target.sigv4();
  const std::string spath = absl::StrCat(path, ".sigv4");
  if (!out->bearer_token.empty() || !out->username.empty()) {
    return FieldError(spath, "set either sigv4 or credentials, not both (both use Authorization)");
  }
  if (url_has_userinfo) {
    return FieldError(spath, "remoteWriteURL carries user info (user@host); it cannot be signed");
  }
  SigV4Config config;
  const std::pair<absl::string_view, const std::string*> names[] = {{"region", &in.region()},
                                                                    {"service", &in.service()}};
  for (const auto& [field, value] : names) {
    for (char c : *value) {
      if (!IsAwsNameChar(c)) {
        return FieldError(absl::StrCat(spath, ".", field),
                          absl::StrCat(Quoted(*value), ": only a-z, 0-9 and - are allowed"));
      }
    }
  }
  if (in.region().empty()) {
    return FieldError(absl::StrCat(spath, ".region"), "required (e.g. \"us-east-1\")");
  }
  if (in.access_key().empty()) return FieldError(absl::StrCat(spath, ".accessKey"), "required");
  if (in.secret_key().empty()) return FieldError(absl::StrCat(spath, ".secretKey"), "required");
  const std::pair<absl::string_view, const std::string*> secrets[] = {
      {"accessKey", &in.access_key()},
      {"secretKey", &in.secret_key()},
      {"sessionToken", &in.session_token()}};
  for (const auto& [field, value] : secrets) {
    if (HasControlChar(*value) || absl::StrContains(*value, ' ')) {
      return FieldError(absl::StrCat(spath, ".", field),
                        "must not contain spaces or control characters");
    }
  }
  for (const auto& [name, value] : out->headers) {
    if (absl::StartsWithIgnoreCase(name, "x-amz-")) {
      return FieldError(absl::StrCat(path, ".headers[", Quoted(name), "]"),
                        "cannot be set with sigv4: the signature sets the X-Amz-* headers");
    }
  }
  config.region = in.region();
  if (!in.service().empty()) config.service = in.service();
  config.access_key = in.access_key();
  config.secret_key = in.secret_key();
  config.session_token = in.session_token();
  out->sigv4 = std::move(config);
  return absl::OkStatus();
}

}  // namespace config_internal
}  // namespace rwexport
