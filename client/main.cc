// rwexport: the command-line client. Flags, wiring and printing; the work is in lib/client.
//
//   rwexport start  --config=FILE --test_run_id=ID        start an export, print its id
//   rwexport stop   EXPORT_ID                             stop it, print what was delivered
//   rwexport replay FILE (--export_id=ID | --config=FILE --test_run_id=ID)
//   rwexport demo   --remote_write_url=URL [--prometheus_url=URL]
//   rwexport status EXPORT_ID / rwexport ls             what is running
//   rwexport bench                                      measure the server on this machine
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/bench_command.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "lib/client/channel.h"
#include "lib/client/export_calls.h"
#include "lib/client/replay.h"
#include "lib/client/sample_stream.h"
#include "lib/client/synthetic.h"
#include "lib/common/build_info.h"
#include "lib/common/file.h"
#include "lib/common/flags_env.h"
#include "lib/config/k6_json.h"
#include "lib/config/k6_script.h"
#include "lib/prometheus/query_client.h"
#include "rwexport/v1/export.grpc.pb.h"

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
ABSL_FLAG(std::string, pace, "fast",
          "replay: `fast` (as fast as possible, timestamps shifted so the run ends now) or "
          "`recorded` (at the recorded pace, shifted so it starts now).");
ABSL_FLAG(bool, keep_timestamps, false, "replay: keep the file's own timestamps.");
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
ABSL_FLAG(bool, json, false, "status, ls: print JSON (proto3 JSON mapping) instead of text.");

