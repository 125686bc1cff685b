#include "server/influx_endpoint.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/aggregate/aggregator.h"
#include "lib/common/log.h"
#include "lib/durable/export_journal.h"
#include "lib/export/ownership.h"
#include "lib/ingest/batch_decoder.h"
#include "lib/ingest/batch_encoder.h"
#include "lib/ingest/line_batch.h"
#include "lib/ingest/line_protocol.h"
#include "lib/ingest/stream_ingester.h"
#include "server/influx_http.h"
#include "server/influx_request.h"

namespace rwexport {
namespace {

using influx_http::Argument;
using influx_http::FormValue;
using influx_http::Header;
using influx_http::HttpError;
using influx_http::JsonString;
using influx_http::Send;
using influx_http::SendError;

// Ingesters kept per db: one per write being routed at once (k6 writes 4 at a time at most).
constexpr size_t kMaxIngestersPerDb = 16;

// A listening TCP socket on `listen` (host:port), or UNAVAILABLE saying why.
absl::StatusOr<int> Listen(const std::string& listen, int* port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--influx_listen: expected HOST:PORT, got \"", listen, "\""));
  }
  std::string host = listen.substr(0, colon);
  const std::string service = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int gai =
      getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
  if (gai != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--influx_listen: cannot resolve \"", listen, "\": ", gai_strerror(gai)));
  }
  int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) {
    freeaddrinfo(found);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", strerror(errno)));
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
    const int err = errno;
    freeaddrinfo(found);
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen, ": ", strerror(err),
        err == EADDRINUSE ? " (another process has this port; choose another --influx_listen)"
                          : ""));
  }
  freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  *port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

}  // namespace

struct MhdCallbacks {
  static MHD_Result Access(void* cls, MHD_Connection* connection, const char* url,
                           const char* method, const char* version, const char* upload_data,
                           size_t* upload_data_size, void** con_cls) {
    return static_cast<MHD_Result>(static_cast<InfluxEndpoint*>(cls)->Handle(
        connection, url, method, upload_data, upload_data_size, con_cls));
  }
  static void Completed(void* cls, MHD_Connection* connection, void** con_cls,
                        MHD_RequestTerminationCode toe) {
    auto* request = static_cast<InfluxEndpoint::Request*>(*con_cls);
    if (request == nullptr) return;
    static_cast<InfluxEndpoint*>(cls)->pending_bytes_ -= request->held;
    delete request;
    *con_cls = nullptr;
  }
  static void Log(void* cls, const char* format, va_list args) {
    char text[512];
    vsnprintf(text, sizeof(text), format, args);
    std::string line(text);
    while (!line.empty() && line.back() == '\n') line.pop_back();
    LogWarning("influx endpoint: libmicrohttpd", {{"message", line}});
  }
};

absl::StatusOr<std::unique_ptr<InfluxEndpoint>> InfluxEndpoint::Start(
    ExportRegistry* registry, InfluxEndpointOptions options) {
  int port = 0;
  absl::StatusOr<int> fd = Listen(options.listen, &port);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<InfluxEndpoint> e(new InfluxEndpoint(registry, std::move(options)));
  e->port_ = port;
  e->daemon_ = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
          MHD_USE_ERROR_LOG,
      0, nullptr, nullptr, &MhdCallbacks::Access, e.get(), MHD_OPTION_EXTERNAL_LOGGER,
      &MhdCallbacks::Log, e.get(), MHD_OPTION_LISTEN_SOCKET, *fd, MHD_OPTION_THREAD_POOL_SIZE,
      static_cast<unsigned int>(std::max(1, e->options_.threads)), MHD_OPTION_NOTIFY_COMPLETED,
      &MhdCallbacks::Completed, e.get(), MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
  if (e->daemon_ == nullptr) {
    close(*fd);
    return absl::UnavailableError(
        absl::StrCat("cannot serve HTTP on ", e->options_.listen, " (libmicrohttpd failed)"));
  }
  e->idle_thread_ = std::thread([raw = e.get()] { raw->IdleLoop(); });
  return e;
}

