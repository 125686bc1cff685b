// Acceptance (crash safety, end to end): `rwexport replay` streams two k6 runs through the
// acknowledged RPC (IngestSamples) into a real rwexport_server with --data_dir, which is
// SIGKILLed at seeded random moments (one of them while it recovers) and restarted on the same
// data dir and address each time; the clients resume by themselves. At the end a real
// Prometheus (2.42) holds exactly the runs' totals and exactly the points the independent
// reference aggregation computes (tests/testing/reference_aggregation), each once, and the
// export's figures add up.
//
// Environment: KILL9_SEED (default: random; always printed), KILL9_KILLS (default 5).
// scripts/kill9_soak.sh runs it with 20 kills.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/figures.h"
#include "tests/testing/prometheus.h"
#include "tests/testing/reference_aggregation.h"
#include "tests/testing/server_process.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/testdata.h"

namespace rwexport {
namespace {

using reference::RefConfig;
using reference::RefExport;
using reference::RefLabels;
using reference::RefRun;
using reference::RefStat;

constexpr int kResampleRateS = 2;
// Longer than any outage the kills cause (a restart and the client's backoff, a few seconds):
// no sample arrives after its window closed, so the windows are those of the reference while
// most of them still close, and are delivered, during the streaming.
constexpr char kLateness[] = "15s";
constexpr absl::Duration kStartWait = absl::Seconds(30);
// Both runs are replayed at their recorded pace and span about 61 s: the kills fall in here.
constexpr absl::Duration kKillSpan = absl::Seconds(56);

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// A loopback port free right now: every restart of the server must listen where the clients
// reconnect.
int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

uint64_t SeedFromEnv() {
  uint64_t seed = 0;
  const char* env = std::getenv("KILL9_SEED");
  if (env != nullptr && absl::SimpleAtoi(env, &seed)) return seed;
  return std::random_device()() ^ (uint64_t{std::random_device()()} << 32);
}

int KillsFromEnv() {
  int kills = 5;
  const char* env = std::getenv("KILL9_KILLS");
  if (env != nullptr && absl::SimpleAtoi(env, &kills) && kills >= 1) return kills;
  return 5;
}

// The totals of a generated run, counted while writing it.
struct GeneratedRun {
  std::string path;
  uint64_t samples = 0;
  uint64_t http_reqs = 0;
  uint64_t iterations = 0;
  uint64_t data_sent = 0;
  uint64_t data_received = 0;
};

// Writes a k6 JSON result file of a 60 s test: two iterations every 10 ms (two HTTP requests
// each, to one of three endpoints, 5 % answered 500) and the VU count every second: 108060
// samples. Timestamps of a 10 ms tick are equal, so a paced replay sends one batch per tick.
GeneratedRun WriteGeneratedRun(const std::string& path, uint64_t seed) {
  GeneratedRun run;
  run.path = path;
  std::mt19937_64 rng(seed);
  std::ofstream out(path);
  const struct {
    const char* name;
    const char* type;
    const char* contains;
  } metrics[] = {{"http_reqs", "counter", "default"},  {"http_req_duration", "trend", "time"},
                 {"data_sent", "counter", "data"},     {"data_received", "counter", "data"},
                 {"iterations", "counter", "default"}, {"vus", "gauge", "default"}};
  for (const auto& m : metrics) {
    out << "{\"type\":\"Metric\",\"data\":{\"name\":\"" << m.name << "\",\"type\":\"" << m.type
        << "\",\"contains\":\"" << m.contains
        << "\",\"thresholds\":[],\"submetrics\":null},\"metric\":\"" << m.name << "\"}\n";
  }
  const char* names[] = {"http://app/login", "http://app/transfer", "http://app/balance"};
  const absl::Time base = absl::FromUnixSeconds(1767225600);  // 2026-01-01T00:00:00Z
  auto point = [&](const char* metric, absl::Time t, const std::string& value,
                   const std::string& tags) {
    out << "{\"metric\":\"" << metric << "\",\"type\":\"Point\",\"data\":{\"time\":\""
        << absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", t, absl::UTCTimeZone())
        << "\",\"value\":" << value << ",\"tags\":{" << tags << "}}}\n";
    ++run.samples;
  };
  const std::string scenario = "\"group\":\"\",\"scenario\":\"default\"";
  for (int tick = 0; tick < 6000; ++tick) {
    const absl::Time t = base + absl::Milliseconds(10 * tick);
    if (tick % 100 == 0) point("vus", t, absl::StrCat(5 + rng() % 11), "");
    for (int iteration = 0; iteration < 2; ++iteration) {
      for (int request = 0; request < 2; ++request) {
        const char* name = names[rng() % 3];
        const bool failed = rng() % 20 == 0;
        const std::string tags = absl::StrCat(
            scenario, ",\"method\":\"", request == 0 ? "GET" : "POST", "\",\"name\":\"", name,
            "\",\"url\":\"", name, "\",\"status\":\"", failed ? "500" : "200", "\"");
        const uint64_t sent = 100 + rng() % 500;
        const uint64_t received = 200 + rng() % 4000;
        point("http_reqs", t, "1", tags);
        point("http_req_duration", t, absl::StrFormat("%.3f", 1 + (rng() % 300000) / 1000.0), tags);
        point("data_sent", t, absl::StrCat(sent), tags);
        point("data_received", t, absl::StrCat(received), tags);
        ++run.http_reqs;
        run.data_sent += sent;
        run.data_received += received;
      }
      point("iterations", t, "1", scenario);
      ++run.iterations;
    }
  }
  return run;
}

// The export's configuration, as the CLI's JSON and as the reference's mirror of it: the
// default metrics, and http_reqs by endpoint and status.
std::string ConfigJson(const std::string& url) {
  return absl::StrCat("[{\"provider\": \"prometheus\", \"remoteWriteURL\": \"", url,
                      "\", \"resampleRate\": ", kResampleRateS,
                      ", \"includeTestRunId\": true, \"metrics\": [{\"sourceMetric\": "
                      "\"http_reqs\", \"targetMetric\": \"k6_reqs_by_name\", \"keepTags\": "
                      "[\"name\", \"status\"]}]}]");
}

RefConfig Reference(const std::string& test_run, int64_t shift_ns) {
  RefConfig config;
  config.resample_rate_s = kResampleRateS;
  config.test_run_id = test_run;
  config.shift_ns = shift_ns;
  config.outputs.push_back({"http_reqs", nullptr, "k6_reqs_by_name", {"name", "status"}});
  for (const char* name :
       {"data_sent", "data_received", "http_req_duration", "http_reqs", "iterations", "vus"}) {
    config.outputs.push_back({name, nullptr, absl::StrCat("k6_", name), {}});
  }
  return config;
}

bool WithinRelative(double a, double b, double rel) {
  if (a == b) return true;
  return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b));
}

