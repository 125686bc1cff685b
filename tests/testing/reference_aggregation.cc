#include "tests/testing/reference_aggregation.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace rwexport {
namespace reference {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

absl::StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return lines;
}

std::optional<RefType> ParseType(absl::string_view name) {
  if (name == "counter") return RefType::kCounter;
  if (name == "gauge") return RefType::kGauge;
  if (name == "rate") return RefType::kRate;
  if (name == "trend") return RefType::kTrend;
  return std::nullopt;
}

absl::StatusOr<int64_t> ParseRfc3339(const std::string& text) {
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &error)) {
    return absl::InvalidArgumentError(absl::StrCat("bad time \"", text, "\": ", error));
  }
  return absl::ToUnixNanos(t);
}

// Unix seconds with an optional fraction, exactly.
absl::StatusOr<int64_t> ParseUnixSeconds(absl::string_view text) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(text, '.');
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(parts.first, &seconds)) {
    return absl::InvalidArgumentError(absl::StrCat("bad timestamp \"", text, "\""));
  }
  std::string fraction(parts.second.substr(0, 9));
  fraction.resize(9, '0');
  int64_t nanos = 0;
  if (!absl::SimpleAtoi(fraction, &nanos) || nanos < 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad timestamp \"", text, "\""));
  }
  return seconds * 1000000000 + nanos;
}

const char* StatSuffix(RefStat stat) {
  switch (stat) {
    case RefStat::kMin:
      return "min";
    case RefStat::kMax:
      return "max";
    case RefStat::kAvg:
      return "avg";
    case RefStat::kMed:
      return "med";
    case RefStat::kP90:
      return "p90";
    case RefStat::kP95:
      return "p95";
    case RefStat::kP99:
      return "p99";
    case RefStat::kCount:
      return "count";
    case RefStat::kValue:
      break;
  }
  return "";
}

}  // namespace

std::optional<RefMetric> K6BuiltinMetric(absl::string_view name) {
  static const auto* const table = new std::map<std::string, RefMetric, std::less<>>{
      {"vus", {RefType::kGauge, false}},
      {"vus_max", {RefType::kGauge, false}},
      {"iterations", {RefType::kCounter, false}},
      {"iteration_duration", {RefType::kTrend, true}},
      {"dropped_iterations", {RefType::kCounter, false}},
      {"data_received", {RefType::kCounter, false}},
      {"data_sent", {RefType::kCounter, false}},
      {"checks", {RefType::kRate, false}},
      {"group_duration", {RefType::kTrend, true}},
      {"http_reqs", {RefType::kCounter, false}},
      {"http_req_failed", {RefType::kRate, false}},
      {"http_req_duration", {RefType::kTrend, true}},
      {"http_req_blocked", {RefType::kTrend, true}},
      {"http_req_connecting", {RefType::kTrend, true}},
      {"http_req_tls_handshaking", {RefType::kTrend, true}},
      {"http_req_sending", {RefType::kTrend, true}},
      {"http_req_waiting", {RefType::kTrend, true}},
      {"http_req_receiving", {RefType::kTrend, true}},
  };
  auto it = table->find(name);
  if (it == table->end()) return std::nullopt;
  return it->second;
}

int64_t RefRun::LastTimestampNs() const {
  int64_t last = std::numeric_limits<int64_t>::min();
  for (const RefSample& s : samples) last = std::max(last, s.ts_ns);
  return last;
}

absl::StatusOr<RefRun> ReadK6JsonFile(const std::string& path) {
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path);
  if (!lines.ok()) return lines.status();
  RefRun run;
  for (size_t i = 0; i < lines->size(); ++i) {
    const std::string& line = (*lines)[i];
    if (line.empty()) continue;
    const std::string where = absl::StrCat(path, ":", i + 1, ": ");
    try {
      const nlohmann::json o = nlohmann::json::parse(line);
      const std::string type = o.at("type").get<std::string>();
      const nlohmann::json& data = o.at("data");
      if (type == "Metric") {
        std::optional<RefType> t = ParseType(data.at("type").get<std::string>());
        if (!t) return absl::InvalidArgumentError(where + "unknown metric type");
        run.declared[data.at("name").get<std::string>()] =
            RefMetric{*t, data.at("contains").get<std::string>() == "time"};
      } else if (type == "Point") {
        RefSample s;
        s.metric = o.at("metric").get<std::string>();
        absl::StatusOr<int64_t> ts = ParseRfc3339(data.at("time").get<std::string>());
        if (!ts.ok()) return absl::InvalidArgumentError(where + std::string(ts.status().message()));
        s.ts_ns = *ts;
        s.value = data.at("value").get<double>();
        if (data.contains("tags") && data.at("tags").is_object()) {
          for (const auto& [key, value] : data.at("tags").items()) {
            s.tags.emplace_back(key, value.get<std::string>());
          }
        }
        run.samples.push_back(std::move(s));
      } else {
        return absl::InvalidArgumentError(where + "neither Metric nor Point");
      }
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(where + e.what());
    }
  }
  return run;
}

