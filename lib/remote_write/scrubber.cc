#include "lib/remote_write/scrubber.h"

#include <curl/curl.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "lib/common/redact.h"
#include "lib/remote_write/curl_handles.h"

namespace rwexport {
namespace {

// Secrets shorter than this are not searched for in error texts (they would garble them).
constexpr size_t kMinScrubbedSecret = 3;

// What error texts must never show for `options`: the credentials, the userinfo password and
// the values of query parameters that `display` does not show.
std::vector<std::string> SecretsOf(const TargetOptions& options, const std::string& display) {
  std::vector<std::string> secrets = {options.bearer_token, options.password};
  UrlPtr url(curl_url());
  if (url != nullptr &&
      curl_url_set(url.get(), CURLUPART_URL, options.url.c_str(), 0) == CURLUE_OK) {
    secrets.push_back(UrlPart(url.get(), CURLUPART_PASSWORD));
    secrets.push_back(UrlPart(url.get(), CURLUPART_PASSWORD, CURLU_URLENCODE));
  }
  const size_t question = options.url.find('?');
  if (question != std::string::npos) {
    std::string query = options.url.substr(question + 1);
    query = query.substr(0, query.find('#'));
    for (absl::string_view param : absl::StrSplit(query, '&')) {
      const size_t eq = param.find('=');
      if (eq == absl::string_view::npos) continue;
      if (!absl::StrContains(display, param)) secrets.emplace_back(param.substr(eq + 1));
    }
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
    : url_(options.url),
      display_url_(std::move(display_url)),
      secrets_(SecretsOf(options, display_url_)) {}

std::string SecretScrubber::Scrub(std::string text) const {
  if (!url_.empty() && url_ != display_url_) {
    text = absl::StrReplaceAll(text, {{url_, display_url_}});
  }
  for (const std::string& secret : secrets_) {
    text = absl::StrReplaceAll(text, {{secret, kRedacted}});
  }
  return text;
}

}  // namespace rwexport
