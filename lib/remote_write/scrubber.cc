#include "lib/remote_write/scrubber.h"

#include <curl/curl.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "lib/common/redact.h"
#include "lib/remote_write/curl_handles.h"

namespace rwexport {
namespace {

// Secrets shorter than this are not searched for in error texts (they would garble them).
constexpr size_t kMinScrubbedSecret = 3;

// What error texts must never show for `options`: the bearer token; the password, and the
// user:password pair in the clear and in base64 as an `Authorization: Basic` header carries it,
// from the options and from the URL's userinfo (as written and decoded); the value of every
// query parameter (as written and decoded); the values of secret-looking headers.
std::vector<std::string> SecretsOf(const TargetOptions& options) {
  std::vector<std::string> secrets = {options.bearer_token, options.password};
  if (options.sigv4) {
    secrets.push_back(options.sigv4->access_key);
    secrets.push_back(options.sigv4->secret_key);
    secrets.push_back(options.sigv4->session_token);
  }
  if (!options.username.empty() || !options.password.empty()) {
    const std::string pair = absl::StrCat(options.username, ":", options.password);
    secrets.push_back(pair);
    secrets.push_back(absl::Base64Escape(pair));
  }
  UrlPtr url(curl_url());
  if (url != nullptr &&
      curl_url_set(url.get(), CURLUPART_URL, options.url.c_str(), 0) == CURLUE_OK) {
    for (unsigned int flags : {0u, static_cast<unsigned int>(CURLU_URLDECODE)}) {
      const std::string user = UrlPart(url.get(), CURLUPART_USER, flags);
      const std::string password = UrlPart(url.get(), CURLUPART_PASSWORD, flags);
      if (password.empty()) continue;
      const std::string pair = absl::StrCat(user, ":", password);
      secrets.push_back(password);
      secrets.push_back(pair);
      secrets.push_back(absl::Base64Escape(pair));
    }
    secrets.push_back(UrlPart(url.get(), CURLUPART_PASSWORD, CURLU_URLENCODE));
    const std::string query = UrlPart(url.get(), CURLUPART_QUERY);
    for (absl::string_view param : absl::StrSplit(query, '&')) {
      const size_t eq = param.find('=');
      if (eq == absl::string_view::npos) continue;
      const absl::string_view value = param.substr(eq + 1);
      secrets.emplace_back(value);
      int decoded_length = 0;
      char* decoded = curl_easy_unescape(nullptr, value.data(), static_cast<int>(value.size()),
                                         &decoded_length);
      if (decoded != nullptr) {
        CurlString owned(decoded);
        secrets.emplace_back(decoded, static_cast<size_t>(decoded_length));
      }
    }
  }
  for (const auto& [name, value] : options.headers) {
    if (IsSecretParamName(name)) secrets.push_back(value);
  }
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  secrets.erase(std::remove_if(secrets.begin(), secrets.end(),
                               [](const std::string& s) { return s.size() < kMinScrubbedSecret; }),
                secrets.end());
  return secrets;
}

}  // namespace

SecretScrubber::SecretScrubber(const TargetOptions& options, std::string display_url)
    : url_(options.url), display_url_(std::move(display_url)), secrets_(SecretsOf(options)) {}

std::string SecretScrubber::Scrub(std::string text) const {
  if (!url_.empty() && url_ != display_url_) {
    text = absl::StrReplaceAll(text, {{url_, display_url_}});
  }
  for (const std::string& secret : secrets_) {
    text = absl::StrReplaceAll(text, {{secret, kRedacted}});
  }
  // A text cut short (a response's first bytes) may end with the start of a secret.
  for (const std::string& secret : secrets_) {
    for (size_t n = std::min(secret.size() - 1, text.size()); n >= kMinScrubbedSecret; --n) {
      if (absl::EndsWith(text, absl::string_view(secret).substr(0, n))) {
        text.replace(text.size() - n, n, kRedacted);
        break;
      }
    }
  }
  return text;
}

}  // namespace rwexport
