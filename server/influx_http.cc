#include "server/influx_http.h"

#include <zlib.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/ingest/batch_decoder.h"
#include "server/influx_endpoint.h"

namespace rwexport {
namespace influx_http {
namespace {

std::string ErrorBody(absl::string_view message) {
  return absl::StrCat("{\"error\":", JsonString(message), "}");
}

// A header value fit for X-Influxdb-Error: printable ASCII, bounded.
std::string HeaderValue(absl::string_view message) {
  std::string out;
  for (char c : message.substr(0, 512)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : ' ');
  }
  return out;
}

// Decompresses a gzip body; false with `error` when it is not gzip or inflates beyond `limit`
// (then `too_large`).
bool Gunzip(absl::string_view in, size_t limit, std::string* out, std::string* error,
            bool* too_large) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    *error = "cannot initialise zlib";
    return false;
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  out->clear();
  char buffer[64 << 10];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof(buffer);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      *error = absl::StrCat("gzip: ", zs.msg != nullptr ? zs.msg : "truncated or corrupt body");
      inflateEnd(&zs);
      return false;
    }
    out->append(buffer, sizeof(buffer) - zs.avail_out);
    if (out->size() > limit) {
      *too_large = true;
      inflateEnd(&zs);
      return false;
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      *error = "gzip: truncated body";
      inflateEnd(&zs);
      return false;
    }
  }
  inflateEnd(&zs);
  return true;
}

}  // namespace

std::string JsonString(absl::string_view text) {
  const bool utf8 = IsValidUtf8(text);
  std::string out = "\"";
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(u, absl::kZeroPad2));
    } else if (u >= 0x80 && !utf8) {
      out.push_back('?');
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

MHD_Result Send(MHD_Connection* connection, unsigned int status, const std::string& body,
                absl::string_view error, int retry_after_s) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, "X-Influxdb-Version", InfluxEndpoint::kVersion);
  MHD_add_response_header(response, "X-Influxdb-Build", "OSS");
  if (!body.empty()) MHD_add_response_header(response, "Content-Type", "application/json");
  if (!error.empty()) {
    MHD_add_response_header(response, "X-Influxdb-Error", HeaderValue(error).c_str());
  }
  if (retry_after_s > 0) {
    MHD_add_response_header(response, "Retry-After", absl::StrCat(retry_after_s).c_str());
  }
  const MHD_Result result = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return result;
}

MHD_Result SendError(MHD_Connection* connection, unsigned int status, absl::string_view message,
                     int retry_after_s) {
  return Send(connection, status, ErrorBody(message), message, retry_after_s);
}

MHD_Result SendError(MHD_Connection* connection, const HttpError& error) {
  return SendError(connection, error.status, error.message, error.retry_after_s);
}

std::string Argument(MHD_Connection* connection, const char* name) {
  const char* v = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, name);
  return v == nullptr ? "" : v;
}

std::string Header(MHD_Connection* connection, const char* name) {
  const char* v = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
  return v == nullptr ? "" : v;
}

std::string FormValue(absl::string_view body, absl::string_view name) {
  for (absl::string_view pair : absl::StrSplit(body, '&')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (kv.first != name) continue;
    std::string value(kv.second);
    std::replace(value.begin(), value.end(), '+', ' ');
    value.resize(MHD_http_unescape(value.data()));
    return value;
  }
  return "";
}

std::optional<HttpError> WriteBody(MHD_Connection* connection, absl::string_view raw, size_t limit,
                                   std::string* inflated, absl::string_view* body) {
  *body = raw;
  if (!absl::EqualsIgnoreCase(Header(connection, MHD_HTTP_HEADER_CONTENT_ENCODING), "gzip")) {
    return std::nullopt;
  }
  std::string error;
  bool too_large = false;
  if (!Gunzip(raw, limit, inflated, &error, &too_large)) {
    if (too_large) return HttpError{MHD_HTTP_CONTENT_TOO_LARGE, "Request Entity Too Large"};
    return HttpError{MHD_HTTP_BAD_REQUEST, std::move(error)};
  }
  *body = *inflated;
  return std::nullopt;
}

}  // namespace influx_http
}  // namespace rwexport
