#include "lib/prometheus/query_client.h"

#include <curl/curl.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rwexport {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

absl::StatusOr<double> ParseValue(const nlohmann::json& pair) {
  // [ <unix seconds>, "<value>" ]
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_string()) {
    return absl::InternalError("query answer: value is not [time, \"value\"]");
  }
  const std::string text = pair[1].get<std::string>();
  double v;
  if (text == "NaN") return std::nan("");
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (!absl::SimpleAtod(text, &v)) {
    return absl::InternalError(absl::StrCat("query answer: bad value \"", text, "\""));
  }
  return v;
}

// ParseQueryResponse without the exception guard: nlohmann throws on a field of the wrong type.
absl::StatusOr<std::vector<InstantSample>> ParseQueryResponseOrThrow(absl::string_view body) {
  nlohmann::json doc = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InternalError("query answer is not JSON");
  }
  if (doc.value("status", "") != "success") {
    return absl::InvalidArgumentError(absl::StrCat("Prometheus: ", doc.value("errorType", "error"),
                                                   ": ", doc.value("error", "")));
  }
  const nlohmann::json& data = doc.at("data");
  std::vector<InstantSample> out;
  const std::string type = data.value("resultType", "");
  if (type == "scalar") {
    absl::StatusOr<double> v = ParseValue(data.at("result"));
    if (!v.ok()) return v.status();
    out.push_back(
        {{},
         *v,
         absl::FromUnixMillis(static_cast<int64_t>(data.at("result")[0].get<double>() * 1000))});
    return out;
  }
  if (type != "vector") {
    return absl::InvalidArgumentError(absl::StrCat("unexpected result type \"", type, "\""));
  }
  for (const nlohmann::json& r : data.at("result")) {
    InstantSample s;
    for (const auto& [k, v] : r.at("metric").items()) s.labels[k] = v.get<std::string>();
    absl::StatusOr<double> v = ParseValue(r.at("value"));
    if (!v.ok()) return v.status();
    s.value = *v;
    s.timestamp = absl::FromUnixMillis(static_cast<int64_t>(r.at("value")[0].get<double>() * 1000));
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<InstantSample>> ParseQueryResponse(absl::string_view body) {
  try {
    return ParseQueryResponseOrThrow(body);
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(absl::StrCat("query answer: unexpected structure: ", e.what()));
  }
}

QueryClient::QueryClient(std::string base_url, absl::Duration timeout)
    : base_url_(std::move(base_url)), timeout_(timeout) {}

absl::StatusOr<std::vector<InstantSample>> QueryClient::Query(absl::string_view promql,
                                                              absl::Time at) const {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return absl::InternalError("curl_easy_init failed");
  std::unique_ptr<char, decltype(&curl_free)> escaped(
      curl_easy_escape(curl.get(), promql.data(), static_cast<int>(promql.size())), curl_free);
  const std::string url =
      absl::StrCat(base_url_, "/api/v1/query?query=", escaped.get(),
                   "&time=", absl::StrFormat("%.3f", absl::ToUnixMillis(at) / 1000.0));
  std::string body;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(timeout_)));
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("query ", base_url_, ": ", curl_easy_strerror(rc)));
  }
  long code = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &code);
  if (code != 200) {
    absl::StatusOr<std::vector<InstantSample>> parsed = ParseQueryResponse(body);
    return absl::InvalidArgumentError(
        absl::StrCat("query ", base_url_, ": HTTP ", code,
                     parsed.ok() ? "" : absl::StrCat(": ", parsed.status().message())));
  }
  return ParseQueryResponse(body);
}

}  // namespace rwexport
