#include "tests/testing/certs.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace rwexport {
namespace {

absl::Status Run(const std::string& command, const std::string& log) {
  const std::string line = absl::StrCat(command, " >>", log, " 2>&1");
  if (std::system(line.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("failed: ", command, " (see ", log, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TestCerts> MakeTestCerts(const std::string& dir) {
  TestCerts c;
  c.dir = dir;
  c.ca_cert = dir + "/ca.pem";
  c.server_cert = dir + "/server.pem";
  c.server_key = dir + "/server.key";
  c.client_cert = dir + "/client.pem";
  c.client_key = dir + "/client.key";
  c.other_ca_cert = dir + "/other-ca.pem";
  const std::string log = dir + "/openssl.log";
  std::ofstream(dir + "/server.ext")
      << "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
  std::ofstream(dir + "/client.ext") << "extendedKeyUsage=clientAuth\n";
  const std::string ossl = "openssl";
  for (const std::string& command : {
           absl::StrCat(ossl,
                        " req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=rwexport-test-ca",
                        " -keyout ", dir, "/ca.key -out ", c.ca_cert),
           absl::StrCat(ossl, " req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca",
                        " -keyout ", dir, "/other-ca.key -out ", c.other_ca_cert),
           absl::StrCat(ossl, " req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout ",
                        c.server_key, " -out ", dir, "/server.csr"),
           absl::StrCat(ossl, " x509 -req -days 2 -in ", dir, "/server.csr -CA ", c.ca_cert,
                        " -CAkey ", dir, "/ca.key -CAcreateserial -extfile ", dir,
                        "/server.ext -out ", c.server_cert),
           absl::StrCat(ossl, " req -newkey rsa:2048 -nodes -subj /CN=rwexport-test-client",
                        " -keyout ", c.client_key, " -out ", dir, "/client.csr"),
           absl::StrCat(ossl, " x509 -req -days 2 -in ", dir, "/client.csr -CA ", c.ca_cert,
                        " -CAkey ", dir, "/ca.key -CAcreateserial -extfile ", dir,
                        "/client.ext -out ", c.client_cert),
       }) {
    absl::Status status = Run(command, log);
    if (!status.ok()) return status;
  }
  return c;
}

}  // namespace rwexport
