// Why a TCP address cannot be listened on, for servers whose own listener reports a failure
// without its cause (gRPC's ServerBuilder, civetweb). Thread-safe.
#ifndef RWEXPORT_LIB_COMMON_LISTEN_CHECK_H_
#define RWEXPORT_LIB_COMMON_LISTEN_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rwexport {

// Binds and listens on `host_port` ("127.0.0.1:50051", "[::1]:0", "localhost:9464") the way a
// server does (SO_REUSEADDR, no SO_REUSEPORT), then closes the socket. OK if that works;
// otherwise UnavailableError naming the cause in the system's words, e.g.
// "127.0.0.1:50051: address already in use", or InvalidArgumentError for an address that does
// not parse or resolve.
absl::Status CheckCanListen(absl::string_view host_port);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_LISTEN_CHECK_H_