std::string Describe(const reference::RefPointKey& key) {
  return absl::StrCat(reference::FormatLabels(key.first), " @", key.second);
}

// One replay: its export, its client process and what the stop answered.
struct Replay {
  std::string name;
  std::string file;
  std::string test_run;
  uint64_t samples = 0;
  std::string export_id;
  std::unique_ptr<Subprocess> client;
  int exit_code = -1;
  nlohmann::json result;   // replay --json
  nlohmann::json stopped;  // stop --json
  absl::Duration idle_before_stop;
};

class Kill9Test : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PrometheusServer>> started = PrometheusServer::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    prometheus_ = *std::move(started);
    data_dir_ = TempPath("kill9-data");
    const int port = FreeLoopbackPort();
    ASSERT_GT(port, 0);
    address_ = absl::StrCat("127.0.0.1:", port);
    server_flag_ = "--server=" + address_;
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Kill(SIGTERM);
      EXPECT_TRUE(server_->Wait(absl::Seconds(20)).ok());
    }
  }

  // Starts rwexport_server on data_dir_ at address_; with `wait`, until it listens.
  std::unique_ptr<Subprocess> Spawn(bool wait) {
    absl::StatusOr<std::unique_ptr<Subprocess>> server = Subprocess::Start(
        RunfilePath("server/rwexport_server"),
        {"--listen=" + address_, "--data_dir=" + data_dir_, "--lateness=" + std::string(kLateness),
         "--delivery_timeout=10s", "--wal_fsync=always",
         // Checkpoints every 300 ms and small segments: the kills also hit checkpoints being
         // written and logs truncated behind them.
         "--checkpoint_interval=300ms", "--wal_segment_bytes=65536"});
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return nullptr;
    if (wait && !(*server)->WaitForStderr("rwexport_server listening", kStartWait)) {
      ADD_FAILURE() << "the server did not start: " << (*server)->stderr_text();
      return nullptr;
    }
    return *std::move(server);
  }

  // Points Prometheus holds for the test runs matching `runs` (a regex), -1 if it cannot say.
  int64_t StoredPoints(const std::string& runs) {
    absl::StatusOr<std::vector<QueryResult>> r = prometheus_->Query(
        absl::StrCat("{test_run_id=~\"", runs, "\"}[2h]"), absl::Now() + absl::Minutes(1));
    return r.ok() ? static_cast<int64_t>(r->size()) : -1;
  }

  // SIGKILLs the server `moments.size()` times, restarting it on the same data dir after each;
  // kill `recovering_kill` follows the restart after the kill before it by 0-40 ms, and kill
  // `after_delivery_kill` comes, after its moment, as soon as Prometheus holds more points of
  // `runs` than before (within ms of a delivery: most likely before the delivery mark is
  // written, so the restarted server re-sends windows Prometheus has).
  void RunKills(absl::Time start, const std::vector<absl::Duration>& moments, int recovering_kill,
                int after_delivery_kill, const std::string& runs, std::mt19937_64& rng) {
    const int kills = static_cast<int>(moments.size());
    for (int k = 0; k < kills; ++k) {
      std::string when;
      if (k == recovering_kill) {
        server_ = Spawn(false);
        ASSERT_NE(server_, nullptr);
        absl::SleepFor(absl::Milliseconds(rng() % 40));
        const bool listening =
            server_->stderr_text().find("rwexport_server listening") != std::string::npos;
        when = listening ? "just after a restart (it was listening already)"
                         : "while the server was recovering";
      } else {
        ASSERT_NE(server_, nullptr);
        const absl::Time at = start + moments[k];
        if (absl::Now() < at) absl::SleepFor(at - absl::Now());
        when = absl::StrCat("at ", absl::FormatDuration(absl::Now() - start));
        if (k == after_delivery_kill) {
          const int64_t before = StoredPoints(runs);
          const absl::Time give_up = absl::Now() + absl::Seconds(6);
          int64_t now_stored = before;
          while (now_stored == before && absl::Now() < give_up) {
            absl::SleepFor(absl::Milliseconds(10));
            now_stored = StoredPoints(runs);
          }
          when = absl::StrCat("at ", absl::FormatDuration(absl::Now() - start),
                              now_stored != before
                                  ? absl::StrCat(", right after a delivery (stored points ", before,
                                                 " -> ", now_stored, ")")
                                  : ", no delivery seen within 6 s");
        }
      }
      ASSERT_NO_FATAL_FAILURE(SigkillServer(server_, absl::Seconds(20)));
      std::cout << "kill " << k + 1 << " of " << kills << " " << when << std::endl;
      if (k + 1 == recovering_kill) continue;  // that kill restarts the server itself
      server_ = Spawn(true);
      ASSERT_NE(server_, nullptr);
      // Exports restored from a checkpoint by this restart (its listening line).
      const std::string text = server_->stderr_text();
      const size_t at = text.find("checkpoints_restored=");
      int restored = 0;
      if (at != std::string::npos) {
        absl::SimpleAtoi(text.substr(at + 21, text.find(' ', at + 21) - at - 21), &restored);
      }
      checkpoints_restored_ += restored;
    }
  }
  // Over every restart of RunKills.
  int checkpoints_restored_ = 0;

  ProcessResult Cli(std::vector<std::string> args) const { return RunCli(args, server_flag_); }

  std::string StartExport(const std::string& test_run) const {
    const std::string config = TempPath("kill9-" + test_run + ".json");
    std::ofstream(config) << ConfigJson(prometheus_->remote_write_url());
    const ProcessResult start = Cli({"start", "--config=" + config, "--test_run_id=" + test_run});
    EXPECT_EQ(start.exit_code, 0) << start.err;
    return std::string(absl::StripAsciiWhitespace(start.out));
  }

  // `rwexport stop --json`, tried again while the server is restarting (bounded).
  nlohmann::json Stop(const std::string& id) const {
    for (int attempt = 0; attempt < 60; ++attempt) {
      const ProcessResult stop = Cli({"stop", id, "--json"});
      nlohmann::json doc = nlohmann::json::parse(stop.out, nullptr, false);
      if (!doc.is_discarded() && doc.contains("exportId")) return doc;
      std::cout << "stop " << id << ": " << stop.err;
      absl::SleepFor(absl::Milliseconds(500));
    }
    ADD_FAILURE() << "StopExport of " << id << " did not succeed";
    return nlohmann::json();
  }

  // Compares every stored point of `r`'s test run with the reference.
  void ExpectReferencePoints(const Replay& r) {
    absl::StatusOr<RefRun> run = reference::ReadK6JsonFile(r.file);
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_EQ(run->samples.size(), r.samples);
    const int64_t shift_ns = r.result["input"]["shiftNs"].get<int64_t>();
    absl::StatusOr<RefExport> expected =
        reference::ComputeExpectedExport(*run, Reference(r.test_run, shift_ns));
    ASSERT_TRUE(expected.ok()) << expected.status();

    absl::StatusOr<std::vector<QueryResult>> stored = prometheus_->Query(
        absl::StrCat("{test_run_id=\"", r.test_run, "\"}[2h]"), absl::Now() + absl::Minutes(1));
    ASSERT_TRUE(stored.ok()) << stored.status();
    std::map<reference::RefPointKey, double> actual;
    int twice = 0;
    for (const QueryResult& q : *stored) {
      RefLabels labels(q.labels.begin(), q.labels.end());
      if (!actual.emplace(std::make_pair(labels, q.timestamp_ms), q.value).second) ++twice;
    }
    EXPECT_EQ(twice, 0) << r.name << ": points stored twice";
    int missing = 0;
    int extra = 0;
    int mismatches = 0;
    for (const auto& [key, point] : expected->points) {
      auto it = actual.find(key);
      if (it == actual.end()) {
        if (++missing <= 10) ADD_FAILURE() << r.name << ": missing " << Describe(key);
        continue;
      }
      // As the fidelity test: exact (to 1e-12) except percentiles over more than 64 samples
      // (1 %, the sketch's bound).
      const bool percentile = point.stat == RefStat::kMed || point.stat == RefStat::kP90 ||
                              point.stat == RefStat::kP95 || point.stat == RefStat::kP99;
      const bool exact = !percentile || point.window_samples <= 64;
      if (!WithinRelative(it->second, point.value, exact ? 1e-12 : 0.01) && ++mismatches <= 20) {
        ADD_FAILURE() << r.name << ": " << Describe(key) << ": stored " << it->second
                      << ", expected " << point.value;
      }
    }
    for (const auto& [key, value] : actual) {
      if (expected->points.count(key) == 0 && ++extra <= 10) {
        ADD_FAILURE() << r.name << ": unexpected " << Describe(key) << " = " << value;
      }
    }
    EXPECT_EQ(missing, 0) << r.name;
    EXPECT_EQ(extra, 0) << r.name;
    EXPECT_EQ(mismatches, 0) << r.name;
    EXPECT_EQ(stored->size(), expected->points.size()) << r.name;
    // Points sent = points stored.
    ASSERT_EQ(r.stopped["targets"].size(), 1u) << r.name;
    EXPECT_EQ(r.stopped["targets"][0]["pointsSent"].get<uint64_t>(), stored->size()) << r.name;
    std::cout << r.name << ": " << stored->size() << " points stored, " << expected->points.size()
              << " in the reference, " << missing << " missing, " << extra << " unexpected, "
              << mismatches << " values differ\n";
  }

  // The newest stored value of k6_<metric>_total of `test_run`.
  double Total(const std::string& metric, const std::string& test_run) {
    absl::StatusOr<std::vector<QueryResult>> r = prometheus_->Query(
        absl::StrCat("k6_", metric, "_total{test_run_id=\"", test_run, "\"}[2h]"),
        absl::Now() + absl::Minutes(1));
    EXPECT_TRUE(r.ok()) << r.status();
    double value = -1;
    int64_t newest = 0;
    if (r.ok()) {
      for (const QueryResult& q : *r) {
        if (q.timestamp_ms >= newest) {
          newest = q.timestamp_ms;
          value = q.value;
        }
      }
    }
    return value;
  }

  std::unique_ptr<PrometheusServer> prometheus_;
  std::string data_dir_;
  std::string address_;
  std::string server_flag_;
  std::unique_ptr<Subprocess> server_;
};

