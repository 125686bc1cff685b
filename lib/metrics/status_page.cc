#include "lib/metrics/status_page.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rwexport {
namespace {

constexpr char kStyle[] = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .4em}
.meta{color:#555}.ok{color:#176b2c;font-weight:600}.bad{color:#b3261e;font-weight:600}
table{border-collapse:collapse;margin:.3em 0 1em;background:#fff}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;vertical-align:top;white-space:nowrap}
th{background:#f0f0f3;font-weight:600}td.l,th.l{text-align:left}td.url,td.err,td.rejected,td.dropped{white-space:normal}
.export{border:1px solid #ccd;border-radius:6px;padding:.2em 1em .4em;margin:1em 0;background:#fff}
.err{color:#b3261e;text-align:left;max-width:40em;word-break:break-all}
)css";

std::string Count(uint64_t n) {
  // 1234567 -> "1,234,567": easier to read at a glance.
  std::string digits = absl::StrCat(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string Bytes(double bytes) {
  if (bytes >= 1 << 30) return absl::StrFormat("%.2f GiB", bytes / (1 << 30));
  if (bytes >= 1 << 20) return absl::StrFormat("%.1f MiB", bytes / (1 << 20));
  if (bytes >= 1 << 10) return absl::StrFormat("%.1f KiB", bytes / (1 << 10));
  return absl::StrFormat("%.0f B", bytes);
}

std::string Age(absl::Duration d) {
  const int64_t s = absl::ToInt64Seconds(d);
  if (s < 60) return absl::StrFormat("%.1f s", absl::ToDoubleSeconds(d));
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
}

std::string Td(absl::string_view cls, absl::string_view text, bool left = false) {
  return absl::StrCat("<td class=\"", cls, left ? " l" : "", "\">", HtmlEscape(text), "</td>");
}

std::string Reasons(const std::map<std::string, uint64_t>& by_reason) {
  std::string out;
  for (const auto& [reason, n] : by_reason) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", reason, " ", Count(n));
  }
  return out.empty() ? "0" : out;
}

std::string RenderExport(const v1::ExportStatus& e, absl::Time now) {
  const absl::Duration age = now - absl::FromUnixMillis(e.started_unix_ms());
  const double seconds = std::max(absl::ToDoubleSeconds(age), 1e-3);
  uint64_t series = 0;
  for (const v1::TargetFigures& f : e.figures()) series += f.series();
  std::map<std::string, uint64_t> rejected;
  for (const v1::Rejection& r : e.rejections()) rejected[r.reason()] += r.count();
  std::string out = absl::StrCat(
      "<div class=\"export\" data-export-id=\"", HtmlEscape(e.export_id()), "\">\n<h2>",
      HtmlEscape(e.test_run_id()), " <span class=\"meta\">export ", HtmlEscape(e.export_id()),
      "</span></h2>\n<table><tr><th class=\"l\">state</th><th>age</th><th>streams</th>"
      "<th>samples accepted</th><th>samples/s (since start)</th><th class=\"l\">rejected</th>"
      "<th>late</th><th>series</th><th>windows flushed</th></tr>\n<tr>",
      Td("state", v1::ExportStatus::State_Name(e.state()), true), Td("age", Age(age)),
      Td("streams", absl::StrCat(e.active_streams())),
      Td("samples-accepted", Count(e.samples_accepted())),
      Td("samples-rate", absl::StrFormat("%.0f", e.samples_accepted() / seconds)),
      Td("rejected", Reasons(rejected), true), Td("late", Count(e.samples_late())),
      Td("series", Count(series)), Td("windows", Count(e.windows_flushed())), "</tr></table>\n");
  absl::StrAppend(&out,
                  "<table><tr><th class=\"l\">target</th><th>series</th><th>points sent</th>"
                  "<th>pending</th><th>in flight</th><th>requests</th><th>retries</th>"
                  "<th>failures</th><th class=\"l\">dropped</th><th>lag</th>"
                  "<th class=\"l\">last error</th></tr>\n");
  for (const v1::TargetFigures& f : e.figures()) {
    std::map<std::string, uint64_t> dropped(f.dropped_by_reason().begin(),
                                            f.dropped_by_reason().end());
    const std::string lag = f.highest_timestamp_ms() > 0
                                ? Age(now - absl::FromUnixMillis(f.highest_timestamp_ms()))
                                : "none delivered";
    absl::StrAppend(&out, "<tr class=\"target\">", Td("url", f.remote_write_url(), true),
                    Td("series", Count(f.series())), Td("points-sent", Count(f.points_sent())),
                    Td("pending", Count(f.points_pending())),
                    Td("in-flight", absl::StrCat(f.requests_in_flight())),
                    Td("requests", Count(f.requests())), Td("retries", Count(f.retries())),
                    Td("failures", Count(f.failures())), Td("dropped", Reasons(dropped), true),
                    Td("lag", lag), Td("err", f.last_error().empty() ? "" : f.last_error()),
                    "</tr>\n");
  }
  absl::StrAppend(&out, "</table></div>\n");
  return out;
}

}  // namespace

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string RenderStatusPage(const StatusPageInput& in) {
  uint64_t accepted = in.retired.samples_accepted, sent = in.retired.points_sent;
  uint64_t pending = 0, series = 0;
  std::map<std::string, uint64_t> dropped = in.retired.points_dropped;
  std::map<std::string, uint64_t> rejected;
  for (const auto& [reason, r] : in.retired.rejections) rejected[reason] += r.count;
  for (const v1::ExportStatus& e : in.live) {
    accepted += e.samples_accepted();
    for (const v1::Rejection& r : e.rejections()) rejected[r.reason()] += r.count();
    for (const v1::TargetFigures& f : e.figures()) {
      sent += f.points_sent();
      pending += f.points_pending();
      series += f.series();
      for (const auto& [reason, n] : f.dropped_by_reason()) dropped[reason] += n;
    }
  }
  const absl::Duration uptime =
      in.process.start_time_seconds > 0
          ? in.now - absl::FromUnixSeconds(static_cast<int64_t>(in.process.start_time_seconds))
          : absl::ZeroDuration();
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"5\">"
      "<meta name=\"viewport\" content=\"width=device-width\">"
      "<title>rwexport status</title><style>",
      kStyle, "</style></head><body>\n<h1>rwexport ", HtmlEscape(in.build.version), " ",
      in.ready ? "<span id=\"ready\" class=\"ok\">ready</span>"
               : "<span id=\"ready\" class=\"bad\">not ready</span>",
      "</h1>\n<p class=\"meta\">revision ", HtmlEscape(in.build.revision), ", built ",
      HtmlEscape(in.build.build_date), " &middot; up ", Age(uptime), " &middot; ",
      HtmlEscape(absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", in.now, absl::UTCTimeZone())),
      " &middot; reloads every 5 s &middot; <a href=\"/metrics\">/metrics</a></p>\n"
      "<h2>Server</h2>\n<table id=\"server\"><tr><th>exports running</th><th>started</th>"
      "<th>stopped</th><th>series</th><th>samples accepted</th><th class=\"l\">rejected</th>"
      "<th>points delivered</th><th>pending</th><th class=\"l\">dropped</th><th>CPU</th>"
      "<th>memory (RSS)</th><th>open files</th></tr>\n<tr>",
      Td("exports-active", absl::StrCat(in.live.size())),
      Td("exports-started", Count(in.exports_started)),
      Td("exports-stopped", Count(in.retired.exports_stopped)), Td("series", Count(series)),
      Td("samples-accepted", Count(accepted)), Td("rejected", Reasons(rejected), true),
      Td("points-sent", Count(sent)), Td("pending", Count(pending)),
      Td("dropped", Reasons(dropped), true),
      Td("cpu", absl::StrFormat("%.1f s", in.process.cpu_seconds)),
      Td("rss", Bytes(in.process.resident_bytes)),
      Td("fds", absl::StrFormat("%.0f / %.0f", in.process.open_fds, in.process.max_fds)),
      "</tr></table>\n");
  absl::StrAppend(&out, "<h2>Running exports (", in.live.size(), ")</h2>\n");
  if (in.live.empty()) absl::StrAppend(&out, "<p class=\"meta\">none</p>\n");
  for (const v1::ExportStatus& e : in.live) absl::StrAppend(&out, RenderExport(e, in.now));
  absl::StrAppend(&out, "</body></html>\n");
  return out;
}

}  // namespace rwexport