namespace rwexport {
namespace {

constexpr char kUsage[] =
    "rwexport: command-line client of rwexport_server.\n"
    "\n"
    "Usage: rwexport COMMAND [flags] [args]\n"
    "\n"
    "Commands:\n"
    "  start   --config=FILE --test_run_id=ID    Start an export; prints its id.\n"
    "  stop    EXPORT_ID                         Stop an export; prints its figures.\n"
    "  replay  FILE [--export_id=ID | --config=FILE --test_run_id=ID]\n"
    "                                            Stream a k6 JSON or CSV result file.\n"
    "  demo    --remote_write_url=URL [--prometheus_url=URL]\n"
    "                                            Run a synthetic load test into an export.\n"
    "  status  EXPORT_ID [--json]                Configuration and live figures of an export.\n"
    "  ls      [--json]                          List running exports.\n"
    "  bench   [--streams=4] [--duration=10s]    Measure a server on this machine (loopback).\n"
    "\n"
    "Every command takes --server=HOST:PORT (default 127.0.0.1:50051), and for secured\n"
    "servers --tls_ca_file, --tls_cert_file/--tls_key_file and --auth_token_file.\n"
    "`rwexport COMMAND --help` describes one command.\n";

struct Command {
  const char* name;
  const char* help;
};

constexpr Command kCommands[] = {
    {"start",
     "rwexport start --config=FILE --test_run_id=ID [--server=HOST:PORT]\n"
     "\n"
     "Starts an export from a k6 APM configuration file and prints the export id on stdout.\n"
     "Metric entries the server skipped are listed on stderr.\n"
     "\n"
     "  --config=FILE        the `apm` array (or {\"apm\": [...]}, or k6 options)\n"
     "  --test_run_id=ID     the test run's id\n"},
    {"stop",
     "rwexport stop EXPORT_ID [--delivery_timeout=30s] [--server=HOST:PORT]\n"
     "\n"
     "Stops an export: flushes its last windows, waits for delivery, prints per-target\n"
     "figures (points sent, requests, retries, failures, drops).\n"},
    {"replay",
     "rwexport replay FILE [--export_id=ID | --config=FILE --test_run_id=ID] [flags]\n"
     "\n"
     "Streams a k6 result file (`k6 run --out json=FILE` or `--out csv=FILE`) into an export.\n"
     "With --export_id it feeds a running export; with --config it starts an export, replays\n"
     "the file, stops the export and prints its figures. Malformed lines are reported with\n"
     "their line number and skipped.\n"
     "\n"
     "  --pace=fast|recorded   fast: as fast as possible, timestamps shifted so the run ends\n"
     "                         now; recorded: at the recorded pace, starting now\n"
     "  --keep_timestamps      keep the file's own timestamps\n"
     "  --batch_size=N         samples per message (default 1000)\n"
     "  --compact              compact stream mode: each series declared once, samples sent\n"
     "                         as (series reference, time, value)\n"},
    {"demo",
     "rwexport demo --remote_write_url=URL [--prometheus_url=URL] [flags]\n"
     "\n"
     "Starts an export to URL, streams a synthetic load test into it in real time, stops it,\n"
     "and, with --prometheus_url, reads the exported series back from Prometheus and prints\n"
     "them next to the values the load test produced.\n"
     "\n"
     "  --duration=30s --vus=10 --rps=100 --resample_rate=1 --test_run_id=ID\n"},
    {"status",
     "rwexport status EXPORT_ID [--json] [--server=HOST:PORT]\n"
     "\n"
     "Shows one export: state, streams, samples accepted/rejected/late, and per target its\n"
     "configuration (credentials redacted) and live delivery figures.\n"},
    {"ls",
     "rwexport ls [--json] [--server=HOST:PORT]\n"
     "\n"
     "Lists running exports, oldest first: id, test run, state, age (e.g. 3m12s), streams,\n"
     "samples, series (exported / aggregation series; a trend is one exported series per\n"
     "statistic), and points sent and dropped over all targets.\n"},
    {"bench",
     "rwexport bench [--streams=4] [--duration=10s] [--mode=both|self|compact] [flags]\n"
     "\n"
     "Measures rwexport on this machine, on loopback only (--server is not used). Each phase\n"
     "starts a server in a child process (its CPU and memory are measured apart from the\n"
     "load), starts an export whose target is a remote-write receiver in this process that\n"
     "answers 204 and counts, streams realistic k6 samples (HTTP metrics tagged by endpoint,\n"
     "a few thousand series) into it from --streams concurrent streams for --duration, and\n"
     "stops the export. The same load runs against a null sink, a gRPC server that only\n"
     "parses each batch and drops it, and in both stream modes. Prints per phase: samples/s\n"
     "accepted, server CPU seconds per million samples, server peak RSS, series, points\n"
     "delivered; then the ratios rwexport / null sink and compact / self; then the server's\n"
     "RSS over the load (read every second) at 10/25/50/75/100 %, its maximum, and its growth\n"
     "from the end of the first quarter to the end (the warm-up, when series appear, excluded).\n"
     "With --event_span, a long test is replayed compressed: sample timestamps advance at\n"
     "span/duration times wall speed and end, never ahead of the clock, when the phase ends\n"
     "(e.g. --event_span=1h --duration=3m --null_sink=false: is memory flat over an hour?).\n"
     "\n"
     "  --streams=4            concurrent StreamSamples calls, each on its own connection\n"
     "  --duration=10s         how long each phase streams\n"
     "  --mode=both            self (self-describing samples), compact (series references)\n"
     "  --null_sink=true       also measure the null sink (false: rwexport only)\n"
     "  --server_workers=0     aggregation threads of the server; 0: one per core\n"
     "  --endpoints=200        distinct URLs in the load (about 27 series each)\n"
     "  --batch_size=1000      samples per message\n"
     "  --resample_rate=1      the export's window, seconds\n"
     "  --event_span=0         event time replayed per phase (>= --duration); 0: wall clock\n"
     "  --rss_csv=FILE         also write every memory reading of the server to FILE\n"},
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "rwexport: %s\n", message.c_str());
  return 1;
}

int Fail(const absl::Status& status) {
  return Fail(absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message()));
}

