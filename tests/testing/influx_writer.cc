#include "tests/testing/influx_writer.h"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace rwexport {
namespace {

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t AppendHeader(char* data, size_t size, size_t n, void* out) {
  absl::string_view line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    (*static_cast<std::map<std::string, std::string>*>(
        out))[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

// Backslash before each character of `specials` in `text`.
std::string Escape(absl::string_view text, absl::string_view specials) {
  std::string out;
  for (char c : text) {
    if (specials.find(c) != absl::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that read back as v, never an
// exponent.
std::string GoFloat(double v) {
  char buffer[400];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::fixed);
  return std::string(buffer, end);
}

}  // namespace

absl::StatusOr<HttpAnswer> HttpCall(const std::string& method, const std::string& url,
                                    const std::vector<std::string>& headers,
                                    const std::string& body) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  curl_slist* list = nullptr;
  for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(list,
                                                                          &curl_slist_free_all);
  HttpAnswer answer;
  char error[CURL_ERROR_SIZE] = "";
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &AppendHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &answer.headers);
  if (list != nullptr) curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  const CURLcode code = curl_easy_perform(h);
  if (code != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat(method, " ", url, ": ", error[0] ? error : curl_easy_strerror(code)));
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &answer.status);
  return answer;
}

std::string K6InfluxLine(const reference::RefSample& sample, int64_t shift_ns,
                         const std::vector<std::string>& tags_as_fields) {
  std::map<std::string, std::string> tags;    // sorted, as influxdb1-client's NewTags sorts
  std::map<std::string, std::string> fields;  // sorted, as its Fields.MarshalBinary sorts
  for (const auto& [key, value] : sample.tags) {
    if (std::find(tags_as_fields.begin(), tags_as_fields.end(), key) != tags_as_fields.end()) {
      fields[key] = absl::StrCat("\"", Escape(value, "\"\\"), "\"");
    } else {
      tags[key] = value;
    }
  }
  fields["value"] = GoFloat(sample.value);
  std::string line = Escape(sample.metric, ", ");
  for (const auto& [key, value] : tags) {
    if (value.empty()) continue;  // AppendHashKey skips empty tag values
    absl::StrAppend(&line, ",", Escape(key, ",= "), "=", Escape(value, ",= "));
  }
  const char* separator = " ";
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&line, separator, Escape(key, ",= "), "=", value);
    separator = ",";
  }
  absl::StrAppend(&line, " ", sample.ts_ns + shift_ns);
  return line;
}

absl::StatusOr<K6InfluxWrite> WriteRunAsK6(const std::string& base_url, const std::string& db,
                                           const reference::RefRun& run, int64_t shift_ns,
                                           const std::vector<std::string>& headers,
                                           absl::Duration push_interval) {
  K6InfluxWrite result;
  // k6's Start(): Query(NewQuery("CREATE DATABASE "+db, "", "")) -> POST /query?db=&params={}&q=...
  char* q = curl_easy_escape(nullptr, ("CREATE DATABASE " + db).c_str(), 0);
  absl::StatusOr<HttpAnswer> created =
      HttpCall("POST", absl::StrCat(base_url, "/query?db=&params=%7B%7D&q=", q), headers);
  curl_free(q);
  if (!created.ok()) return created.status();
  result.answers.push_back(*std::move(created));
  char* escaped_db = curl_easy_escape(nullptr, db.c_str(), 0);
  const std::string write_url =
      absl::StrCat(base_url, "/write?consistency=&db=", escaped_db, "&precision=ns&rp=");
  curl_free(escaped_db);
  const int64_t interval_ns = absl::ToInt64Nanoseconds(push_interval);
  std::string body;
  int64_t batch_start = 0;
  bool open = false;
  auto flush = [&]() -> absl::Status {
    if (body.empty()) return absl::OkStatus();
    std::vector<std::string> with_type = headers;
    with_type.push_back("Content-Type:");  // influxdb1-client sends an empty Content-Type
    with_type.push_back("User-Agent: k6");
    absl::StatusOr<HttpAnswer> answer = HttpCall("POST", write_url, with_type, body);
    if (!answer.ok()) return answer.status();
    result.answers.push_back(*std::move(answer));
    body.clear();
    return absl::OkStatus();
  };
  for (const reference::RefSample& s : run.samples) {
    if (!open || s.ts_ns - batch_start >= interval_ns) {
      if (absl::Status flushed = flush(); !flushed.ok()) return flushed;
      batch_start = s.ts_ns;
      open = true;
    }
    absl::StrAppend(&body, K6InfluxLine(s, shift_ns), "\n");
    ++result.lines;
  }
  if (absl::Status flushed = flush(); !flushed.ok()) return flushed;
  return result;
}

}  // namespace rwexport
