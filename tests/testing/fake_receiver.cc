#include "tests/testing/fake_receiver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/remote_write/encoder.h"

namespace rwexport {
namespace {

constexpr size_t kMaxHeaderBytes = 64 << 10;
constexpr size_t kMaxBodyBytes = 64 << 20;
constexpr absl::Duration kMaxStall = absl::Seconds(30);

std::chrono::nanoseconds ToChrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(std::max(d, absl::ZeroDuration()));
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// Appends what the socket has to `buffer`; false on EOF or error.
bool ReadMore(int fd, std::string* buffer) {
  char chunk[64 << 10];
  while (true) {
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer->append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string ResponseBytes(const FakeResponse& response, bool close) {
  const bool has_body = response.status >= 200 && response.status != 204 && response.status != 304;
  std::string out =
      absl::StrCat("HTTP/1.1 ", response.status, " ", Reason(response.status), "\r\n");
  for (const auto& [name, value] : response.headers)
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  if (has_body) absl::StrAppend(&out, "Content-Length: ", response.body.size(), "\r\n");
  if (close) absl::StrAppend(&out, "Connection: close\r\n");
  absl::StrAppend(&out, "\r\n");
  if (has_body) absl::StrAppend(&out, response.body);
  return out;
}

}  // namespace

std::optional<std::string> ReceivedRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<FakeReceiver>> FakeReceiver::Start(
    std::function<absl::Time()> clock) {
  std::unique_ptr<FakeReceiver> receiver(new FakeReceiver());
  receiver->clock_ = std::move(clock);
  if (absl::Status status = receiver->Listen(); !status.ok()) return status;
  return receiver;
}

FakeReceiver::~FakeReceiver() { StopListening(); }

std::string FakeReceiver::Url(absl::string_view path_and_query) const {
  return absl::StrCat("http://127.0.0.1:", port_, path_and_query);
}

void FakeReceiver::Push(FakeResponse response) {
  MutexLock lock(&mu_);
  script_.push_back(std::move(response));
}

void FakeReceiver::SetDefault(FakeResponse response) {
  MutexLock lock(&mu_);
  default_response_ = std::move(response);
}

void FakeReceiver::ReleaseStalled() {
  MutexLock lock(&mu_);
  ++stall_releases_;
  cv_.SignalAll();
}

bool FakeReceiver::WaitForRequests(size_t n, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (requests_.size() < n) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    cv_.WaitFor(&mu_, ToChrono(left));
  }
  return true;
}

bool FakeReceiver::WaitUntil(const std::function<bool(const std::vector<ReceivedRequest>&)>& done,
                             absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  MutexLock lock(&mu_);
  while (!done(requests_)) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    cv_.WaitFor(&mu_, ToChrono(left));
  }
  return true;
}

std::vector<ReceivedRequest> FakeReceiver::Requests() const {
  MutexLock lock(&mu_);
  return requests_;
}

size_t FakeReceiver::RequestCount() const {
  MutexLock lock(&mu_);
  return requests_.size();
}

absl::Status FakeReceiver::Listen() {
  if (listen_fd_ >= 0) return absl::FailedPreconditionError("already listening");
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port_));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 128) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on 127.0.0.1:", port_, ": ", std::strerror(error)));
  }
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  if (pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  listen_fd_ = fd;
  uint64_t generation;
  {
    MutexLock lock(&mu_);
    generation = generation_;
  }
  accept_thread_ = std::thread(
      [this, fd, generation, wake = wake_pipe_[0]] { AcceptLoop(fd, wake, generation); });
  return absl::OkStatus();
}

void FakeReceiver::StopListening() {
  if (listen_fd_ < 0) return;
  {
    MutexLock lock(&mu_);
    ++generation_;
    for (int fd : connection_fds_) shutdown(fd, SHUT_RDWR);
    cv_.SignalAll();
  }
  const char byte = 'x';
  while (write(wake_pipe_[1], &byte, 1) < 0 && errno == EINTR) {
  }
  accept_thread_.join();
  close(listen_fd_);
  close(wake_pipe_[0]);
  close(wake_pipe_[1]);
  listen_fd_ = wake_pipe_[0] = wake_pipe_[1] = -1;
  std::vector<std::thread> threads;
  {
    MutexLock lock(&mu_);
    threads.swap(connection_threads_);
  }
  for (std::thread& thread : threads) thread.join();
}