// A stub for --server with the connection flags; exits with a one-line error if they are
// unusable.
std::unique_ptr<v1::ExportService::Stub> Connect() {
  ChannelOptions options;
  options.address = absl::GetFlag(FLAGS_server);
  options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  if (!absl::GetFlag(FLAGS_auth_token_file).empty()) {
    absl::StatusOr<std::string> token = ReadFileToString(absl::GetFlag(FLAGS_auth_token_file));
    if (!token.ok()) {
      std::exit(Fail(absl::StrCat("--auth_token_file: ", token.status().message())));
    }
    options.bearer_token = std::string(absl::StripAsciiWhitespace(*token));
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  if (!channel.ok()) std::exit(Fail(std::string(channel.status().message())));
  return v1::ExportService::NewStub(*channel);
}

void PrintStartResponse(const v1::StartExportResponse& response) {
  for (int t = 0; t < response.targets_size(); ++t) {
    const v1::TargetReport& target = response.targets(t);
    std::fprintf(stderr, "target %d: %s: exporting %s\n", t, target.remote_write_url().c_str(),
                 absl::StrJoin(target.exported_metrics(), ", ").c_str());
    for (const v1::SkippedMetric& s : target.skipped_metrics()) {
      std::fprintf(stderr, "target %d: skipped metric %s: %s\n", t, s.entry().c_str(),
                   s.reason().c_str());
    }
    for (const v1::ReplacedDefault& r : target.replaced_defaults()) {
      std::fprintf(stderr, "target %d: default metric %s replaced by entry %s\n", t,
                   r.metric().c_str(), r.entry().c_str());
    }
  }
}

// "series 38 exported (10 aggregated)": what the target holds, and what the series limits
// count (a trend's aggregation series is one exported series per statistic).
std::string SeriesText(const v1::TargetFigures& t) {
  return absl::StrCat("series ", t.exported_series(), " exported (", t.series(), " aggregated)");
}

void PrintStopResponse(const v1::StopExportResponse& r) {
  std::printf("samples accepted: %llu, rejected: %llu\n",
              static_cast<unsigned long long>(r.samples_accepted()),
              static_cast<unsigned long long>(r.samples_rejected()));
  for (const v1::Rejection& rej : r.rejections()) {
    std::printf("  rejected %s: %llu (e.g. %s)\n", rej.reason().c_str(),
                static_cast<unsigned long long>(rej.count()), rej.example().c_str());
  }
  for (const v1::TargetFigures& t : r.targets()) {
    std::printf(
        "target %s: %s, points sent %llu, requests %llu, retries %llu, failures %llu, "
        "points dropped %llu, bytes sent %llu\n",
        t.remote_write_url().c_str(), SeriesText(t).c_str(),
        static_cast<unsigned long long>(t.points_sent()),
        static_cast<unsigned long long>(t.requests()), static_cast<unsigned long long>(t.retries()),
        static_cast<unsigned long long>(t.failures()),
        static_cast<unsigned long long>(t.points_dropped()),
        static_cast<unsigned long long>(t.bytes_sent()));
    if (t.duplicate_on_retry() > 0) {
      std::printf("  duplicate on retry: %llu (of the points sent: already stored)\n",
                  static_cast<unsigned long long>(t.duplicate_on_retry()));
    }
    for (const auto& [reason, n] : t.dropped_by_reason()) {
      std::printf("  dropped %s: %llu\n", reason.c_str(), static_cast<unsigned long long>(n));
    }
    if (!t.last_error().empty()) std::printf("  last error: %s\n", t.last_error().c_str());
  }
}

absl::StatusOr<v1::StartExportResponse> StartExport(v1::ExportService::Stub* stub,
                                                    const v1::StartExportRequest& request) {
  return StartExportRpc(*stub, request);
}

absl::StatusOr<v1::StopExportResponse> StopExport(v1::ExportService::Stub* stub,
                                                  const std::string& export_id) {
  return StopExportRpc(*stub, export_id, absl::GetFlag(FLAGS_delivery_timeout));
}

// Starts an export from --config and --test_run_id.
absl::StatusOr<std::string> StartFromConfigFlags(v1::ExportService::Stub* stub) {
  const std::string config_path = absl::GetFlag(FLAGS_config);
  const std::string test_run_id = absl::GetFlag(FLAGS_test_run_id);
  if (config_path.empty()) return absl::InvalidArgumentError("--config: required");
  if (test_run_id.empty()) return absl::InvalidArgumentError("--test_run_id: required");
  absl::StatusOr<std::string> json = ReadFileToString(config_path);
  if (!json.ok()) return json.status();
  // A k6 script (.js) holds it in `export const options`; its __ENV.NAME come from ours.
  absl::StatusOr<v1::StartExportRequest> request =
      IsK6ScriptPath(config_path)
          ? ParseK6ScriptApm(*json, test_run_id,
                             [](absl::string_view name) -> std::optional<std::string> {
                               const char* value = std::getenv(std::string(name).c_str());
                               if (value == nullptr) return std::nullopt;
                               return std::string(value);
                             })
          : ParseK6ApmJson(*json, test_run_id);
  if (!request.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", request.status().message()));
  }
  absl::StatusOr<std::vector<v1::MetricDeclaration>> declared =
      ParseMetricTypes(absl::GetFlag(FLAGS_metric_types));
  if (!declared.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metric_types: ", declared.status().message()));
  }
  for (v1::MetricDeclaration& d : *declared) *request->add_metric_declarations() = std::move(d);
  absl::StatusOr<v1::StartExportResponse> response = StartExport(stub, *request);
  if (!response.ok()) return response.status();
  PrintStartResponse(*response);
  return response->export_id();
}

int RunStart(const std::vector<char*>& args) {
  if (args.size() != 0) return Fail("start takes no arguments (see rwexport start --help)");
  auto stub = Connect();
  absl::StatusOr<std::string> id = StartFromConfigFlags(stub.get());
  if (!id.ok()) return Fail(id.status());
  std::printf("%s\n", id->c_str());
  return 0;
}

int RunStop(const std::vector<char*>& args) {
  if (args.size() != 1) return Fail("stop takes one argument, the export id");
  auto stub = Connect();
  absl::StatusOr<v1::StopExportResponse> response = StopExport(stub.get(), args[0]);
  if (!response.ok()) return Fail(response.status());
  PrintStopResponse(*response);
  return 0;
}

int RunReplay(const std::vector<char*>& args) {
  if (args.size() != 1) return Fail("replay takes one argument, the k6 result file");
  ReplayOptions options;
  const std::string pace = absl::GetFlag(FLAGS_pace);
  if (pace == "fast") {
    options.pace = ReplayPace::kFast;
  } else if (pace == "recorded") {
    options.pace = ReplayPace::kRecorded;
  } else {
    return Fail(absl::StrCat("--pace: expected fast or recorded, got \"", pace, "\""));
  }
  if (absl::GetFlag(FLAGS_batch_size) < 1) return Fail("--batch_size: must be at least 1");
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.keep_timestamps = absl::GetFlag(FLAGS_keep_timestamps);
  options.compact = absl::GetFlag(FLAGS_compact);
  const std::string path = args[0];
  options.on_error = [&path](const ReadError& e) {
    std::fprintf(stderr, "rwexport: %s:%lld: %s (line skipped)\n", path.c_str(),
                 static_cast<long long>(e.line), e.message.c_str());
  };

  auto stub = Connect();
  std::string export_id = absl::GetFlag(FLAGS_export_id);
  const bool own_export = export_id.empty();
  if (own_export) {
    absl::StatusOr<std::string> id = StartFromConfigFlags(stub.get());
    if (!id.ok()) return Fail(id.status());
    export_id = *id;
    std::fprintf(stderr, "started export %s\n", export_id.c_str());
  } else if (!absl::GetFlag(FLAGS_config).empty()) {
    return Fail("--export_id and --config exclude each other");
  }
  absl::StatusOr<ReplayResult> result = ReplayK6File(stub.get(), export_id, path, options);
  if (!result.ok()) {
    if (own_export) StopExport(stub.get(), export_id).IgnoreError();
    return Fail(result.status());
  }
  std::printf(
      "replayed %s: %lld lines, %lld metrics, %lld samples, %lld malformed lines; "
      "server accepted %llu, rejected %llu\n",
      path.c_str(), static_cast<long long>(result->read.lines),
      static_cast<long long>(result->read.metrics), static_cast<long long>(result->read.samples),
      static_cast<long long>(result->read.errors),
      static_cast<unsigned long long>(result->response.accepted()),
      static_cast<unsigned long long>(result->response.rejected()));
  if (!own_export) return 0;
  absl::StatusOr<v1::StopExportResponse> stopped = StopExport(stub.get(), export_id);
  if (!stopped.ok()) return Fail(stopped.status());
  PrintStopResponse(*stopped);
  return 0;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}\n";
  out.push_back('\n');
  return out;
}

