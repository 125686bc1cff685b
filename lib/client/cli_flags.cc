#include "lib/client/cli_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Address of rwexport_server (host:port).");
ABSL_FLAG(std::string, tls_ca_file, "",
          "Connect with TLS, verifying the server with these PEM CA certificates.");
ABSL_FLAG(std::string, tls_cert_file, "", "PEM client certificate, for servers requiring mTLS.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM key of --tls_cert_file.");
ABSL_FLAG(std::string, auth_token_file, "",
          "Send the bearer token in this file with every call (servers with --auth_token_file).");
ABSL_FLAG(std::string, config, "",
          "k6 APM configuration file: the `apm` array of ext.loadimpact, {\"apm\": [...]}, "
          "a whole k6 options object, or a k6 script (.js/.mjs/.cjs/.ts) whose `export const "
          "options` holds ext.loadimpact.apm (__ENV.NAME taken from this process's "
          "environment).");
ABSL_FLAG(std::string, metric_types, "",
          "start, replay: declare metrics for the whole export, name:type[:kind],... (type "
          "counter|gauge|rate|trend, kind default|time|data), e.g. "
          "checkout_time:trend:time,orders:counter; added to the config file's metricTypes.");
ABSL_FLAG(std::string, test_run_id, "", "Test run id of the export (start, replay, demo).");
ABSL_FLAG(std::string, export_id, "", "replay: stream into this running export.");
ABSL_FLAG(std::string, pace, "",
          "replay, files only: `fast` (the default: as fast as possible, timestamps shifted so "
          "the run ends now) or `recorded` (at the recorded pace, shifted so it starts now).");
ABSL_FLAG(bool, keep_timestamps, false,
          "replay: keep the file's own timestamps (always so for live input: - and --follow).");
ABSL_FLAG(bool, follow, false,
          "replay: like tail -f, wait for more at the end of the file; ends on Ctrl-C, SIGTERM "
          "or after --idle_timeout without new lines.");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(30),
          "replay --follow: end after this long without new lines (0: never).");
ABSL_FLAG(absl::Duration, flush_interval, absl::Seconds(1),
          "replay: samples read are sent whenever the input pauses, and at least this often "
          "while it keeps coming.");
ABSL_FLAG(bool, allow_drops, false,
          "replay, stop: exit 0 even when a target dropped points (else exit 3).");
ABSL_FLAG(bool, allow_rejects, false,
          "replay, stop: exit 0 even when samples were rejected or input lines malformed "
          "(else exit 4).");
ABSL_FLAG(int, batch_size, 1000, "replay, bench: samples per StreamSamples message.");
ABSL_FLAG(bool, compact, false,
          "replay: compact stream mode (each series declared once, samples sent as references).");
ABSL_FLAG(absl::Duration, delivery_timeout, absl::Seconds(30),
          "stop, replay, demo: how long the server waits for delivery when stopping.");
ABSL_FLAG(std::string, remote_write_url, "", "demo: the remote-write endpoint to export to.");
ABSL_FLAG(std::string, prometheus_url, "",
          "demo: base URL of the Prometheus to read the results back from "
          "(e.g. http://127.0.0.1:9090).");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "demo: how long the load test runs (default 30s); bench: how long each phase streams "
          "(default 10s).");
ABSL_FLAG(int, vus, 10, "demo: virtual users.");
ABSL_FLAG(double, rps, 100, "demo: HTTP requests per second.");
ABSL_FLAG(int, resample_rate, 1,
          "demo, bench: resampleRate of the export's target, seconds (1..10).");
ABSL_FLAG(bool, json, false,
          "start, stop, replay, bench: print one JSON document with the figures (counts as "
          "numbers); status, ls: the proto3 JSON mapping.");
ABSL_FLAG(std::string, stream_id, "",
          "replay: the IngestSamples stream id (1..128 printable characters); default random.");
ABSL_FLAG(absl::Duration, resume_timeout, absl::Seconds(60),
          "replay, bench: give up resuming a broken stream after this long without progress "
          "(exit 5).");
