#include "lib/bench/null_receiver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "lib/remote_write/encoder.h"

namespace rwexport {
namespace {

constexpr size_t kMaxHeaderBytes = 64 << 10;
constexpr size_t kMaxBodyBytes = 64 << 20;

constexpr absl::string_view kNoContent = "HTTP/1.1 204 No Content\r\n\r\n";
constexpr absl::string_view kNoContentClose =
    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
constexpr absl::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr absl::string_view kLengthRequired =
    "HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
constexpr absl::string_view kHeadersTooLarge =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    "Connection: close\r\n\r\n";
constexpr absl::string_view kTooLarge =
    "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

bool ReadVarint(absl::string_view* in, uint64_t* out) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *out = value;
      return true;
    }
  }
  return false;
}

// Calls `field(number, bytes)` for each length-delimited field of the protobuf message `in`
// and skips the others. False on malformed input.
template <typename F>
bool ForEachLengthDelimited(absl::string_view in, F field) {
  while (!in.empty()) {
    uint64_t key, length;
    if (!ReadVarint(&in, &key)) return false;
    switch (key & 7) {
      case 0:
        if (!ReadVarint(&in, &length)) return false;
        break;
      case 1:
        if (in.size() < 8) return false;
        in.remove_prefix(8);
        break;
      case 5:
        if (in.size() < 4) return false;
        in.remove_prefix(4);
        break;
      case 2:
        if (!ReadVarint(&in, &length) || length > in.size()) return false;
        if (!field(key >> 3, in.substr(0, length))) return false;
        in.remove_prefix(length);
        break;
      default:
        return false;
    }
  }
  return true;
}

// Adds the samples (TimeSeries field 2) and histograms (field 4) of a WriteRequest (whose
// TimeSeries are its field 1) to `points`; false when it is not a protobuf message.
bool CountPoints(absl::string_view write_request, uint64_t* points) {
  return ForEachLengthDelimited(write_request, [points](uint64_t number, absl::string_view ts) {
    if (number != 1) return true;
    return ForEachLengthDelimited(ts, [points](uint64_t n, absl::string_view) {
      if (n == 2 || n == 4) ++*points;
      return true;
    });
  });
}

// The value of header `name` in the header block `headers` (lines after the request line).
absl::string_view HeaderValue(absl::string_view headers, absl::string_view name) {
  while (!headers.empty()) {
    const size_t eol = headers.find("\r\n");
    absl::string_view line = headers.substr(0, eol);
    headers = eol == absl::string_view::npos ? absl::string_view() : headers.substr(eol + 2);
    const size_t colon = line.find(':');
    if (colon != absl::string_view::npos &&
        absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(line.substr(0, colon)), name)) {
      return absl::StripAsciiWhitespace(line.substr(colon + 1));
    }
  }
  return {};
}

}  // namespace

struct NullReceiver::Connection {
  int fd;
  std::string in;
  std::string out;
  bool close_after_write = false;
  bool continue_sent = false;  // for the request at the front of `in`
};

absl::StatusOr<std::unique_ptr<NullReceiver>> NullReceiver::Start(NullReceiverOptions options) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 128) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on 127.0.0.1: ", std::strerror(error)));
  }
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    const int error = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(error)));
  }
  std::unique_ptr<NullReceiver> receiver(
      new NullReceiver(options, fd, ntohs(address.sin_port), wake[0], wake[1]));
  receiver->thread_ = std::thread([r = receiver.get()] { r->Loop(); });
  return receiver;
}

NullReceiver::NullReceiver(NullReceiverOptions options, int listen_fd, int port, int wake_read,
                           int wake_write)
    : options_(options),
      listen_fd_(listen_fd),
      port_(port),
      wake_read_(wake_read),
      wake_write_(wake_write) {}

NullReceiver::~NullReceiver() {
  const char byte = 'x';
  while (write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
  }
  thread_.join();
  close(listen_fd_);
  close(wake_read_);
  close(wake_write_);
}

std::string NullReceiver::Url() const {
  return absl::StrCat("http://127.0.0.1:", port_, "/api/v1/write");
}

NullReceiverCounts NullReceiver::Counts() const {
  NullReceiverCounts counts;
  counts.requests = requests_.load();
  counts.body_bytes = body_bytes_.load();
  counts.points = points_.load();
  counts.decode_errors = decode_errors_.load();
  return counts;
}

