// rwexport: the command-line client. Usage, help and dispatch; the commands are in
// lib/client/commands_*.cc (lib/client/cli.h), their flags in lib/client/cli_flags.cc, except
// bench (client/bench_command.cc).
//
//   rwexport start  --config=FILE --test_run_id=ID        start an export, print its id
//   rwexport stop   EXPORT_ID                             stop it, print what was delivered
//   rwexport replay FILE (--export_id=ID | --config=FILE --test_run_id=ID)
//   rwexport demo   --remote_write_url=URL [--prometheus_url=URL]
//   rwexport status EXPORT_ID / rwexport ls             what is running
//   rwexport bench                                      measure the server on this machine
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "client/bench_command.h"
#include "lib/client/cli.h"
#include "lib/common/build_info.h"
#include "lib/common/flags_env.h"

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
    "  replay  FILE|- [--export_id=ID | --config=FILE --test_run_id=ID] [--follow]\n"
    "                                            Stream a k6 JSON or CSV result file, or\n"
    "                                            one k6 is writing now.\n"
    "  demo    --remote_write_url=URL [--prometheus_url=URL]\n"
    "                                            Run a synthetic load test into an export.\n"
    "  status  EXPORT_ID [--json]                Configuration and live figures of an export.\n"
    "  ls      [--json]                          List running exports.\n"
    "  bench   [--streams=4] [--duration=10s]    Measure a server on this machine (loopback).\n"
    "\n"
    "Every command takes --server=HOST:PORT (default 127.0.0.1:50051), and for secured\n"
    "servers --tls_ca_file, --tls_cert_file/--tls_key_file and --auth_token_file.\n"
    "`rwexport COMMAND --help` describes one command.\n"
    "\n"
    "Exit codes: 0 done; 1 error; 2 usage; 3 points dropped (replay, stop; --allow_drops);\n"
    "4 samples rejected or input lines malformed (replay, stop; --allow_rejects);\n"
    "5 a broken stream not resumed within --resume_timeout (replay, bench);\n"
    "130/143 stopped by SIGINT/SIGTERM (replay, demo: their export stopped first).\n";

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
     "  --test_run_id=ID     the test run's id\n"
     "  --json               print {exportId, testRunId, targets} instead: per target the\n"
     "                       configuration in force (defaults applied, e.g. timeoutMs 10000)\n"
     "                       and the metric entries exported and skipped\n"},
    {"stop",
     "rwexport stop EXPORT_ID [--delivery_timeout=30s] [--server=HOST:PORT]\n"
     "\n"
     "Stops an export: flushes its last windows, waits for delivery, prints per-target\n"
     "figures (points sent, requests, retries, failures, drops).\n"
     "\n"
     "  --delivery_timeout=30s  how long the server waits for delivery\n"
     "  --json                  print the figures as one JSON document (counts as numbers)\n"
     "  --allow_drops           exit 0 even if points were dropped (else exit 3)\n"
     "  --allow_rejects         exit 0 even if samples were rejected (else exit 4)\n"},
    {"replay",
     "rwexport replay FILE|- [--export_id=ID | --config=FILE --test_run_id=ID] [flags]\n"
     "\n"
     "Streams a k6 result file (`k6 run --out json=FILE` or `--out csv=FILE`) into an export.\n"
     "With --export_id it feeds a running export; with --config it starts an export, replays\n"
     "the file, stops the export and prints its figures. A file is read and checked before\n"
     "any export starts. Malformed lines are reported with their line number and skipped.\n"
     "\n"
     "Live input: `-` (standard input on a pipe) or --follow (a file k6 is writing, read\n"
     "like tail -f). Samples are sent whenever the input pauses, and at least every\n"
     "--flush_interval. Live input cannot be read twice, so its timestamps cannot be\n"
     "shifted: they are kept as they are (right for a test running now) and --pace does\n"
     "not apply.\n"
     "\n"
     "  --pace=fast|recorded   files: fast (default): as fast as possible, timestamps\n"
     "                         shifted so the run ends now; recorded: at the recorded pace,\n"
     "                         starting now\n"
     "  --keep_timestamps      keep the file's own timestamps\n"
     "  --follow               at the end of the file, wait for more; ends on Ctrl-C,\n"
     "                         SIGTERM, or after --idle_timeout without new lines\n"
     "  --idle_timeout=30s     --follow: end after this long without new lines (0: never)\n"
     "  --flush_interval=1s    send what was read at least this often (and whenever the\n"
     "                         input pauses)\n"
     "  --batch_size=N         samples per message (default 1000)\n"
     "  --compact              compact stream mode: each series declared once, samples sent\n"
     "                         as (series reference, time, value)\n"
     "  --stream_id=ID         the stream's id on the server (default: random); batches are\n"
     "                         acknowledged, and after a broken call (server restart,\n"
     "                         connection lost) the stream resumes from the last ack, one\n"
     "                         line on stderr per resume\n"
     "  --resume_timeout=60s   give up resuming after this long without progress (exit 5)\n"
     "  --json                 print one JSON document: input, stream and stop figures\n"
     "  --allow_drops          exit 0 even if points were dropped (else exit 3)\n"
     "  --allow_rejects        exit 0 even if samples were rejected or lines malformed\n"
     "                         (else exit 4)\n"
     "\n"
     "SIGINT or SIGTERM stops reading; what was read is sent, an export the command\n"
     "started is stopped (flushed, delivered, figures printed), and it exits 130 or 143.\n"
     "A second Ctrl-C exits at once.\n"},
    {"demo",
     "rwexport demo --remote_write_url=URL [--prometheus_url=URL] [flags]\n"
     "\n"
     "Starts an export to URL, streams a synthetic load test into it in real time, stops it,\n"
     "and, with --prometheus_url, reads the exported series back from Prometheus and prints\n"
     "them next to the values the load test produced. SIGINT or SIGTERM ends the load test\n"
     "early: the export is stopped and its figures printed, then it exits 130 or 143.\n"
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
     "  --streams=4            concurrent streams, each on its own connection\n"
     "  --rpc=acked            acked: IngestSamples (acknowledged batches, resumed after a\n"
     "                         broken call, --resume_timeout=60s); stream: StreamSamples\n"
     "  --duration=10s         how long each phase streams\n"
     "  --mode=both            self (self-describing samples), compact (series references)\n"
     "  --null_sink=true       also measure the null sink (false: rwexport only)\n"
     "  --server_workers=0     aggregation threads of the server; 0: one per core\n"
     "  --endpoints=200        distinct URLs in the load (about 27 series each)\n"
     "  --batch_size=1000      samples per message\n"
     "  --resample_rate=1      the export's window, seconds\n"
     "  --event_span=0         event time replayed per phase (>= --duration); 0: wall clock\n"
     "  --hold=0               keep each phase's streams open and idle this long after the\n"
     "                         load: the heap with them open vs once they ended\n"
     "  --warmup_export=true   one small export before each phase's (the RSS before it)\n"
     "  --rss_csv=FILE         also write every memory reading of the server to FILE\n"
     "  --json                 print the report as one JSON document (per phase figures)\n"},
};

}  // namespace
}  // namespace rwexport

int main(int argc, char** argv) {
  using rwexport::kCommands;
  absl::SetProgramUsageMessage(rwexport::kUsage);
  if (argc < 2) {
    std::fputs(rwexport::kUsage, stderr);
    return rwexport::kExitUsage;
  }
  // `rwexport --help`: the commands and every flag with its default (lib/common/flags_env.h).
  const rwexport::FlagsSetup flags_setup{
      "rwexport", rwexport::kUsage, {"client/", "lib/client/"}, ""};
  if (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::printf("%s\n%s", rwexport::kUsage, rwexport::FlagsHelp(flags_setup).c_str());
    return rwexport::kExitOk;
  }
  if (std::string(argv[1]) == "--version") {
    std::printf("%s\n", rwexport::VersionLine("rwexport").c_str());
    return rwexport::kExitOk;
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
    return rwexport::kExitUsage;
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