const char* StateName(v1::ExportStatus::State state) {
  switch (state) {
    case v1::ExportStatus::RUNNING:
      return "running";
    case v1::ExportStatus::STOPPING:
      return "stopping";
    default:
      return "unknown";
  }
}

// Whole seconds with units: "0s", "42s", "3m12s", "26h5m0s".
std::string Age(int64_t started_unix_ms) {
  const absl::Duration age =
      absl::Trunc(absl::Now() - absl::FromUnixMillis(started_unix_ms), absl::Seconds(1));
  if (age <= absl::ZeroDuration()) return "0s";  // FormatDuration writes a bare "0"
  return absl::FormatDuration(age);
}

void PrintStatus(const v1::ExportStatus& s) {
  std::printf("export %s\n", s.export_id().c_str());
  std::printf("  test run:  %s\n", s.test_run_id().c_str());
  std::printf("  state:     %s, up %s, %u streams\n", StateName(s.state()),
              Age(s.started_unix_ms()).c_str(), s.active_streams());
  std::printf("  samples:   %llu accepted (%llu late), %llu rejected\n",
              static_cast<unsigned long long>(s.samples_accepted()),
              static_cast<unsigned long long>(s.samples_late()),
              static_cast<unsigned long long>(s.samples_rejected()));
  for (const v1::Rejection& r : s.rejections()) {
    std::printf("    rejected %s: %llu (e.g. %s)\n", r.reason().c_str(),
                static_cast<unsigned long long>(r.count()), r.example().c_str());
  }
  for (int t = 0; t < s.targets_size(); ++t) {
    const v1::Target& target = s.targets(t);
    std::string auth = "none";
    if (!target.credentials().token().empty()) auth = "bearer token";
    if (!target.credentials().username().empty()) {
      auth = absl::StrCat("basic (user ", target.credentials().username(), ")");
    }
    std::printf("  target %d:  %s\n", t, target.remote_write_url().c_str());
    std::printf("    config:  resampleRate %us, auth %s, %d metric entries%s%s\n",
                target.has_resample_rate() ? target.resample_rate() : 3u, auth.c_str(),
                target.metrics_size(),
                target.include_default_metrics() || !target.has_include_default_metrics()
                    ? " + defaults"
                    : "",
                target.include_test_run_id() ? ", test_run_id label" : "");
    if (t < s.figures_size()) {
      const v1::TargetFigures& f = s.figures(t);
      std::printf(
          "    figures: %s, points sent %llu, requests %llu, retries %llu, "
          "failures %llu, dropped %llu\n",
          SeriesText(f).c_str(), static_cast<unsigned long long>(f.points_sent()),
          static_cast<unsigned long long>(f.requests()),
          static_cast<unsigned long long>(f.retries()),
          static_cast<unsigned long long>(f.failures()),
          static_cast<unsigned long long>(f.points_dropped()));
      if (f.duplicate_on_retry() > 0) {
        std::printf("    duplicate on retry: %llu (of the points sent: already stored)\n",
                    static_cast<unsigned long long>(f.duplicate_on_retry()));
      }
      if (!f.last_error().empty()) std::printf("    last error: %s\n", f.last_error().c_str());
    }
  }
}