void FakeReceiver::AcceptLoop(int listen_fd, int wake_fd, uint64_t generation) {
  while (true) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    MutexLock lock(&mu_);
    if (!Live(generation)) {
      close(fd);
      return;
    }
    const uint64_t id = next_connection_id_++;
    connection_fds_.insert(fd);
    connection_threads_.emplace_back([this, fd, id, generation] { Serve(fd, id, generation); });
  }
}

void FakeReceiver::Serve(int fd, uint64_t connection_id, uint64_t generation) {
  std::string buffer;
  bool reset = false;
  while (true) {
    size_t header_end;
    while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (buffer.size() > kMaxHeaderBytes || !ReadMore(fd, &buffer)) goto done;
    }
    ReceivedRequest request;
    request.connection_id = connection_id;
    std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(buffer).substr(0, header_end), "\r\n");
    std::vector<absl::string_view> request_line = absl::StrSplit(lines[0], ' ');
    if (request_line.size() != 3) goto done;
    request.method = std::string(request_line[0]);
    request.target = std::string(request_line[1]);
    const bool http10 = request_line[2] == "HTTP/1.0";
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == absl::string_view::npos) goto done;
      request.headers.emplace_back(
          std::string(lines[i].substr(0, colon)),
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
    }
    size_t length = 0;
    const std::optional<std::string> content_length = request.Header("Content-Length");
    if (content_length.has_value() &&
        (!absl::SimpleAtoi(*content_length, &length) || length > kMaxBodyBytes)) {
      WriteAll(fd, ResponseBytes(FakeResponse::WithStatus(413), true));
      goto done;
    }
    if (!content_length.has_value() && request.Header("Transfer-Encoding").has_value()) {
      WriteAll(fd, ResponseBytes(FakeResponse::WithStatus(411), true));
      goto done;
    }
    const size_t body_start = header_end + 4;
    while (buffer.size() < body_start + length) {
      if (!ReadMore(fd, &buffer)) goto done;
    }
    request.body = buffer.substr(body_start, length);
    buffer.erase(0, body_start + length);

    if (request.Header("Content-Encoding") != std::optional<std::string>("snappy")) {
      request.decode_status = absl::InvalidArgumentError("Content-Encoding is not snappy");
    } else if (absl::StatusOr<std::string> raw = SnappyUncompress(request.body); !raw.ok()) {
      request.decode_status = raw.status();
    } else if (!request.write_request.ParseFromString(*raw)) {
      request.decode_status = absl::InvalidArgumentError("body is not a prometheus.WriteRequest");
    }
    const std::optional<std::string> connection = request.Header("Connection");
    const bool close_after =
        http10 || (connection.has_value() && absl::EqualsIgnoreCase(*connection, "close"));

    FakeResponse answer;
    {
      MutexLock lock(&mu_);
      if (!Live(generation)) goto done;
      if (script_.empty()) {
        answer = default_response_;
      } else {
        answer = std::move(script_.front());
        script_.pop_front();
      }
      if (answer.echo_headers) {
        for (const auto& [name, value] : request.headers) {
          absl::StrAppend(&answer.body, "\n", name, ": ", value);
        }
      }
      request.answer = answer;
      request.received_at = clock_();
      requests_.push_back(std::move(request));
      cv_.SignalAll();
      if (answer.delay > absl::ZeroDuration()) {
        const absl::Time until = absl::Now() + answer.delay;
        while (Live(generation) && absl::Now() < until) {
          cv_.WaitFor(&mu_, ToChrono(until - absl::Now()));
        }
      }
      if (answer.stall) {
        const uint64_t releases = stall_releases_;
        const absl::Time until = absl::Now() + kMaxStall;
        while (Live(generation) && stall_releases_ == releases && absl::Now() < until) {
          cv_.WaitFor(&mu_, ToChrono(until - absl::Now()));
        }
      }
      if (!Live(generation)) goto done;
    }
    if (answer.reset) {
      reset = true;
      goto done;
    }
    if (!WriteAll(fd, ResponseBytes(answer, close_after)) || close_after) goto done;
  }
done : {
  MutexLock lock(&mu_);
  connection_fds_.erase(fd);
}
  if (reset) {
    const linger abort_on_close = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  }
  close(fd);
}

}  // namespace rwexport