absl::StatusOr<RefRun> ReadK6CsvFile(const std::string& path) {
  absl::StatusOr<std::vector<std::string>> lines = ReadLines(path);
  if (!lines.ok()) return lines.status();
  if (lines->empty()) return absl::InvalidArgumentError(path + ": empty");
  const std::vector<std::string> header = absl::StrSplit((*lines)[0], ',');
  RefRun run;
  for (size_t i = 1; i < lines->size(); ++i) {
    const std::string& line = (*lines)[i];
    if (line.empty()) continue;
    const std::string where = absl::StrCat(path, ":", i + 1, ": ");
    if (line.find('"') != std::string::npos) {
      return absl::UnimplementedError(where + "quoted cells are not supported");
    }
    const std::vector<std::string> cells = absl::StrSplit(line, ',');
    if (cells.size() != header.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, cells.size(), " cells, the header has ", header.size()));
    }
    RefSample s;
    bool have_value = false;
    bool have_time = false;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string& name = header[c];
      const std::string& cell = cells[c];
      if (name == "metric_name") {
        s.metric = cell;
      } else if (name == "timestamp") {
        absl::StatusOr<int64_t> ts = ParseUnixSeconds(cell);
        if (!ts.ok()) return absl::InvalidArgumentError(where + std::string(ts.status().message()));
        s.ts_ns = *ts;
        have_time = true;
      } else if (name == "metric_value") {
        if (!absl::SimpleAtod(cell, &s.value)) {
          return absl::InvalidArgumentError(absl::StrCat(where, "bad value \"", cell, "\""));
        }
        have_value = true;
      } else if (name == "metadata") {
        continue;
      } else if (name == "extra_tags") {
        if (cell.empty()) continue;
        for (absl::string_view kv : absl::StrSplit(cell, '&')) {
          std::pair<std::string, std::string> tag = absl::StrSplit(kv, absl::MaxSplits('=', 1));
          if (!tag.second.empty()) s.tags.push_back(std::move(tag));
        }
      } else if (!cell.empty()) {
        s.tags.emplace_back(name, cell);
      }
    }
    if (s.metric.empty() || !have_time || !have_value) {
      return absl::InvalidArgumentError(where + "missing metric_name, timestamp or metric_value");
    }
    run.samples.push_back(std::move(s));
  }
  return run;
}

double K6Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.size() == 1) return sorted[0];
  const double i = p * (static_cast<double>(sorted.size()) - 1.0);
  const double j = sorted[static_cast<size_t>(std::floor(i))];
  const double k = sorted[static_cast<size_t>(std::ceil(i))];
  return j + (k - j) * (i - std::floor(i));
}

std::string FormatLabels(const RefLabels& labels) {
  std::string name;
  std::vector<std::string> rest;
  for (const auto& [k, v] : labels) {
    if (k == "__name__") {
      name = v;
    } else {
      rest.push_back(absl::StrCat(k, "=\"", v, "\""));
    }
  }
  return absl::StrCat(name, "{", absl::StrJoin(rest, ","), "}");
}