int RunStatus(const std::vector<char*>& args) {
  if (args.size() != 1) return Fail("status takes one argument, the export id");
  auto stub = Connect();
  absl::StatusOr<v1::ExportStatus> found = GetExportRpc(*stub, args[0]);
  if (!found.ok()) return Fail(found.status());
  const v1::ExportStatus& status = *found;
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s", ToJson(status).c_str());
  } else {
    PrintStatus(status);
  }
  return 0;
}

int RunList(const std::vector<char*>& args) {
  if (!args.empty()) return Fail("ls takes no arguments");
  auto stub = Connect();
  absl::StatusOr<v1::ListExportsResponse> listed = ListExportsRpc(*stub);
  if (!listed.ok()) return Fail(listed.status());
  const v1::ListExportsResponse& response = *listed;
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s", ToJson(response).c_str());
    return 0;
  }
  // SERIES: exported series / aggregation series, summed over the targets.
  std::printf("%-32s  %-24s  %-8s  %-8s  %7s  %12s  %15s  %12s  %10s\n", "EXPORT", "TEST RUN",
              "STATE", "AGE", "STREAMS", "SAMPLES", "SERIES EXP/AGG", "POINTS SENT", "DROPPED");
  for (const v1::ExportStatus& s : response.exports()) {
    uint64_t sent = 0, dropped = 0, exported = 0, aggregated = 0;
    for (const v1::TargetFigures& f : s.figures()) {
      sent += f.points_sent();
      dropped += f.points_dropped();
      exported += f.exported_series();
      aggregated += f.series();
    }
    std::printf("%-32s  %-24s  %-8s  %-8s  %7u  %12llu  %15s  %12llu  %10llu\n",
                s.export_id().c_str(), s.test_run_id().c_str(), StateName(s.state()),
                Age(s.started_unix_ms()).c_str(), s.active_streams(),
                static_cast<unsigned long long>(s.samples_accepted()),
                absl::StrCat(exported, "/", aggregated).c_str(),
                static_cast<unsigned long long>(sent), static_cast<unsigned long long>(dropped));
  }
  return 0;
}