void NullReceiver::Process(Connection* c) {
  while (true) {
    const size_t header_end = c->in.find("\r\n\r\n");
    if (header_end == std::string::npos) {
      if (c->in.size() > kMaxHeaderBytes) {
        c->out.append(kHeadersTooLarge.data(), kHeadersTooLarge.size());
        c->close_after_write = true;
      }
      return;
    }
    const absl::string_view head = absl::string_view(c->in).substr(0, header_end);
    const size_t first_eol = head.find("\r\n");
    const absl::string_view request_line = head.substr(0, first_eol);
    const absl::string_view headers =
        first_eol == absl::string_view::npos ? absl::string_view() : head.substr(first_eol + 2);
    const absl::string_view content_length = HeaderValue(headers, "Content-Length");
    size_t length = 0;
    if (content_length.empty()) {
      if (!HeaderValue(headers, "Transfer-Encoding").empty()) {
        c->out.append(kLengthRequired.data(), kLengthRequired.size());
        c->close_after_write = true;
        return;
      }
    } else if (!absl::SimpleAtoi(content_length, &length) || length > kMaxBodyBytes) {
      c->out.append(kTooLarge.data(), kTooLarge.size());
      c->close_after_write = true;
      return;
    }
    const size_t body_start = header_end + 4;
    if (c->in.size() < body_start + length) {
      if (!c->continue_sent &&
          absl::EqualsIgnoreCase(HeaderValue(headers, "Expect"), "100-continue")) {
        c->out.append(kContinue.data(), kContinue.size());
        c->continue_sent = true;
      }
      return;
    }
    ++requests_;
    body_bytes_ += length;
    if (options_.count_points) {
      uint64_t points = 0;
      absl::StatusOr<std::string> raw =
          SnappyUncompress(absl::string_view(c->in).substr(body_start, length));
      if (raw.ok() && CountPoints(*raw, &points)) {
        points_ += points;
      } else {
        ++decode_errors_;
      }
    }
    const bool close = absl::EndsWith(request_line, "HTTP/1.0") ||
                       absl::EqualsIgnoreCase(HeaderValue(headers, "Connection"), "close");
    const absl::string_view answer = close ? kNoContentClose : kNoContent;
    c->out.append(answer.data(), answer.size());
    c->in.erase(0, body_start + length);
    c->continue_sent = false;
    if (close) {
      c->close_after_write = true;
      return;
    }
  }
}

void NullReceiver::Loop() {
  std::vector<std::unique_ptr<Connection>> connections;
  std::vector<pollfd> fds;
  char chunk[64 << 10];
  while (true) {
    fds.clear();
    fds.push_back({wake_read_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const auto& c : connections) {
      fds.push_back({c->fd, static_cast<short>(c->out.empty() ? POLLIN : POLLIN | POLLOUT), 0});
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;
    if (fds[1].revents & POLLIN) {
      while (true) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        connections.push_back(std::make_unique<Connection>(Connection{fd, {}, {}}));
      }
    }
    // Connections accepted above are not in `fds` yet: only the first n are polled.
    const size_t polled = fds.size() - 2;
    std::vector<bool> closing(connections.size(), false);
    for (size_t i = 0; i < polled; ++i) {
      Connection* c = connections[i].get();
      const short revents = fds[i + 2].revents;
      if (revents & (POLLIN | POLLHUP | POLLERR)) {
        while (true) {
          const ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);
          if (n > 0) {
            c->in.append(chunk, static_cast<size_t>(n));
            continue;
          }
          if (n < 0 && errno == EINTR) continue;
          if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closing[i] = true;
          break;
        }
        if (!c->close_after_write) Process(c);
      }
      while (!c->out.empty()) {
        const ssize_t n = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
        if (n > 0) {
          c->out.erase(0, static_cast<size_t>(n));
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) closing[i] = true;
        break;
      }
      if (c->out.empty() && c->close_after_write) closing[i] = true;
    }
    size_t kept = 0;
    for (size_t i = 0; i < connections.size(); ++i) {
      if (closing[i]) {
        close(connections[i]->fd);
      } else {
        connections[kept++] = std::move(connections[i]);
      }
    }
    connections.resize(kept);
  }
  for (const auto& c : connections) close(c->fd);
}

}  // namespace rwexport
