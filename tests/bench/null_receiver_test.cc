// NullReceiver: the Sender delivers to it and both count the same points; raw HTTP edge cases
// (pipelining, Connection: close, chunked bodies, undecodable bodies).
#include "lib/bench/null_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/model/series.h"
#include "lib/remote_write/sender.h"
#include "tests/testing/series.h"

namespace rwexport {
namespace {

// Sends `request` on a new connection to 127.0.0.1:`port` and returns everything the server
// answers until it closes the connection or `answers` "HTTP/1.1 " status lines have arrived.
std::string Exchange(int port, const std::string& request, int answers) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "connect failed";
  }
  timeval timeout = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char chunk[4096];
  auto count = [&out] {
    int n = 0;
    for (size_t at = out.find("HTTP/1.1 "); at != std::string::npos;
         at = out.find("HTTP/1.1 ", at + 1)) {
      ++n;
    }
    return n;
  };
  while (count() < answers) {
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    out.append(chunk, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::string Post(const std::string& body, const std::string& extra_headers = "") {
  return absl::StrCat("POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Length: ", body.size(),
                      "\r\n", extra_headers, "\r\n", body);
}

TEST(NullReceiverTest, CountsWhatTheSenderDelivers) {
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  Sender sender;
  TargetOptions options;
  options.url = (*receiver)->Url();
  absl::StatusOr<Sender::TargetId> id = sender.AddTarget(options);
  ASSERT_TRUE(id.ok()) << id.status();

  PointBatch batch;
  for (int s = 0; s < 3; ++s) {
    SeriesPoints sp;
    sp.series = TestSeries({{"__name__", "k6_vus"}, {"instance", absl::StrCat(s)}});
    for (int p = 0; p <= s; ++p) sp.points.push_back({1700000000000 + p * 1000, 1.0 * p});
    batch.series.push_back(std::move(sp));
  }
  SeriesPoints histogram;
  histogram.series = TestSeries({{"__name__", "k6_http_req_duration_seconds"}});
  HistogramPoint h;
  h.timestamp_ms = 1700000000000;
  h.count = 1;
  h.sum = 0.5;
  h.zero_count = 1;
  histogram.histograms.push_back(h);
  batch.series.push_back(std::move(histogram));
  sender.Enqueue(*id, std::move(batch));
  const TargetFigures figures = sender.RemoveTarget(*id, absl::Now() + absl::Seconds(10));

  EXPECT_EQ(figures.points_sent, 7u);  // 1 + 2 + 3 floats, 1 histogram
  const NullReceiverCounts counts = (*receiver)->Counts();
  EXPECT_EQ(counts.points, 7u);
  EXPECT_EQ(counts.requests, figures.requests);
  EXPECT_EQ(counts.body_bytes, figures.bytes_sent);
  EXPECT_EQ(counts.decode_errors, 0u);
}

TEST(NullReceiverTest, AnswersPipelinedRequestsAndHonoursConnectionClose) {
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  // Two requests in one write, the second asking to close; their bodies are not snappy.
  const std::string answer =
      Exchange((*receiver)->port(), Post("abc") + Post("de", "Connection: close\r\n"), 3);
  EXPECT_EQ(answer,
            "HTTP/1.1 204 No Content\r\n\r\n"
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  const NullReceiverCounts counts = (*receiver)->Counts();
  EXPECT_EQ(counts.requests, 2u);
  EXPECT_EQ(counts.body_bytes, 5u);
  EXPECT_EQ(counts.decode_errors, 2u);
  EXPECT_EQ(counts.points, 0u);
}

TEST(NullReceiverTest, RefusesChunkedAndOversizedBodies) {
  absl::StatusOr<std::unique_ptr<NullReceiver>> receiver = NullReceiver::Start();
  ASSERT_TRUE(receiver.ok()) << receiver.status();
  EXPECT_EQ(
      Exchange((*receiver)->port(),
               "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 2)
          .substr(0, 30),
      "HTTP/1.1 411 Length Required\r\n");
  EXPECT_EQ(
      Exchange((*receiver)->port(), "POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", 2)
          .substr(0, 32),
      "HTTP/1.1 413 Payload Too Large\r\n");
  EXPECT_EQ((*receiver)->Counts().requests, 0u);
}

}  // namespace
}  // namespace rwexport