v1::StartExportRequest DemoRequest(const std::string& url) {
  v1::StartExportRequest request;
  request.set_test_run_id(absl::GetFlag(FLAGS_test_run_id).empty()
                              ? absl::StrCat("demo-", absl::ToUnixSeconds(absl::Now()))
                              : absl::GetFlag(FLAGS_test_run_id));
  v1::Target* target = request.add_targets();
  target->set_provider("prometheus");
  target->set_remote_write_url(url);
  target->set_resample_rate(absl::GetFlag(FLAGS_resample_rate));
  target->set_include_test_run_id(true);
  v1::MetricEntry* by_endpoint = target->add_metrics();
  by_endpoint->set_source_metric("http_reqs");
  by_endpoint->set_target_metric("k6_http_reqs_by_endpoint");
  by_endpoint->add_keep_tags("name");
  by_endpoint->add_keep_tags("status");
  target->add_metrics()->set_source_metric("http_req_failed");
  target->add_metrics()->set_source_metric("checks");
  target->add_metrics()->set_source_metric("iteration_duration");
  target->add_metrics()->set_source_metric("checkout_step_duration");
  v1::MetricEntry* slow = target->add_metrics();
  slow->set_source_metric("http_req_duration{method=\"POST\"}");
  slow->set_target_metric("k6_http_post_duration");
  return request;
}

int RunDemo(const std::vector<char*>& args) {
  if (!args.empty()) return Fail("demo takes no arguments (see rwexport demo --help)");
  const std::string url = absl::GetFlag(FLAGS_remote_write_url);
  if (url.empty()) return Fail("--remote_write_url: required");
  auto stub = Connect();
  const v1::StartExportRequest request = DemoRequest(url);
  absl::StatusOr<v1::StartExportResponse> started = StartExport(stub.get(), request);
  if (!started.ok()) return Fail(started.status());
  PrintStartResponse(*started);
  const std::string& id = started->export_id();
  std::printf("export %s started for test run %s\n", id.c_str(), request.test_run_id().c_str());

  SyntheticOptions options;
  options.duration = absl::GetFlag(FLAGS_duration) == absl::ZeroDuration()
                         ? absl::Seconds(30)
                         : absl::GetFlag(FLAGS_duration);
  options.vus = absl::GetFlag(FLAGS_vus);
  options.requests_per_second = absl::GetFlag(FLAGS_rps);
  options.on_progress = [&](int seconds) {
    if (seconds % 5 == 0) std::printf("  load test running: %ds\n", seconds), std::fflush(stdout);
  };
  std::printf("streaming a synthetic load test for %s (%d VUs, %.0f requests/s)\n",
              absl::FormatDuration(options.duration).c_str(), options.vus,
              options.requests_per_second);
  std::fflush(stdout);
  absl::StatusOr<SyntheticTotals> totals = RunSyntheticLoad(stub.get(), id, options);
  if (!totals.ok()) {
    StopExport(stub.get(), id).IgnoreError();
    return Fail(totals.status());
  }
  absl::StatusOr<v1::StopExportResponse> stopped = StopExport(stub.get(), id);
  if (!stopped.ok()) return Fail(stopped.status());
  std::printf("load test done: %llu samples, %llu HTTP requests (%llu failed), %llu iterations\n",
              static_cast<unsigned long long>(totals->samples),
              static_cast<unsigned long long>(totals->http_reqs),
              static_cast<unsigned long long>(totals->http_reqs_failed),
              static_cast<unsigned long long>(totals->iterations));
  PrintStopResponse(*stopped);

  const std::string prometheus = absl::GetFlag(FLAGS_prometheus_url);
  if (prometheus.empty()) return 0;
  QueryClient client(prometheus);
  const std::string run = absl::StrCat("{test_run_id=\"", request.test_run_id(), "\"}");
  struct Check {
    std::string metric;  // shown; the query adds the test run's selector
    std::string expected;
    std::string range_function;  // e.g. "max_over_time": over the whole run
  };
  const std::vector<Check> checks = {
      {"k6_http_reqs_total", absl::StrCat(totals->http_reqs), ""},
      {"k6_iterations_total", absl::StrCat(totals->iterations), ""},
      {"k6_data_sent_total", absl::StrFormat("%.0f", totals->data_sent), ""},
      {"k6_data_received_total", absl::StrFormat("%.0f", totals->data_received), ""},
      {"k6_vus", absl::StrCat(options.vus), ""},
      {"k6_http_req_failed_rate", "fraction failed, last window", ""},
      {"k6_checks_rate", "fraction passed, last window", ""},
      {"k6_http_req_duration_p95", "seconds, last window", ""},
      {"k6_http_req_duration_max", absl::StrFormat("%.6f", totals->max_duration_ms / 1000),
       "max_over_time"},
      {"k6_http_post_duration_med", "seconds, POST requests, last window", ""},
      {"k6_http_reqs_by_endpoint_total", "per endpoint and status", ""},
  };
  std::printf("\nwhat landed in Prometheus (%s), test_run_id=%s:\n", prometheus.c_str(),
              request.test_run_id().c_str());
  std::printf("  %-84s %14s   %s\n", "series", "value", "expected");
  // A point carries its window's end time, so the last one may lie up to a window ahead:
  // evaluate a minute ahead to read the newest point of every series.
  const absl::Time at = absl::Now() + absl::Minutes(1);
  int failures = 0;
  for (const Check& check : checks) {
    const std::string query =
        check.range_function.empty()
            ? check.metric + run
            : absl::StrCat(check.range_function, "(", check.metric, run, "[1h])");
    absl::StatusOr<std::vector<InstantSample>> result = client.Query(query, at);
    if (!result.ok()) {
      std::printf("  %s: query failed: %s\n", query.c_str(),
                  std::string(result.status().message()).c_str());
      ++failures;
      continue;
    }
    if (result->empty()) {
      std::printf("  %s: no data\n", query.c_str());
      ++failures;
    }
    for (const InstantSample& s : *result) {
      std::vector<std::string> labels;
      for (const auto& [k, v] : s.labels) {
        if (k != "__name__" && k != "test_run_id")
          labels.push_back(absl::StrCat(k, "=\"", v, "\""));
      }
      std::string shown = check.range_function.empty()
                              ? check.metric
                              : absl::StrCat(check.range_function, "(", check.metric, ")");
      if (!labels.empty()) absl::StrAppend(&shown, "{", absl::StrJoin(labels, ","), "}");
      std::printf("  %-84s %14.10g   %s\n", shown.c_str(), s.value, check.expected.c_str());
    }
  }
  return failures == 0 ? 0 : Fail(absl::StrCat(failures, " queries found no data"));
}

}  // namespace
}  // namespace rwexport

