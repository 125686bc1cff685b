// A plain HTTP GET on loopback with libcurl, for tests of the self-metrics listener. A transfer
// that fails is a test failure (gtest EXPECT), answered with status 0.
#ifndef RWEXPORT_TESTS_TESTING_HTTP_GET_H_
#define RWEXPORT_TESTS_TESTING_HTTP_GET_H_

#include <string>

#include "absl/strings/string_view.h"

namespace rwexport {

struct HttpAnswer {
  long status = 0;  // NOLINT(runtime/int): libcurl's type
  std::string content_type;
  std::string body;
};

// GET http://127.0.0.1:<port><path>, within 10 s.
HttpAnswer HttpGet(int port, absl::string_view path);

}  // namespace rwexport

#endif  // RWEXPORT_TESTS_TESTING_HTTP_GET_H_
