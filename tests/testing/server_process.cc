#include "tests/testing/server_process.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace rwexport {

std::string TestTempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

std::unique_ptr<Subprocess> StartServerProcess(const std::vector<std::string>& flags,
                                               const std::string& port_file,
                                               std::string* server_flag, absl::Duration wait) {
  std::remove(port_file.c_str());
  std::vector<std::string> args = {"--listen=127.0.0.1:0", "--port_file=" + port_file};
  args.insert(args.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> server =
      Subprocess::Start(RunfilePath("server/rwexport_server"), args);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  if (!(*server)->WaitForStderr("rwexport_server listening", wait)) {
    ADD_FAILURE() << "the server did not start: " << (*server)->stderr_text();
    return nullptr;
  }
  std::string port;
  std::getline(std::ifstream(port_file), port);
  *server_flag = "--server=127.0.0.1:" + port;
  return *std::move(server);
}

void SigkillServer(std::unique_ptr<Subprocess>& server, absl::Duration wait) {
  server->Kill(SIGKILL);
  absl::StatusOr<int> code = server->Wait(wait);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 128 + SIGKILL);
  server.reset();
}

ProcessResult RunCli(std::vector<std::string> args, const std::string& server_flag) {
  args.push_back(server_flag);
  absl::StatusOr<ProcessResult> r = RunProcess(RunfilePath("client/rwexport"), args);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ProcessResult{};
}

}  // namespace rwexport