int main(int argc, char** argv) {
  using rwexport::kCommands;
  absl::SetProgramUsageMessage(rwexport::kUsage);
  if (argc < 2) {
    std::fputs(rwexport::kUsage, stderr);
    return 2;
  }
  // `rwexport --help`: the commands and every flag with its default (lib/common/flags_env.h).
  const rwexport::FlagsSetup flags_setup{"rwexport", rwexport::kUsage, {"client/"}, ""};
  if (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::printf("%s\n%s", rwexport::kUsage, rwexport::FlagsHelp(flags_setup).c_str());
    return 0;
  }
  if (std::string(argv[1]) == "--version") {
    std::printf("%s\n", rwexport::VersionLine("rwexport").c_str());
    return 0;
  }
  const std::string command = argv[1];
  const rwexport::Command* found = nullptr;
  for (const auto& c : kCommands) {
    if (command == c.name) found = &c;
  }
  if (found == nullptr) {
    std::fprintf(stderr,
                 "rwexport: unknown command \"%s\" (commands: start, stop, replay, demo, status, "
                 "ls, bench)\n",
                 command.c_str());
    return 2;
  }
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "--helpfull") {
      std::fputs(found->help, stdout);
      return 0;
    }
  }
  // absl parses flags anywhere on the line; argv[1] (the command) is skipped.
  std::vector<char*> rest = {argv[0]};
  for (int i = 2; i < argc; ++i) rest.push_back(argv[i]);
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(rest.size()), rest.data());
  std::vector<char*> args(positional.begin() + 1, positional.end());
  if (command == "start") return rwexport::RunStart(args);
  if (command == "stop") return rwexport::RunStop(args);
  if (command == "replay") return rwexport::RunReplay(args);
  if (command == "status") return rwexport::RunStatus(args);
  if (command == "ls") return rwexport::RunList(args);
  if (command == "bench") return rwexport::RunBenchCommand(args);
  return rwexport::RunDemo(args);
}