absl::StatusOr<RefExport> ComputeExpectedExport(const RefRun& run, const RefConfig& config) {
  const int64_t window_ns = int64_t{config.resample_rate_s} * 1000000000;
  const int64_t window_ms = int64_t{config.resample_rate_s} * 1000;

  // (output index, kept labels) -> (shifted ts, value) in file order.
  struct SeriesSamples {
    RefMetric metric;
    std::vector<std::pair<int64_t, double>> samples;
  };
  std::map<std::pair<size_t, RefLabels>, SeriesSamples> series;
  for (const RefSample& s : run.samples) {
    std::optional<RefMetric> metric;
    auto declared = run.declared.find(s.metric);
    if (declared != run.declared.end()) {
      metric = declared->second;
    } else {
      metric = K6BuiltinMetric(s.metric);
    }
    if (!metric) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric \"", s.metric, "\" is neither declared nor built into k6"));
    }
    for (size_t o = 0; o < config.outputs.size(); ++o) {
      const RefOutput& out = config.outputs[o];
      if (out.source_metric != s.metric) continue;
      if (out.selects && !out.selects(s.tags)) continue;
      RefLabels labels;
      for (const std::string& keep : out.keep_tags) {
        for (const auto& [k, v] : s.tags) {
          if (k == keep) {
            if (!v.empty()) labels[keep] = v;
            break;
          }
        }
      }
      SeriesSamples& ss = series[{o, labels}];
      ss.metric = *metric;
      ss.samples.emplace_back(s.ts_ns + config.shift_ns, s.value);
    }
  }

  // The export's last window: that of its newest sample, whatever the metric. Counters, gauges
  // and rates are repeated up to it, for at most kMaxFill windows after each window with
  // samples (a longer silence is a gap until the next sample).
  int64_t newest_ns = std::numeric_limits<int64_t>::min();
  for (const RefSample& s : run.samples) newest_ns = std::max(newest_ns, s.ts_ns + config.shift_ns);
  const int64_t export_last = FloorDiv(newest_ns, window_ns);
  constexpr int64_t kMaxFill = 60;

  RefExport result;
  result.aggregation_series = series.size();
  for (const auto& entry : series) {
    // Not a structured binding: clang (C++17) refuses to capture one in the lambdas below.
    const auto& key = entry.first;
    const auto& ss = entry.second;
    const RefOutput& out = config.outputs[key.first];
    RefLabels labels = key.second;
    if (!config.test_run_id.empty()) labels["test_run_id"] = config.test_run_id;
    const double unit = ss.metric.is_time ? 1000.0 : 1.0;

    // Window -> samples (ts, value) in file order.
    std::map<int64_t, std::vector<std::pair<int64_t, double>>> windows;
    for (const auto& sample : ss.samples) {
      windows[FloorDiv(sample.first, window_ns)].push_back(sample);
    }
    const int64_t first = windows.begin()->first;
    const int64_t last = windows.rbegin()->first;
    // Repeating types run on to the export's last window.
    const int64_t repeat_last = std::max(last, std::min(export_last, last + kMaxFill));
    auto emit = [&](const std::string& name, int64_t w, RefStat stat, double value, uint64_t n) {
      RefLabels l = labels;
      l["__name__"] = name;
      result.series_ends[l] = RefExport::SeriesEnd{ss.metric.type, last};
      result.points[{std::move(l), (w + 1) * window_ms}] = RefPoint{value, stat, n};
    };

    switch (ss.metric.type) {
      case RefType::kCounter: {
        double total = 0;
        int64_t last_with_samples = first;
        for (int64_t w = first; w <= repeat_last; ++w) {
          auto it = windows.find(w);
          uint64_t n = 0;
          if (it != windows.end()) {
            double sum = 0;
            for (const auto& s : it->second) sum += s.second;
            total += sum / unit;
            n = it->second.size();
            last_with_samples = w;
          }
          if (w - last_with_samples > kMaxFill) continue;
          emit(out.base_name + "_total", w, RefStat::kValue, total, n);
        }
        break;
      }
      case RefType::kGauge:
      case RefType::kRate: {
        double value = 0;
        int64_t last_with_samples = first;
        for (int64_t w = first; w <= repeat_last; ++w) {
          auto it = windows.find(w);
          uint64_t n = 0;
          if (it != windows.end()) {
            n = it->second.size();
            last_with_samples = w;
            if (ss.metric.type == RefType::kGauge) {
              const std::pair<int64_t, double>* latest = &it->second.front();
              for (const auto& s : it->second) {
                if (s.first >= latest->first) latest = &s;
              }
              value = latest->second / unit;
            } else {
              uint64_t nonzero = 0;
              for (const auto& s : it->second) nonzero += s.second != 0;
              value = static_cast<double>(nonzero) / static_cast<double>(n);
            }
          }
          if (w - last_with_samples > kMaxFill) continue;
          emit(ss.metric.type == RefType::kGauge ? out.base_name : out.base_name + "_rate", w,
               RefStat::kValue, value, n);
        }
        break;
      }
      case RefType::kTrend:
        for (const auto& [w, samples] : windows) {
          std::vector<double> v;
          for (const auto& s : samples) v.push_back(s.second);
          std::sort(v.begin(), v.end());
          double sum = 0;
          for (double x : v) sum += x;
          const uint64_t n = v.size();
          const std::pair<RefStat, double> stats[] = {
              {RefStat::kMin, v.front() / unit},
              {RefStat::kMax, v.back() / unit},
              {RefStat::kAvg, sum / static_cast<double>(n) / unit},
              {RefStat::kMed, K6Percentile(v, 0.5) / unit},
              {RefStat::kP90, K6Percentile(v, 0.9) / unit},
              {RefStat::kP95, K6Percentile(v, 0.95) / unit},
              {RefStat::kP99, K6Percentile(v, 0.99) / unit},
              {RefStat::kCount, static_cast<double>(n)},
          };
          for (const auto& [stat, value] : stats) {
            emit(absl::StrCat(out.base_name, "_", StatSuffix(stat)), w, stat, value, n);
          }
        }
        break;
    }
  }
  return result;
}

}  // namespace reference
}  // namespace rwexport
