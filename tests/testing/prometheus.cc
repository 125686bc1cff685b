#include "tests/testing/prometheus.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <snappy.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace rwexport {

absl::StatusOr<int> PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, "binding 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

namespace {

using Json = nlohmann::json;

constexpr int kStartAttempts = 5;
constexpr absl::Duration kStopTimeout = absl::Seconds(10);
constexpr absl::Duration kPollInterval = absl::Milliseconds(20);
constexpr long kHttpTimeoutMs = 10000;

absl::Status WriteFile(const std::string& path, absl::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  if (!out) return absl::InternalError("cannot write " + path);
  return absl::OkStatus();
}

std::string ReadTail(const std::string& path, int lines) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<std::string> all = absl::StrSplit(ss.str(), '\n', absl::SkipEmpty());
  size_t from = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  return absl::StrJoin(all.begin() + from, all.end(), "\n");
}

// Forks and execs `argv` with stdout/stderr appended to `log_path`. The child is killed when
// the calling thread exits, so a crashed test leaves no server behind.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::ErrnoToStatus(errno, "opening " + log_path);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    int err = errno;
    ::close(log_fd);
    return absl::ErrnoToStatus(err, "opening /dev/null");
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int err = errno;
  ::close(log_fd);
  ::close(null_fd);
  if (pid < 0) return absl::ErrnoToStatus(err, "fork");
  return pid;
}

// Waits up to `timeout` for `pid` to exit; true if it did (and was reaped).
bool WaitForExit(pid_t pid, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid || (got < 0 && errno == ECHILD)) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(kPollInterval);
  }
}

void KillAndReap(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  if (WaitForExit(pid, kStopTimeout)) return;
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

size_t AppendToString(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// One request on a fresh easy handle. `post_body` null means GET.
absl::StatusOr<HttpResponse> HttpRequest(const PrometheusServer::Options& client,
                                         const std::string& url, const std::string* post_body,
                                         const std::vector<std::string>& headers) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::unique_ptr<curl_slist, SlistDeleter> header_list;
  for (const std::string& header : headers) {
    curl_slist* appended = curl_slist_append(header_list.get(), header.c_str());
    if (appended == nullptr) return absl::ResourceExhaustedError("curl_slist_append failed");
    header_list.release();
    header_list.reset(appended);
  }
  HttpResponse response;
  char error[CURL_ERROR_SIZE] = {0};
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, kHttpTimeoutMs);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &AppendToString);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response.body);
  if (header_list != nullptr) curl_easy_setopt(h, CURLOPT_HTTPHEADER, header_list.get());
  if (!client.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, client.ca_file.c_str());
  if (!client.client_cert_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, client.client_cert_file.c_str());
    curl_easy_setopt(h, CURLOPT_SSLKEY, client.client_key_file.c_str());
  }
  if (!client.username.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(h, CURLOPT_USERNAME, client.username.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, client.password.c_str());
  }
  if (post_body != nullptr) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post_body->size()));
  }
  CURLcode code = curl_easy_perform(h);
  if (code != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat(post_body ? "POST " : "GET ", url, ": ",
                                               error[0] ? error : curl_easy_strerror(code)));
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string Escape(absl::string_view text) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  char* escaped = curl_easy_escape(curl.get(), text.data(), static_cast<int>(text.size()));
  std::string result(escaped);
  curl_free(escaped);
  return result;
}

// Seconds since the epoch with millisecond precision, as the API takes them.
std::string ApiTime(absl::Time t) {
  int64_t ms = absl::ToUnixMillis(t);
  int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  return absl::StrFormat("%d.%03d", s, ms - s * 1000);
}

// ---------------------------------------------------------------------------------------------
// JSON decoding. nlohmann throws on type errors: each decoder runs inside Decode(), which
// turns an exception into a Status.

double ParseSampleValue(const Json& value) {
  const std::string& text = value.get_ref<const std::string&>();
  if (text == "NaN") return NAN;
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  size_t used = 0;
  double parsed = std::stod(text, &used);
  if (used != text.size()) throw std::invalid_argument("bad sample value " + text);
  return parsed;
}

int64_t ParseTimestampMs(const Json& ts) { return std::llround(ts.get<double>() * 1000); }

PromLabels ParseLabels(const Json& object) {
  PromLabels labels;
  for (const auto& [name, value] : object.items()) labels[name] = value.get<std::string>();
  return labels;
}

PromHistogram ParseHistogram(const Json& h) {
  PromHistogram histogram;
  histogram.count = ParseSampleValue(h.at("count"));
  histogram.sum = ParseSampleValue(h.at("sum"));
  if (h.contains("buckets")) {
    for (const Json& b : h.at("buckets")) {
      PromHistogram::Bucket bucket;
      bucket.boundary_rule = b.at(0).get<int>();
      bucket.lower = ParseSampleValue(b.at(1));
      bucket.upper = ParseSampleValue(b.at(2));
      bucket.count = ParseSampleValue(b.at(3));
      histogram.buckets.push_back(bucket);
    }
  }
  return histogram;
}

