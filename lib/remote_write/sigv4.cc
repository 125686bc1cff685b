#include "lib/remote_write/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace rwexport {
namespace {

constexpr absl::string_view kAlgorithm = "AWS4-HMAC-SHA256";

std::string Hex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xF]);
  }
  return out;
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

// RFC 3986 percent-encoding of everything but the unreserved characters (and '/' if
// `keep_slash`), upper-case hex, as SigV4 wants.
std::string UriEncode(absl::string_view s, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(c);
    } else {
      const unsigned char u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kDigits[u >> 4]);
      out.push_back(kDigits[u & 0xF]);
    }
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; a '%' not followed by two hex digits stays as it is.
std::string UriDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Name and value decoded, then encoded strictly; sorted by name, then value.
std::string CanonicalQuery(absl::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  for (absl::string_view param : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = param.find('=');
    absl::string_view name = param.substr(0, eq);
    absl::string_view value = eq == absl::string_view::npos ? "" : param.substr(eq + 1);
    params.emplace_back(UriEncode(UriDecode(name), false), UriEncode(UriDecode(value), false));
  }
  std::sort(params.begin(), params.end());
  std::vector<std::string> parts;
  for (const auto& [name, value] : params) parts.push_back(absl::StrCat(name, "=", value));
  return absl::StrJoin(parts, "&");
}

// Trimmed, runs of spaces and tabs collapsed into one space.
std::string CanonicalHeaderValue(absl::string_view value) {
  std::string out;
  bool space = false;
  for (char c : absl::StripAsciiWhitespace(value)) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return Hex(digest, sizeof(digest));
}

absl::StatusOr<SigV4Signature> SignSigV4(
    const SigV4Key& key, absl::string_view method, absl::string_view url,
    absl::Span<const std::pair<std::string, std::string>> headers, absl::string_view body,
    absl::Time now) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) {
    return absl::InvalidArgumentError("sigv4: the URL has no scheme");
  }
  const absl::string_view scheme = url.substr(0, scheme_end);
  absl::string_view rest = url.substr(scheme_end + 3);
  const size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  absl::string_view host = rest.substr(0, authority_end);
  rest.remove_prefix(authority_end);
  const size_t at = host.rfind('@');
  if (at != absl::string_view::npos) host.remove_prefix(at + 1);
  if (host.empty()) return absl::InvalidArgumentError("sigv4: the URL has no host");
  if ((absl::EqualsIgnoreCase(scheme, "http") && absl::EndsWith(host, ":80")) ||
      (absl::EqualsIgnoreCase(scheme, "https") && absl::EndsWith(host, ":443"))) {
    host.remove_suffix(host.size() - host.rfind(':'));
  }
  const size_t fragment = rest.find('#');
  if (fragment != absl::string_view::npos) rest = rest.substr(0, fragment);
  const size_t question = rest.find('?');
  absl::string_view path = rest.substr(0, question);
  absl::string_view query =
      question == absl::string_view::npos ? absl::string_view() : rest.substr(question + 1);
  if (path.empty()) path = "/";

  SigV4Signature out;
  out.amz_date = absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
  const std::string date = out.amz_date.substr(0, 8);

  // Lower-case name -> values in order (repeated headers join with ',').
  std::map<std::string, std::vector<std::string>> canonical;
  for (const auto& [name, value] : headers) {
    canonical[absl::AsciiStrToLower(name)].push_back(CanonicalHeaderValue(value));
  }
  canonical["host"] = {std::string(host)};
  canonical["x-amz-date"] = {out.amz_date};
  if (!key.session_token.empty()) canonical["x-amz-security-token"] = {key.session_token};

  std::string header_block;
  std::vector<absl::string_view> names;
  for (const auto& [name, values] : canonical) {
    absl::StrAppend(&header_block, name, ":", absl::StrJoin(values, ","), "\n");
    names.push_back(name);
  }
  out.signed_headers = absl::StrJoin(names, ";");
  out.canonical_request =
      absl::StrCat(method, "\n", UriEncode(path, /*keep_slash=*/true), "\n", CanonicalQuery(query),
                   "\n", header_block, "\n", out.signed_headers, "\n", Sha256Hex(body));

  const std::string scope = absl::StrCat(date, "/", key.region, "/", key.service, "/aws4_request");
  out.string_to_sign = absl::StrCat(kAlgorithm, "\n", out.amz_date, "\n", scope, "\n",
                                    Sha256Hex(out.canonical_request));
  std::string signing_key = HmacSha256(absl::StrCat("AWS4", key.secret_key), date);
  signing_key = HmacSha256(signing_key, key.region);
  signing_key = HmacSha256(signing_key, key.service);
  signing_key = HmacSha256(signing_key, "aws4_request");
  const std::string mac = HmacSha256(signing_key, out.string_to_sign);
  const std::string signature = Hex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
  out.authorization =
      absl::StrCat(kAlgorithm, " Credential=", key.access_key, "/", scope,
                   ", SignedHeaders=", out.signed_headers, ", Signature=", signature);
  out.headers.emplace_back("X-Amz-Date", out.amz_date);
  if (!key.session_token.empty())
    out.headers.emplace_back("X-Amz-Security-Token", key.session_token);
  out.headers.emplace_back("Authorization", out.authorization);
  return out;
}

}  // namespace rwexport
