// Throwaway PKI for TLS tests, made with the openssl command line in a directory of the
// test's: a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a
// second, unrelated CA. Thread-compatible.
#ifndef RWEXPORT_TESTS_TESTING_CERTS_H_
#define RWEXPORT_TESTS_TESTING_CERTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace rwexport {

struct TestCerts {
  std::string dir;
  std::string ca_cert;      // signs server and client
  std::string server_cert;  // SAN IP:127.0.0.1, DNS:localhost
  std::string server_key;
  std::string client_cert;  // CN=rwexport-test-client
  std::string client_key;
  std::string other_ca_cert;  // trusts nothing here
};

// Creates the files under `dir` (which must exist).
absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir);

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_CERTS_H_