// [ts, "value"] or [ts, {histogram}].
QueryResult ParsePair(const PromLabels& labels, const Json& pair, bool is_histogram) {
  QueryResult result;
  result.labels = labels;
  result.timestamp_ms = ParseTimestampMs(pair.at(0));
  if (is_histogram) {
    result.value = NAN;
    result.histogram = ParseHistogram(pair.at(1));
  } else {
    result.value = ParseSampleValue(pair.at(1));
  }
  return result;
}

template <typename T, typename F>
absl::StatusOr<T> Decode(const HttpResponse& response, absl::string_view what, F decode_data) {
  Json json = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InternalError(absl::StrCat(what, ": HTTP ", response.status,
                                            ", not JSON: ", response.body.substr(0, 300)));
  }
  try {
    if (json.value("status", "") != "success") {
      std::string message =
          absl::StrCat(what, ": HTTP ", response.status, ": ", json.value("errorType", "?"), ": ",
                       json.value("error", response.body));
      if (response.status == 400 || response.status == 422) {
        return absl::InvalidArgumentError(message);
      }
      return absl::InternalError(message);
    }
    return decode_data(json.at("data"));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(what, ": unexpected answer (", e.what(), "): ", response.body.substr(0, 300)));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PrometheusServer>> PrometheusServer::Start(Options options) {
  if (::access(options.binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(options.binary, " is not an executable; install Debian's prometheus package"));
  }
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/prometheus-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::ErrnoToStatus(errno, "creating a temporary directory like " + pattern);
  }
  const std::string dir = pattern;
  auto fail = [&dir](absl::Status status) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    return status;
  };
  const std::string config = dir + "/prometheus.yml";
  const std::string log = dir + "/prometheus.log";
  absl::Status written = WriteFile(config,
                                   "# rwexport test server: no scrape jobs, remote write only.\n"
                                   "global:\n"
                                   "  scrape_interval: 15s\n"
                                   "  evaluation_interval: 15s\n");
  if (!written.ok()) return fail(written);

  std::string last_error;
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    absl::StatusOr<int> port = options.port != 0 ? options.port : PickFreePort();
    if (!port.ok()) return fail(port.status());
    const std::string data = absl::StrCat(dir, "/data");
    std::error_code ignored;
    std::filesystem::remove_all(data, ignored);
    std::vector<std::string> argv = {
        options.binary,
        "--config.file=" + config,
        "--storage.tsdb.path=" + data,
        absl::StrCat("--web.listen-address=127.0.0.1:", *port),
        "--web.enable-remote-write-receiver",
    };
    argv.insert(argv.end(), options.extra_flags.begin(), options.extra_flags.end());
    absl::StatusOr<pid_t> pid = Spawn(argv, log);
    if (!pid.ok()) return fail(pid.status());
    // From here the server owns the directory and the process.
    std::unique_ptr<PrometheusServer> server(new PrometheusServer(dir, *port, *pid, options));

    const absl::Time deadline = absl::Now() + options.startup_timeout;
    bool exited = false;
    for (;;) {
      int status = 0;
      if (::waitpid(*pid, &status, WNOHANG) == *pid) {
        exited = true;
        server->pid_ = 0;
        last_error = absl::StrCat("prometheus exited (",
                                  WIFEXITED(status) ? absl::StrCat("status ", WEXITSTATUS(status))
                                                    : absl::StrCat("signal ", WTERMSIG(status)),
                                  ") before it was ready");
        break;
      }
      absl::StatusOr<HttpResponse> ready = server->Get("/-/ready");
      if (ready.ok() && ready->status == 200) return server;
      if (absl::Now() >= deadline) {
        last_error = absl::StrCat("prometheus not ready after ",
                                  absl::FormatDuration(options.startup_timeout), " (last: ",
                                  ready.ok() ? absl::StrCat("HTTP ", ready->status)
                                             : std::string(ready.status().message()),
                                  ")");
        break;
      }
      absl::SleepFor(kPollInterval);
    }
    std::string tail = ReadTail(log, 20);
    bool port_taken = exited && tail.find("address already in use") != std::string::npos;
    if (!port_taken || attempt == kStartAttempts) {
      std::string message = absl::StrCat(last_error, "; command: ", absl::StrJoin(argv, " "),
                                         "; last lines of ", log, ":\n", tail);
      return absl::UnavailableError(message);  // `server` stops it and removes `dir`
    }
    // Someone took the port between PickFreePort() and the bind: try another one, keeping
    // the directory (and the log, which accumulates across attempts).
    server->dir_.clear();
  }
  return fail(absl::UnavailableError(last_error));
}

absl::StatusOr<PrometheusServer*> PrometheusServer::Shared() {
  static absl::StatusOr<std::unique_ptr<PrometheusServer>> shared = Start();
  if (!shared.ok()) return shared.status();
  return shared->get();
}

