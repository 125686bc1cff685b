#include "server/security.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/common/file.h"

namespace rwexport {
namespace {

absl::StatusOr<std::string> ReadPem(absl::string_view field, const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFileToString(path);
  if (!pem.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", pem.status().message()));
  }
  if (pem->find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", path, "\" is not PEM"));
  }
  return pem;
}

std::string Sha256(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ListenerSecurity& security) {
  if (security.cert_file.empty() != security.key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  if (security.cert_file.empty()) {
    if (!security.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca_file needs TLS: set --tls_cert_file and --tls_key_file");
    }
    return grpc::InsecureServerCredentials();
  }
  absl::StatusOr<std::string> cert = ReadPem("--tls_cert_file", security.cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem("--tls_key_file", security.key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!security.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("--tls_client_ca_file", security.client_ca_file);
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read token file \"", path, "\""));
  }
  std::string token(absl::StripAsciiWhitespace(*bytes));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token file \"", path, "\" is empty"));
  }
  return token;
}

TokenAuthenticator::TokenAuthenticator(std::string token) {
  if (!token.empty()) token_digest_ = Sha256(token);
}

grpc::Status TokenAuthenticator::Check(const grpc::ServerContextBase& context) const {
  if (!enabled()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing \"authorization: Bearer <token>\" metadata");
  }
  const absl::string_view value(it->second.data(), it->second.size());
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWithIgnoreCase(value, kBearer)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "authorization metadata must be \"Bearer <token>\"");
  }
  // Comparing digests keeps the time independent of the sent token's length and content.
  const std::string digest = Sha256(value.substr(kBearer.size()));
  if (CRYPTO_memcmp(digest.data(), token_digest_.data(), token_digest_.size()) != 0) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
  }
  return grpc::Status::OK;
}

bool TokenAuthenticator::Matches(absl::string_view token) const {
  if (!enabled()) return true;
  const std::string digest = Sha256(token);
  return CRYPTO_memcmp(digest.data(), token_digest_.data(), token_digest_.size()) == 0;
}

}  // namespace rwexport
