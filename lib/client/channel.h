// gRPC channels to rwexport_server: plaintext or TLS (optionally with a client certificate),
// with an optional bearer token added to every call. Thread-safe.
#ifndef RWEXPORT_LIB_CLIENT_CHANNEL_H_
#define RWEXPORT_LIB_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace rwexport {

struct ChannelOptions {
  std::string address;  // host:port
  // TLS when set: PEM CA certificates to verify the server with.
  std::string tls_ca_file;
  // Client certificate and key (PEM) for servers that require one.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Sent as "authorization: Bearer <token>" on every call.
  std::string bearer_token;
  int max_send_message_bytes = 64 << 20;
};

// Errors name the option and the file that cannot be used.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& options);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_CLIENT_CHANNEL_H_