PrometheusServer::~PrometheusServer() { Stop(); }

void PrometheusServer::Stop() {
  KillAndReap(pid_);
  pid_ = 0;
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string PrometheusServer::base_url() const {
  return absl::StrCat(options_.scheme, "://127.0.0.1:", port_);
}

std::string PrometheusServer::remote_write_url() const { return base_url() + "/api/v1/write"; }

std::string PrometheusServer::LogTail(int lines) const {
  return ReadTail(dir_ + "/prometheus.log", lines);
}

absl::StatusOr<HttpResponse> PrometheusServer::Get(absl::string_view path_and_query) {
  return HttpRequest(options_, absl::StrCat(base_url(), path_and_query), nullptr, {});
}

absl::StatusOr<std::vector<QueryResult>> PrometheusServer::Query(absl::string_view promql,
                                                                 absl::Time at) {
  absl::StatusOr<HttpResponse> response =
      Get(absl::StrCat("/api/v1/query?query=", Escape(promql), "&time=", ApiTime(at)));
  if (!response.ok()) return response.status();
  return Decode<std::vector<QueryResult>>(
      *response, absl::StrCat("query ", promql), [](const Json& data) {
        std::vector<QueryResult> results;
        const std::string type = data.at("resultType").get<std::string>();
        const Json& result = data.at("result");
        if (type == "scalar" || type == "string") {
          if (type == "scalar") results.push_back(ParsePair({}, result, false));
        } else if (type == "vector") {
          for (const Json& s : result) {
            PromLabels labels = ParseLabels(s.at("metric"));
            bool is_histogram = s.contains("histogram");
            results.push_back(
                ParsePair(labels, is_histogram ? s.at("histogram") : s.at("value"), is_histogram));
          }
        } else if (type == "matrix") {
          for (const Json& s : result) {
            PromLabels labels = ParseLabels(s.at("metric"));
            if (s.contains("values")) {
              for (const Json& v : s.at("values")) results.push_back(ParsePair(labels, v, false));
            }
            if (s.contains("histograms")) {
              for (const Json& h : s.at("histograms")) {
                results.push_back(ParsePair(labels, h, true));
              }
            }
          }
        } else {
          throw std::invalid_argument("unknown resultType " + type);
        }
        return results;
      });
}

absl::StatusOr<std::vector<RangeSeries>> PrometheusServer::QueryRange(absl::string_view promql,
                                                                      absl::Time start,
                                                                      absl::Time end,
                                                                      absl::Duration step) {
  absl::StatusOr<HttpResponse> response = Get(absl::StrCat(
      "/api/v1/query_range?query=", Escape(promql), "&start=", ApiTime(start),
      "&end=", ApiTime(end), "&step=", absl::StrFormat("%.3f", absl::ToDoubleSeconds(step))));
  if (!response.ok()) return response.status();
  return Decode<std::vector<RangeSeries>>(
      *response, absl::StrCat("query_range ", promql), [](const Json& data) {
        std::vector<RangeSeries> results;
        for (const Json& s : data.at("result")) {
          RangeSeries series;
          series.labels = ParseLabels(s.at("metric"));
          if (s.contains("values")) {
            for (const Json& v : s.at("values")) {
              series.points.push_back(Point{ParseTimestampMs(v.at(0)), ParseSampleValue(v.at(1))});
            }
          }
          if (s.contains("histograms")) {
            for (const Json& h : s.at("histograms")) {
              series.histograms.emplace_back(ParseTimestampMs(h.at(0)), ParseHistogram(h.at(1)));
            }
          }
          results.push_back(std::move(series));
        }
        return results;
      });
}

absl::StatusOr<std::vector<PromLabels>> PrometheusServer::Series(absl::string_view match) {
  absl::StatusOr<HttpResponse> response =
      Get(absl::StrCat("/api/v1/series?match%5B%5D=", Escape(match)));
  if (!response.ok()) return response.status();
  return Decode<std::vector<PromLabels>>(*response, absl::StrCat("series ", match),
                                         [](const Json& data) {
                                           std::vector<PromLabels> results;
                                           for (const Json& s : data) {
                                             results.push_back(ParseLabels(s));
                                           }
                                           return results;
                                         });
}

absl::StatusOr<HttpResponse> PrometheusServer::RemoteWrite(
    const prometheus::WriteRequest& request) {
  std::string serialized;
  if (!request.SerializeToString(&serialized)) {
    return absl::InternalError("cannot serialize the WriteRequest");
  }
  std::string compressed;
  snappy::Compress(serialized.data(), serialized.size(), &compressed);
  return HttpRequest(options_, remote_write_url(), &compressed,
                     {"Content-Type: application/x-protobuf", "Content-Encoding: snappy",
                      "X-Prometheus-Remote-Write-Version: 0.1.0", "User-Agent: rwexport-tests"});
}

}  // namespace rwexport
