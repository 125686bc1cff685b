// The HTTP side of the InfluxDB 1.x endpoint (server/influx_endpoint.h): InfluxDB's answers and
// error bodies, request arguments and headers, and gzip request bodies. Private to
// //server:influx_endpoint. Stateless functions, thread-safe.
#ifndef RWEXPORT_SERVER_INFLUX_HTTP_H_
#define RWEXPORT_SERVER_INFLUX_HTTP_H_

#include <microhttpd.h>

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace rwexport {
namespace influx_http {

// An error answer: HTTP status, message, and Retry-After seconds (0: no header).
struct HttpError {
  unsigned int status = 0;
  std::string message;
  int retry_after_s = 0;
};

// `text` as a JSON string literal. Bytes of invalid UTF-8 become '?', so the answer stays JSON.
std::string JsonString(absl::string_view text);

// Queues an answer with InfluxDB's headers; `error` non-empty adds X-Influxdb-Error.
MHD_Result Send(MHD_Connection* connection, unsigned int status, const std::string& body,
                absl::string_view error = {}, int retry_after_s = 0);
// Queues InfluxDB's error answer: body {"error":"..."} and X-Influxdb-Error.
MHD_Result SendError(MHD_Connection* connection, unsigned int status, absl::string_view message,
                     int retry_after_s = 0);
MHD_Result SendError(MHD_Connection* connection, const HttpError& error);

// The query argument or request header `name`; empty when absent.
std::string Argument(MHD_Connection* connection, const char* name);
std::string Header(MHD_Connection* connection, const char* name);

// Parses application/x-www-form-urlencoded `body` for `name`.
std::string FormValue(absl::string_view body, absl::string_view name);

// The body of a write: `raw` as sent, or inflated into `*inflated` with `Content-Encoding: gzip`.
// An error (400 corrupt gzip, 413 beyond `limit` inflated) instead.
std::optional<HttpError> WriteBody(MHD_Connection* connection, absl::string_view raw, size_t limit,
                                   std::string* inflated, absl::string_view* body);

}  // namespace influx_http
}  // namespace rwexport

#endif  // RWEXPORT_SERVER_INFLUX_HTTP_H_