TEST_F(Kill9Test, ReplaysThroughSigkillsEndWithExactlyTheReferencePoints) {
  const uint64_t seed = SeedFromEnv();
  const int kills = KillsFromEnv();
  std::cout << "KILL9_SEED=" << seed << " KILL9_KILLS=" << kills << std::endl;
  std::mt19937_64 rng(seed);

  const GeneratedRun generated = WriteGeneratedRun(TempPath("kill9-generated.json"), seed);
  ASSERT_EQ(generated.samples, 108060u);
  std::vector<Replay> replays(2);
  replays[0].name = "finance";
  replays[0].file = K6TestdataFile("finance-run.json");
  replays[0].samples = 802;
  replays[1].name = "generated";
  replays[1].file = generated.path;
  replays[1].samples = generated.samples;

  server_ = Spawn(true);
  ASSERT_NE(server_, nullptr);
  for (Replay& r : replays) {
    r.test_run = absl::StrCat("kill9-", r.name, "-", seed);
    r.export_id = StartExport(r.test_run);
    ASSERT_FALSE(r.export_id.empty());
  }

  // The kill moments, seeded: uniform over the streaming, in order. One kill (not the first)
  // lands while the server is recovering: 0-40 ms after the restart that follows the kill
  // before it, whatever the moment; another right after a delivery (RunKills).
  std::vector<absl::Duration> moments;
  for (int k = 0; k < kills; ++k) {
    moments.push_back(absl::Milliseconds(500 + rng() % absl::ToInt64Milliseconds(kKillSpan)));
  }
  std::sort(moments.begin(), moments.end());
  const int recovering_kill = kills > 1 ? 1 + static_cast<int>(rng() % (kills - 1)) : -1;
  int after_delivery_kill = static_cast<int>(rng() % kills);
  if (after_delivery_kill == recovering_kill) after_delivery_kill = 0;

  const absl::Time start = absl::Now();
  for (Replay& r : replays) {
    absl::StatusOr<std::unique_ptr<Subprocess>> client =
        Subprocess::Start(RunfilePath("client/rwexport"),
                          {"replay", r.file, "--export_id=" + r.export_id, "--pace=recorded",
                           "--json", "--resume_timeout=60s", server_flag_});
    ASSERT_TRUE(client.ok()) << client.status();
    r.client = *std::move(client);
  }
  // Each client's export is stopped as soon as the client is done: an export left idle would
  // go on closing empty windows past the run's end (the export's clock runs).
  std::vector<std::thread> waiters;
  for (Replay& r : replays) {
    waiters.emplace_back([this, &r] {
      absl::StatusOr<int> code = r.client->Wait(absl::Minutes(4));
      EXPECT_TRUE(code.ok()) << code.status();
      const absl::Time done = absl::Now();
      r.exit_code = code.ok() ? *code : -1;
      r.result = nlohmann::json::parse(r.client->stdout_text(), nullptr, false);
      r.stopped = Stop(r.export_id);
      r.idle_before_stop = absl::Now() - done;
    });
  }

  RunKills(start, moments, recovering_kill, after_delivery_kill, absl::StrCat("kill9-.+-", seed),
           rng);
  for (std::thread& t : waiters) t.join();
  std::cout << "replays done after " << absl::FormatDuration(absl::Now() - start)
            << "; exports restored from a checkpoint by the restarts: " << checkpoints_restored_
            << std::endl;
  // The kills hit running exports that had checkpoints (every 300 ms).
  EXPECT_GT(checkpoints_restored_, 0);

  for (Replay& r : replays) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.exit_code, 0) << r.client->stderr_text();
    ASSERT_FALSE(r.result.is_discarded()) << r.client->stdout_text() << r.client->stderr_text();
    EXPECT_LT(r.idle_before_stop, absl::Seconds(10));
    // Accepted = sent to the aggregation: every sample of the file, once.
    EXPECT_EQ(r.result["input"]["samples"].get<uint64_t>(), r.samples);
    EXPECT_EQ(r.result["stream"]["samplesSent"].get<uint64_t>(), r.samples);
    EXPECT_EQ(r.result["stream"]["accepted"].get<uint64_t>(), r.samples);
    EXPECT_EQ(r.result["stream"]["rejected"].get<uint64_t>(), 0u);
    ASSERT_TRUE(r.stopped.contains("samplesAccepted")) << r.stopped.dump();
    EXPECT_EQ(r.stopped["samplesAccepted"].get<uint64_t>(), r.samples);
    EXPECT_EQ(r.stopped["samplesRejected"].get<uint64_t>(), 0u);
    EXPECT_EQ(r.stopped["pointsDropped"].get<uint64_t>(), 0u) << r.stopped.dump();
    const nlohmann::json& target = r.stopped["targets"][0];
    const std::string client_log = r.client->stderr_text();
    size_t resumes = 0;
    for (size_t at = client_log.find("resumed stream"); at != std::string::npos;
         at = client_log.find("resumed stream", at + 1)) {
      ++resumes;
    }
    std::cout << r.name << " figures: accepted " << r.stopped["samplesAccepted"] << " of "
              << r.samples << " samples (client: " << r.result["stream"]["accepted"]
              << "), client resumed " << resumes << " times; points sent " << target["pointsSent"]
              << " (already stored on re-send "
              << target.value("pointsAlreadyStored", nlohmann::json(0)) << "), dropped "
              << target["pointsDropped"] << std::endl;
  }

  ExpectFinanceRunTotals(*prometheus_, replays[0].test_run);
  const std::string& run = replays[1].test_run;
  EXPECT_EQ(Total("http_reqs", run), static_cast<double>(generated.http_reqs));
  EXPECT_EQ(Total("iterations", run), static_cast<double>(generated.iterations));
  EXPECT_EQ(Total("data_sent", run), static_cast<double>(generated.data_sent));
  EXPECT_EQ(Total("data_received", run), static_cast<double>(generated.data_received));
  for (const Replay& r : replays) ExpectReferencePoints(r);
  EXPECT_EQ(prometheus_->LogTail(1000).find("duplicate sample"), std::string::npos);
}

}  // namespace
}  // namespace rwexport