InfluxEndpoint::InfluxEndpoint(ExportRegistry* registry, InfluxEndpointOptions options)
    : registry_(registry), options_(std::move(options)), auth_(options_.auth_token) {}

InfluxEndpoint::~InfluxEndpoint() {
  // No new connections; the listening socket is ours to close once the daemon stopped.
  const MHD_socket listening =
      daemon_ != nullptr ? MHD_quiesce_daemon(daemon_) : MHD_INVALID_SOCKET;
  std::vector<std::thread> stoppers;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    while (applying_ > 0) cv_.Wait(&mu_);
    cv_.SignalAll();
    stoppers.swap(stoppers_);
  }
  if (idle_thread_.joinable()) idle_thread_.join();
  for (std::thread& t : stoppers) t.join();
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
  if (listening != MHD_INVALID_SOCKET) close(listening);
}

int InfluxEndpoint::Handle(MHD_Connection* connection, const char* url, const char* method,
                           const char* upload_data, size_t* upload_data_size, void** con_cls) {
  if (*con_cls == nullptr) return Begin(connection, url, method, con_cls);
  auto* request = static_cast<Request*>(*con_cls);
  if (*upload_data_size > 0) {
    const size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (request->too_large || request->overloaded) return MHD_YES;  // discarded
    if (request->body.size() + n > options_.max_body_bytes) {
      request->too_large = true;
    } else if (pending_bytes_.fetch_add(n) + n > options_.max_pending_bytes) {
      pending_bytes_ -= n;
      request->overloaded = true;
    } else {
      request->held += n;
      request->body.append(upload_data, n);
      return MHD_YES;
    }
    pending_bytes_ -= request->held;
    request->held = 0;
    std::string().swap(request->body);
    return MHD_YES;
  }
  if (request->answered) return MHD_YES;  // resumed after the answer was queued (no-op)
  {
    MutexLock lock(&request->mu);
    if (request->applied && request->durable && request->status != 0) {
      request->answered = true;
      if (request->wal_status != 0) {
        return SendError(connection, request->wal_status, request->wal_message);
      }
      if (request->status == MHD_HTTP_NO_CONTENT) return Send(connection, request->status, "");
      return SendError(connection, request->status, request->message);
    }
  }
  if (request->too_large) {
    request->answered = true;
    return SendError(connection, MHD_HTTP_CONTENT_TOO_LARGE, "Request Entity Too Large");
  }
  if (request->overloaded) {
    request->answered = true;
    return SendError(connection, MHD_HTTP_SERVICE_UNAVAILABLE,
                     "rwexport is overloaded: too many request bytes held; retry later", 1);
  }
  return request->kind == Request::Kind::kWrite ? Write(connection, request)
                                                : Query(connection, request);
}

