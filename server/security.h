// Security of the gRPC listener: TLS (optionally requiring client certificates) and bearer
// tokens for callers. Thread-safe.
#ifndef RWEXPORT_SERVER_SECURITY_H_
#define RWEXPORT_SERVER_SECURITY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace rwexport {

struct ListenerSecurity {
  // PEM certificate chain and key: TLS when both are set.
  std::string cert_file;
  std::string key_file;
  // PEM CA certificates: clients must present a certificate signed by one of them (mTLS).
  std::string client_ca_file;
};

// Insecure credentials when nothing is set; TLS otherwise. Errors name the flag-like field and
// the file that cannot be used.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ListenerSecurity& security);

// Reads a bearer token from a file (surrounding whitespace removed). Empty: an error.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Checks the "authorization: Bearer <token>" metadata of calls in constant time (the
// comparison's duration does not depend on where a wrong token differs, nor on its length).
class TokenAuthenticator {
 public:
  // An empty token accepts every call.
  explicit TokenAuthenticator(std::string token);
  bool enabled() const { return !token_digest_.empty(); }
  // OK, or UNAUTHENTICATED saying what is missing (never echoing what was sent).
  grpc::Status Check(const grpc::ServerContextBase& context) const;
  // Whether `token` is the token, compared in constant time as above (always true when
  // disabled). For listeners that take the token in other places (the InfluxDB endpoint).
  bool Matches(absl::string_view token) const;

 private:
  std::string token_digest_;  // SHA-256 of the token; empty when disabled
};

}  // namespace rwexport

#endif  // RWEXPORT_SERVER_SECURITY_H_
