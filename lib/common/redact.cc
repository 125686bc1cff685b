#include "lib/common/redact.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace rwexport {

bool SplitUrl(absl::string_view url, UrlParts* parts) {
  size_t sep = url.find("://");
  if (sep == absl::string_view::npos) return false;
  parts->scheme = url.substr(0, sep);
  parts->authority_begin = sep + 3;
  size_t end = url.find_first_of("/?#", parts->authority_begin);
  if (end == absl::string_view::npos) end = url.size();
  parts->authority_end = end;
  absl::string_view authority =
      url.substr(parts->authority_begin, parts->authority_end - parts->authority_begin);
  size_t at = authority.rfind('@');
  if (at != absl::string_view::npos) {
    parts->has_userinfo = true;
    parts->userinfo = authority.substr(0, at);
    parts->host_port = authority.substr(at + 1);
  } else {
    parts->host_port = authority;
  }
  return true;
}

bool IsSecretParamName(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  for (absl::string_view word :
       {"token", "password", "passwd", "secret", "key", "auth", "signature", "cookie"}) {
    if (absl::StrContains(lower, word)) return true;
  }
  return false;
}

std::string RedactRemoteWriteUrl(absl::string_view url) {
  UrlParts parts;
  if (!SplitUrl(url, &parts)) return std::string(url);
  std::string out(url.substr(0, parts.authority_begin));
  if (parts.has_userinfo) {
    size_t colon = parts.userinfo.find(':');
    if (colon == absl::string_view::npos) {
      absl::StrAppend(&out, parts.userinfo, "@");
    } else {
      absl::StrAppend(&out, parts.userinfo.substr(0, colon), ":", kRedacted, "@");
    }
  }
  absl::StrAppend(&out, parts.host_port);
  absl::string_view rest = url.substr(parts.authority_end);
  size_t question = rest.find('?');
  if (question == absl::string_view::npos) {
    absl::StrAppend(&out, rest);
    return out;
  }
  absl::StrAppend(&out, rest.substr(0, question + 1));
  absl::string_view query = rest.substr(question + 1);
  absl::string_view fragment;
  size_t hash = query.find('#');
  if (hash != absl::string_view::npos) {
    fragment = query.substr(hash);
    query = query.substr(0, hash);
  }
  std::vector<std::string> params;
  for (absl::string_view param : absl::StrSplit(query, '&')) {
    size_t eq = param.find('=');
    if (eq != absl::string_view::npos && IsSecretParamName(param.substr(0, eq))) {
      params.push_back(absl::StrCat(param.substr(0, eq + 1), kRedacted));
    } else {
      params.emplace_back(param);
    }
  }
  absl::StrAppend(&out, absl::StrJoin(params, "&"), fragment);
  return out;
}

}  // namespace rwexport