int InfluxEndpoint::Begin(MHD_Connection* connection, const std::string& url,
                          const std::string& method, void** con_cls) {
  if (url == "/ping") {
    if (method != "GET" && method != "HEAD") {
      return SendError(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    }
    return Send(connection, MHD_HTTP_NO_CONTENT, "");
  }
  Request::Kind kind;
  if (url == "/write") {
    if (method != "POST") {
      return SendError(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    }
    kind = Request::Kind::kWrite;
  } else if (url == "/query") {
    if (method != "GET" && method != "POST") {
      return SendError(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    }
    kind = Request::Kind::kQuery;
  } else {
    return SendError(connection, MHD_HTTP_NOT_FOUND, "404 page not found");
  }
  bool sent_credentials = false;
  if (!Authorized(connection, &sent_credentials)) {
    return SendError(
        connection, MHD_HTTP_UNAUTHORIZED,
        sent_credentials ? "authorization failed" : "unable to parse authentication credentials");
  }
  const std::string length = Header(connection, MHD_HTTP_HEADER_CONTENT_LENGTH);
  size_t content_length = 0;
  if (!length.empty() && absl::SimpleAtoi(length, &content_length) &&
      content_length > options_.max_body_bytes) {
    return SendError(connection, MHD_HTTP_CONTENT_TOO_LARGE, "Request Entity Too Large");
  }
  auto* request = new Request;
  request->kind = kind;
  if (content_length > 0) request->body.reserve(content_length);
  *con_cls = request;
  return MHD_YES;
}

bool InfluxEndpoint::Authorized(MHD_Connection* connection, bool* sent_credentials) const {
  if (!auth_.enabled()) return true;
  bool ok = false;
  auto candidate = [&](absl::string_view token) {
    *sent_credentials = true;
    ok = auth_.Matches(token) || ok;
  };
  const std::string authorization = Header(connection, MHD_HTTP_HEADER_AUTHORIZATION);
  absl::string_view value = authorization;
  if (absl::ConsumePrefix(&value, "Bearer ")) {
    candidate(value);
  } else if (absl::ConsumePrefix(&value, "Token ")) {
    // InfluxDB 1.8 takes "Token username:password"; a bare token is fine too.
    candidate(value);
    const size_t colon = value.find(':');
    if (colon != absl::string_view::npos) candidate(value.substr(colon + 1));
  } else if (absl::StartsWith(value, "Basic ")) {
    char* password = nullptr;
    char* user = MHD_basic_auth_get_username_password(connection, &password);
    if (password != nullptr) candidate(password);
    MHD_free(user);
    MHD_free(password);
  }
  if (const char* p = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "p")) {
    candidate(p);
  }
  return ok;
}

int InfluxEndpoint::Query(MHD_Connection* connection, Request* request) {
  request->answered = true;
  std::string q = Argument(connection, "q");
  if (q.empty() && absl::StartsWith(Header(connection, MHD_HTTP_HEADER_CONTENT_TYPE),
                                    "application/x-www-form-urlencoded")) {
    q = FormValue(request->body, "q");
  }
  if (q.empty())
    return SendError(connection, MHD_HTTP_BAD_REQUEST, "missing required parameter \"q\"");
  std::string results;
  int index = 0;
  for (absl::string_view statement : absl::StrSplit(q, ';', absl::SkipWhitespace())) {
    statement = absl::StripAsciiWhitespace(statement);
    const std::string upper = absl::AsciiStrToUpper(statement);
    if (!results.empty()) results.push_back(',');
    if (absl::StartsWith(upper, "CREATE DATABASE ")) {
      // A database is an export, found by its test run id or started by the first write.
      absl::StrAppend(&results, "{\"statement_id\":", index, "}");
    } else if (upper == "SHOW DATABASES") {
      std::string values;
      for (const v1::ExportStatus& s : registry_->List()) {
        if (s.state() != v1::ExportStatus::RUNNING) continue;
        absl::StrAppend(&values, values.empty() ? "" : ",", "[", JsonString(s.test_run_id()), "]");
      }
      absl::StrAppend(&results, "{\"statement_id\":", index,
                      ",\"series\":[{\"name\":\"databases\",\"columns\":[\"name\"]",
                      values.empty() ? "" : absl::StrCat(",\"values\":[", values, "]"), "}]}");
    } else {
      return SendError(connection, MHD_HTTP_BAD_REQUEST,
                       absl::StrCat("rwexport answers only CREATE DATABASE and SHOW DATABASES, "
                                    "not \"",
                                    statement.substr(0, 100), "\""));
    }
    ++index;
  }
  return Send(connection, MHD_HTTP_OK, absl::StrCat("{\"results\":[", results, "]}"));
}

absl::StatusOr<std::shared_ptr<InfluxEndpoint::Db>> InfluxEndpoint::FindDb(
    const std::string& name) {
  // Another replica's export id: UNAVAILABLE naming the owner, never an export started here.
  absl::Status owner = CheckExportOwner(registry_->options().replica_id, name);
  if (!owner.ok()) return owner;
  {
    MutexLock lock(&mu_);
    auto it = dbs_.find(name);
    if (it != dbs_.end()) {
      if (registry_->Find(it->second->export_id) != nullptr) return it->second;
      dbs_.erase(it);
    }
  }
  MutexLock start_lock(&start_mu_);
  {
    MutexLock lock(&mu_);
    auto it = dbs_.find(name);
    if (it != dbs_.end()) return it->second;
  }
  std::string export_id;
  for (const v1::ExportStatus& s : registry_->List()) {  // oldest first: the newest one wins
    if (s.state() != v1::ExportStatus::RUNNING) continue;
    if (s.export_id() == name || s.test_run_id() == name) export_id = s.export_id();
  }
  bool auto_started = false;
  if (export_id.empty()) {
    if (!options_.auto_export.has_value()) {
      return absl::NotFoundError(absl::StrCat("database not found: \"", name, "\""));
    }
    v1::StartExportRequest request = *options_.auto_export;
    request.set_test_run_id(name);
    absl::StatusOr<v1::StartExportResponse> started = registry_->Start(request);
    if (!started.ok()) {
      return absl::Status(started.status().code(),
                          absl::StrCat("cannot start an export for database \"", name,
                                       "\": ", started.status().message()));
    }
    export_id = started->export_id();
    auto_started = true;
    LogInfo("influx: export started for a new database", {{"db", name}, {"export_id", export_id}});
  }
  auto db = std::make_shared<Db>();
  db->name = name;
  db->export_id = export_id;
  db->exp = registry_->Find(export_id);
  db->auto_started = auto_started;
  db->last_write_ns = absl::GetCurrentTimeNanos();
  if (db->exp == nullptr)
    return absl::NotFoundError(absl::StrCat("database not found: \"", name, "\""));
  MutexLock lock(&mu_);
  dbs_[name] = db;
  return db;
}

int InfluxEndpoint::Write(MHD_Connection* connection, Request* request) {
  auto fail = [&](const HttpError& error) {
    request->answered = true;
    return SendError(connection, error);
  };
  const std::string db_name = Argument(connection, "db");
  if (db_name.empty()) return fail({MHD_HTTP_BAD_REQUEST, "database is required"});
  const std::string precision = Argument(connection, "precision");
  const int64_t precision_ns = LinePrecisionNanos(precision);
  if (precision_ns == 0) {
    return fail({MHD_HTTP_BAD_REQUEST,
                 absl::StrCat("invalid precision \"", precision, "\" (use n, u, ms, s, m or h)")});
  }
  std::string inflated;
  absl::string_view body;
  if (std::optional<HttpError> error = influx_http::WriteBody(
          connection, request->body, options_.max_body_bytes, &inflated, &body)) {
    return fail(*error);
  }
  thread_local LineBatchBuilder lines;
  LineBatchOptions line_options;
  line_options.precision_ns = precision_ns;
  line_options.max_line_bytes = options_.max_line_bytes;
  line_options.now_ns = absl::GetCurrentTimeNanos();
  lines.Build(body, line_options);

  if (std::optional<HttpError> error = BeginApplying()) return fail(*error);
  Handed handed;
  if (std::optional<HttpError> error = Hand(db_name, lines.batch(), connection, request, &handed)) {
    EndApplying();
    return fail(*error);
  }
  Journal(connection, request, handed.db->exp->id(), handed.sequence, lines.batch());
  return Answer(connection, request, lines, std::move(handed));
}

std::optional<HttpError> InfluxEndpoint::BeginApplying() {
  MutexLock lock(&mu_);
  if (stopping_) return HttpError{MHD_HTTP_SERVICE_UNAVAILABLE, "rwexport is shutting down", 1};
  if (applying_ >= options_.max_applying) {
    return HttpError{
        MHD_HTTP_SERVICE_UNAVAILABLE,
        absl::StrCat("rwexport is overloaded: ", applying_, " writes being applied; retry later"),
        1};
  }
  ++applying_;
  return std::nullopt;
}

void InfluxEndpoint::EndApplying() {
  MutexLock lock(&mu_);
  if (--applying_ == 0) cv_.SignalAll();
}

std::optional<HttpError> InfluxEndpoint::Hand(const std::string& db_name, const DecodedBatch& batch,
                                              MHD_Connection* connection, Request* request,
                                              Handed* handed) {
  // Twice at most: an auto-started export may be stopped for idleness between finding it and
  // writing to it; the second attempt starts a new one.
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::shared_ptr<Db>> found = FindDb(db_name);
    if (!found.ok()) {
      const absl::Status& s = found.status();
      const unsigned int status = absl::IsNotFound(s) ? MHD_HTTP_NOT_FOUND
                                  : absl::IsResourceExhausted(s) || absl::IsUnavailable(s)
                                      ? MHD_HTTP_SERVICE_UNAVAILABLE
                                      : MHD_HTTP_BAD_REQUEST;
      return HttpError{status, std::string(found.status().message()),
                       status == MHD_HTTP_SERVICE_UNAVAILABLE ? 5 : 0};
    }
    std::shared_ptr<Db> db = *std::move(found);
    std::unique_ptr<StreamIngester> ingester;
    {
      MutexLock lock(&db->mu);
      if (!db->idle.empty()) {
        ingester = std::move(db->idle.back());
        db->idle.pop_back();
      } else if (db->ingesters < kMaxIngestersPerDb) {
        ingester = std::make_unique<StreamIngester>(db->exp->aggregator());
        ++db->ingesters;
      }
    }
    if (ingester == nullptr) {
      return HttpError{MHD_HTTP_SERVICE_UNAVAILABLE,
                       absl::StrCat("rwexport is overloaded: ", kMaxIngestersPerDb,
                                    " writes to database \"", db_name, "\" at once; retry later"),
                       1};
    }
    db->last_write_ns = absl::GetCurrentTimeNanos();
    db->exp->Touch();
    handed->accepted_before = ingester->accepted();
    handed->rejected_before = ingester->rejections();
    ++db->writing;
    DispatchTag tag{kInfluxStreamId, 0, &handed->sequence};
    absl::Status ingested = ingester->Ingest(batch, Applied(connection, request, db), &tag);
    if (ingested.ok()) {
      handed->db = std::move(db);
      handed->ingester = std::move(ingester);
      return std::nullopt;
    }
    --db->writing;
    {
      MutexLock lock(&mu_);
      auto it = dbs_.find(db_name);
      if (it != dbs_.end() && it->second == db) dbs_.erase(it);
    }
    ingester.reset();
    if (attempt == 1 || !options_.auto_export.has_value()) {
      return HttpError{MHD_HTTP_NOT_FOUND, absl::StrCat("database not found: \"", db_name,
                                                        "\" (its export is stopping)")};
    }
  }
}

void InfluxEndpoint::IdleLoop() {
  const absl::Duration period =
      std::min(absl::Seconds(1), std::max(absl::Milliseconds(10), options_.idle_stop / 4));
  MutexLock lock(&mu_);
  while (!stopping_) {
    cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(period));
    if (stopping_) break;
    const int64_t now = absl::GetCurrentTimeNanos();
    const int64_t idle_ns = absl::ToInt64Nanoseconds(options_.idle_stop);
    std::vector<std::shared_ptr<Db>> idle;
    for (auto it = dbs_.begin(); it != dbs_.end();) {
      const Db& db = *it->second;
      if (db.auto_started && db.writing == 0 && now - db.last_write_ns >= idle_ns) {
        idle.push_back(it->second);
        dbs_.erase(it++);
      } else {
        ++it;
      }
    }
    for (std::shared_ptr<Db>& db : idle) {
      stoppers_.emplace_back([this, db] { StopIdle(db); });
    }
  }
}

void InfluxEndpoint::StopIdle(std::shared_ptr<Db> db) {
  {
    MutexLock lock(&db->mu);
    db->idle.clear();
  }
  absl::StatusOr<v1::StopExportResponse> stopped =
      registry_->Stop(db->export_id, absl::ZeroDuration());
  if (!stopped.ok()) return;  // stopped by StopExport meanwhile
  uint64_t sent = 0;
  uint64_t dropped = 0;
  for (const v1::TargetFigures& t : stopped->targets()) {
    sent += t.points_sent();
    dropped += t.points_dropped();
  }
  LogInfo("influx: export stopped after no writes for --influx_idle_stop",
          {{"db", db->name},
           {"export_id", db->export_id},
           {"idle_stop", absl::FormatDuration(options_.idle_stop)},
           {"samples_accepted", absl::StrCat(stopped->samples_accepted())},
           {"samples_rejected", absl::StrCat(stopped->samples_rejected())},
           {"points_sent", absl::StrCat(sent)},
           {"points_dropped", absl::StrCat(dropped)}});
}

}  // namespace rwexport
