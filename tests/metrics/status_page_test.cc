#include "lib/metrics/status_page.h"

#include <string>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rwexport {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

StatusPageInput Input() {
  StatusPageInput in;
  in.now = absl::FromUnixSeconds(1800000000);
  in.build = {"1.2.3", "0123456789ab", "2026-12-07T00:00:00Z"};
  in.process.cpu_seconds = 12.34;
  in.process.resident_bytes = 50 * 1024 * 1024;
  in.process.open_fds = 17;
  in.process.max_fds = 65536;
  in.process.start_time_seconds = 1800000000 - 3725;
  in.ready = true;
  in.exports_started = 3;
  in.retired.exports_stopped = 2;
  in.retired.samples_accepted = 1000;
  in.retired.points_sent = 500;
  in.retired.points_dropped["http_400"] = 4;
  v1::ExportStatus& e = in.live.emplace_back();
  e.set_export_id("e1");
  e.set_test_run_id("run <b>&amp;\"42\"");
  e.set_state(v1::ExportStatus::RUNNING);
  e.set_started_unix_ms((1800000000 - 100) * int64_t{1000});
  e.set_active_streams(4);
  e.set_samples_accepted(1234567);
  e.set_samples_late(9);
  e.set_windows_flushed(300);
  v1::Rejection* r = e.add_rejections();
  r->set_reason("unknown_metric");
  r->set_count(15);
  v1::TargetFigures* f = e.add_figures();
  f->set_remote_write_url("https://u:REDACTED@prom.example/api/v1/write");
  f->set_series(20);
  f->set_points_sent(2000);
  f->set_points_pending(30);
  f->set_requests(50);
  f->set_retries(2);
  f->set_failures(2);
  f->set_requests_in_flight(1);
  (*f->mutable_dropped_by_reason())["queue_full"] = 7;
  (*f->mutable_dropped_by_reason())["http_413"] = 1;
  f->set_highest_timestamp_ms((1800000000 - 3) * int64_t{1000});
  f->set_last_error("HTTP 503: <html>busy</html>");
  v1::TargetFigures* idle = e.add_figures();
  idle->set_remote_write_url("http://other/api/v1/write");
  return in;
}

TEST(StatusPageTest, ServerFigures) {
  const std::string page = RenderStatusPage(Input());
  EXPECT_THAT(page, HasSubstr("<meta http-equiv=\"refresh\" content=\"5\">"));
  EXPECT_THAT(page, HasSubstr("rwexport 1.2.3 <span id=\"ready\" class=\"ok\">ready</span>"));
  EXPECT_THAT(page, HasSubstr("revision 0123456789ab, built 2026-12-07T00:00:00Z &middot; up "
                              "1h02m"));
  EXPECT_THAT(page, HasSubstr("<td class=\"exports-active\">1</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"exports-started\">3</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"exports-stopped\">2</td>"));
  // Retired plus live.
  EXPECT_THAT(page, HasSubstr("<td class=\"samples-accepted\">1,235,567</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"points-sent\">2,500</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"dropped l\">http_400 4, http_413 1, queue_full 7</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"cpu\">12.3 s</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"rss\">50.0 MiB</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"fds\">17 / 65536</td>"));
  // Self-contained: no scripts, no external assets.
  EXPECT_THAT(page, Not(HasSubstr("<script")));
  EXPECT_THAT(page, Not(HasSubstr("src=")));
  EXPECT_THAT(page, Not(HasSubstr("http://cdn")));
}

TEST(StatusPageTest, ExportAndTargets) {
  const std::string page = RenderStatusPage(Input());
  EXPECT_THAT(page, HasSubstr("data-export-id=\"e1\""));
  // Escaped: a test run id is user input.
  EXPECT_THAT(page, HasSubstr("run &lt;b&gt;&amp;amp;&quot;42&quot;"));
  EXPECT_THAT(page, Not(HasSubstr("<b>")));
  EXPECT_THAT(page, HasSubstr("<td class=\"state l\">RUNNING</td><td class=\"age\">1m40s</td>"
                              "<td class=\"streams\">4</td>"
                              "<td class=\"samples-accepted\">1,234,567</td>"
                              "<td class=\"samples-rate\">12346</td>"
                              "<td class=\"rejected l\">unknown_metric 15</td>"
                              "<td class=\"late\">9</td><td class=\"series\">20</td>"
                              "<td class=\"windows\">300</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"url l\">https://u:REDACTED@prom.example/api/v1/write"
                              "</td><td class=\"series\">20</td>"
                              "<td class=\"points-sent\">2,000</td><td class=\"pending\">30</td>"
                              "<td class=\"in-flight\">1</td><td class=\"requests\">50</td>"
                              "<td class=\"retries\">2</td><td class=\"failures\">2</td>"
                              "<td class=\"dropped l\">http_413 1, queue_full 7</td>"
                              "<td class=\"lag\">3.0 s</td>"
                              "<td class=\"err\">HTTP 503: &lt;html&gt;busy&lt;/html&gt;</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"url l\">http://other/api/v1/write</td>"));
  EXPECT_THAT(page, HasSubstr("<td class=\"lag\">none delivered</td>"));
}

TEST(StatusPageTest, NoExportsAndNotReady) {
  StatusPageInput in = Input();
  in.live.clear();
  in.ready = false;
  const std::string page = RenderStatusPage(in);
  EXPECT_THAT(page, HasSubstr("<span id=\"ready\" class=\"bad\">not ready</span>"));
  EXPECT_THAT(page, HasSubstr("<h2>Running exports (0)</h2>\n<p class=\"meta\">none</p>"));
}

TEST(StatusPageTest, HtmlEscape) {
  EXPECT_EQ(HtmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(HtmlEscape("plain"), "plain");
}

}  // namespace
}  // namespace rwexport
