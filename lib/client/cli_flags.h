// The flags of the rwexport CLI, shared by its commands (lib/client/commands_*.cc) and
// client/main.cc. Only the CLI binary links this library.
#ifndef RWEXPORT_LIB_CLIENT_CLI_FLAGS_H_
#define RWEXPORT_LIB_CLIENT_CLI_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/time/time.h"

ABSL_DECLARE_FLAG(std::string, server);
ABSL_DECLARE_FLAG(std::string, tls_ca_file);
ABSL_DECLARE_FLAG(std::string, tls_cert_file);
ABSL_DECLARE_FLAG(std::string, tls_key_file);
ABSL_DECLARE_FLAG(std::string, auth_token_file);
ABSL_DECLARE_FLAG(std::string, config);
ABSL_DECLARE_FLAG(std::string, metric_types);
ABSL_DECLARE_FLAG(std::string, test_run_id);
ABSL_DECLARE_FLAG(std::string, export_id);
ABSL_DECLARE_FLAG(std::string, pace);
ABSL_DECLARE_FLAG(bool, keep_timestamps);
ABSL_DECLARE_FLAG(bool, follow);
ABSL_DECLARE_FLAG(absl::Duration, idle_timeout);
ABSL_DECLARE_FLAG(absl::Duration, flush_interval);
ABSL_DECLARE_FLAG(bool, allow_drops);
ABSL_DECLARE_FLAG(bool, allow_rejects);
ABSL_DECLARE_FLAG(int, batch_size);
ABSL_DECLARE_FLAG(bool, compact);
ABSL_DECLARE_FLAG(std::string, stream_id);
ABSL_DECLARE_FLAG(absl::Duration, resume_timeout);
ABSL_DECLARE_FLAG(absl::Duration, delivery_timeout);
ABSL_DECLARE_FLAG(std::string, remote_write_url);
ABSL_DECLARE_FLAG(std::string, prometheus_url);
ABSL_DECLARE_FLAG(absl::Duration, duration);
ABSL_DECLARE_FLAG(int, vus);
ABSL_DECLARE_FLAG(double, rps);
ABSL_DECLARE_FLAG(int, resample_rate);
ABSL_DECLARE_FLAG(bool, json);

#endif  // RWEXPORT_LIB_CLIENT_CLI_FLAGS_H_
