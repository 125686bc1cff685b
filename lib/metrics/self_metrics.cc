#include "lib/metrics/self_metrics.h"

#include <deque>
#include <iterator>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/common/build_info.h"
#include "lib/metrics/process_metrics.h"
#include "lib/metrics/status_page.h"

namespace rwexport {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using PromType = prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// Families are built in a deque: references to earlier ones stay valid as more are added.
MetricFamily& Family(std::deque<MetricFamily>* families, std::string name, std::string help,
                     PromType type) {
  families->push_back(MetricFamily{std::move(name), std::move(help), type, {}});
  return families->back();
}

void AddHistogram(MetricFamily* family, Labels labels, const v1::DurationHistogram& h) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = h.count();
  m.histogram.sample_sum = h.sum_seconds();
  for (int i = 0; i < h.cumulative_counts_size(); ++i) {
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = h.cumulative_counts(i);
    bucket.upper_bound = i < h.upper_bounds_seconds_size()
                             ? h.upper_bounds_seconds(i)
                             : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back(bucket);
  }
  family->metric.push_back(std::move(m));
}

void Add(MetricFamily* family, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (family->type == PromType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family->metric.push_back(std::move(m));
}

// The process-wide figures: retired exports plus the live ones.
struct ProcessTotals {
  RetiredTotals sums;
  std::map<std::string, uint64_t> rejected;  // by reason
  uint64_t series = 0;
  uint64_t pending = 0;
};

ProcessTotals SumTotals(const std::vector<v1::ExportStatus>& live, RetiredTotals retired) {
  ProcessTotals t;
  t.sums = std::move(retired);
  for (const auto& [reason, r] : t.sums.rejections) t.rejected[reason] += r.count;
  for (const v1::ExportStatus& e : live) {
    t.sums.samples_accepted += e.samples_accepted();
    t.sums.samples_late += e.samples_late();
    t.sums.windows_flushed += e.windows_flushed();
    for (const v1::Rejection& r : e.rejections()) t.rejected[r.reason()] += r.count();
    for (const v1::TargetFigures& f : e.figures()) {
      t.sums.points_sent += f.points_sent();
      t.sums.duplicate_on_retry += f.duplicate_on_retry();
      t.sums.points_already_stored += f.points_already_stored();
      t.sums.requests += f.requests();
      t.sums.retries += f.retries();
      t.sums.failures += f.failures();
      t.sums.bytes_sent += f.bytes_sent();
      for (const auto& [reason, n] : f.dropped_by_reason()) t.sums.points_dropped[reason] += n;
      t.series += f.series();
      t.pending += f.points_pending();
    }
  }
  return t;
}

// What the server found in its data directory at start (--data_dir; zero without one).
void AddRecoveryFamilies(const RecoveryReport& r, std::deque<MetricFamily>* out) {
  Add(&Family(out, "rwexport_exports_recovered_total",
              "Exports brought back from the data directory at start (--data_dir).",
              PromType::Counter),
      {}, static_cast<double>(r.recovered));
  Add(&Family(out, "rwexport_data_dir_records_set_aside_total",
              "Records of the data directory that could not be used at start (corrupt, or a "
              "configuration refused), moved to its corrupt/ directory.",
              PromType::Counter),
      {}, static_cast<double>(r.corrupt + r.unrecoverable));
}

// rwexport_* without export labels.
void AddProcessFamilies(size_t active, uint64_t started, const ProcessTotals& t,
                        std::deque<MetricFamily>* out) {
  const RetiredTotals& s = t.sums;
  Add(&Family(out, "rwexport_exports_active", "Exports running or stopping.", PromType::Gauge), {},
      static_cast<double>(active));
  Add(&Family(out, "rwexport_exports_started_total", "Exports started.", PromType::Counter), {},
      static_cast<double>(started));
  Add(&Family(out, "rwexport_exports_stopped_total", "Exports stopped.", PromType::Counter), {},
      static_cast<double>(s.exports_stopped));
  Add(&Family(out, "rwexport_samples_accepted_total", "Raw samples accepted.", PromType::Counter),
      {}, static_cast<double>(s.samples_accepted));
  MetricFamily& rejected_family = Family(out, "rwexport_samples_rejected_total",
                                         "Raw samples rejected, by reason.", PromType::Counter);
  for (const auto& [reason, n] : t.rejected) Add(&rejected_family, {{"reason", reason}}, n);
  Add(&Family(out, "rwexport_samples_late_total",
              "Accepted samples whose window had closed, counted in the next window.",
              PromType::Counter),
      {}, static_cast<double>(s.samples_late));
  Add(&Family(out, "rwexport_windows_flushed_total", "Series windows closed and exported.",
              PromType::Counter),
      {}, static_cast<double>(s.windows_flushed));
  Add(&Family(out, "rwexport_series_active", "Exported series of running exports.",
              PromType::Gauge),
      {}, static_cast<double>(t.series));
  Add(&Family(out, "rwexport_remote_storage_samples_total",
              "Points delivered (2xx), over every export and target.", PromType::Counter),
      {}, static_cast<double>(s.points_sent));
  Add(&Family(out, "rwexport_remote_storage_samples_duplicate_on_retry_total",
              "Of the points delivered, those of retried requests the target already held (an "
              "earlier attempt was stored, its answer lost).",
              PromType::Counter),
      {}, static_cast<double>(s.duplicate_on_retry));
  Add(&Family(out, "rwexport_remote_storage_samples_already_stored_total",
              "Of the points delivered, those of recovered exports' re-sent windows the target "
              "already held (delivered before a crash).",
              PromType::Counter),
      {}, static_cast<double>(s.points_already_stored));
  MetricFamily& dropped_family =
      Family(out, "rwexport_remote_storage_samples_dropped_total",
             "Points that will never be delivered, by reason.", PromType::Counter);
  for (const auto& [reason, n] : s.points_dropped) {
    Add(&dropped_family, {{"reason", reason}}, static_cast<double>(n));
  }
  Add(&Family(out, "rwexport_remote_storage_requests_total", "Remote-write requests completed.",
              PromType::Counter),
      {}, static_cast<double>(s.requests));
  Add(&Family(out, "rwexport_remote_storage_retries_total", "Requests sent again.",
              PromType::Counter),
      {}, static_cast<double>(s.retries));
  Add(&Family(out, "rwexport_remote_storage_failures_total",
              "Requests answered with an error or lost.", PromType::Counter),
      {}, static_cast<double>(s.failures));
  Add(&Family(out, "rwexport_remote_storage_bytes_total", "Request bytes delivered.",
              PromType::Counter),
      {}, static_cast<double>(s.bytes_sent));
  Add(&Family(out, "rwexport_remote_storage_samples_pending", "Points waiting in target queues.",
              PromType::Gauge),
      {}, static_cast<double>(t.pending));
}

// The rwexport_export_* families, in the order they are exposed.
struct ExportFamilies {
  MetricFamily* accepted;
  MetricFamily* rejected;
  MetricFamily* streams;
  MetricFamily* series;
  MetricFamily* sent;
  MetricFamily* duplicate;
  MetricFamily* already_stored;
  MetricFamily* dropped;
  MetricFamily* requests;
  MetricFamily* retries;
  MetricFamily* failures;
  MetricFamily* bytes;
  MetricFamily* pending;
  MetricFamily* highest;
  MetricFamily* in_flight;
  MetricFamily* send_duration;
  MetricFamily* flush_duration;
  MetricFamily* window_delay;
};

ExportFamilies MakeExportFamilies(std::deque<MetricFamily>* out) {
  ExportFamilies f;
  f.accepted = &Family(out, "rwexport_export_samples_accepted_total",
                       "Raw samples accepted by one export.", PromType::Counter);
  f.rejected = &Family(out, "rwexport_export_samples_rejected_total",
                       "Raw samples rejected by one export, by reason.", PromType::Counter);
  f.streams = &Family(out, "rwexport_export_streams_active",
                      "StreamSamples calls feeding one export.", PromType::Gauge);
  f.series =
      &Family(out, "rwexport_export_series", "Exported series of one target.", PromType::Gauge);
  f.sent = &Family(out, "rwexport_export_remote_storage_samples_total",
                   "Points delivered to one target.", PromType::Counter);
  f.duplicate =
      &Family(out, "rwexport_export_remote_storage_samples_duplicate_on_retry_total",
              "Of the points delivered to one target, those of retried requests it already held.",
              PromType::Counter);
  f.already_stored =
      &Family(out, "rwexport_export_remote_storage_samples_already_stored_total",
              "Of the points delivered to one target, those of re-sent windows of a recovered "
              "export it already held.",
              PromType::Counter);
  f.dropped = &Family(out, "rwexport_export_remote_storage_samples_dropped_total",
                      "Points dropped for one target, by reason.", PromType::Counter);
  f.requests = &Family(out, "rwexport_export_remote_storage_requests_total",
                       "Requests completed for one target.", PromType::Counter);
  f.retries = &Family(out, "rwexport_export_remote_storage_retries_total",
                      "Requests sent again to one target.", PromType::Counter);
  f.failures = &Family(out, "rwexport_export_remote_storage_failures_total",
                       "Failed requests to one target.", PromType::Counter);
  f.bytes = &Family(out, "rwexport_export_remote_storage_bytes_total",
                    "Request bytes delivered to one target.", PromType::Counter);
  f.pending = &Family(out, "rwexport_export_remote_storage_samples_pending",
                      "Points waiting in one target's queue.", PromType::Gauge);
  f.highest = &Family(out, "rwexport_export_remote_storage_highest_timestamp_seconds",
                      "Highest point timestamp delivered to one target.", PromType::Gauge);
  f.in_flight = &Family(out, "rwexport_export_remote_storage_requests_in_flight",
                        "Requests on the wire to one target.", PromType::Gauge);
  f.send_duration =
      &Family(out, "rwexport_export_remote_storage_send_duration_seconds",
              "Duration of each remote-write request attempt to one target.", PromType::Histogram);
  f.flush_duration = &Family(out, "rwexport_export_flush_duration_seconds",
                             "From a window flush's start to its points handed to remote "
                             "write, for one export.",
                             PromType::Histogram);
  f.window_delay =
      &Family(out, "rwexport_export_window_delay_seconds",
              "From the moment a window could close (its end plus the lateness allowance) to its "
              "points handed to remote write, for one export.",
              PromType::Histogram);
  return f;
}

// One target's figures, labelled with its export, index and URL.
void AddTarget(const ExportFamilies& families, const Labels& export_labels, int index,
               const v1::TargetFigures& f) {
  Labels l = export_labels;
  l.push_back({"target", absl::StrCat(index)});
  l.push_back({"url", f.remote_write_url()});
  Add(families.series, l, static_cast<double>(f.series()));
  Add(families.sent, l, static_cast<double>(f.points_sent()));
  Add(families.duplicate, l, static_cast<double>(f.duplicate_on_retry()));
  Add(families.already_stored, l, static_cast<double>(f.points_already_stored()));
  Add(families.requests, l, static_cast<double>(f.requests()));
  Add(families.retries, l, static_cast<double>(f.retries()));
  Add(families.failures, l, static_cast<double>(f.failures()));
  Add(families.bytes, l, static_cast<double>(f.bytes_sent()));
  Add(families.pending, l, static_cast<double>(f.points_pending()));
  Add(families.highest, l, static_cast<double>(f.highest_timestamp_ms()) / 1000.0);
  Add(families.in_flight, l, f.requests_in_flight());
  AddHistogram(families.send_duration, l, f.send_duration());
  for (const auto& [reason, n] : f.dropped_by_reason()) {
    Labels d = l;
    d.push_back({"reason", reason});
    Add(families.dropped, std::move(d), static_cast<double>(n));
  }
}

// One live export's figures and its targets'.
void AddExport(const ExportFamilies& families, const v1::ExportStatus& e) {
  const Labels export_labels = {{"export_id", e.export_id()}, {"test_run_id", e.test_run_id()}};
  AddHistogram(families.flush_duration, export_labels, e.flush_duration());
  AddHistogram(families.window_delay, export_labels, e.window_delay());
  Add(families.accepted, export_labels, static_cast<double>(e.samples_accepted()));
  for (const v1::Rejection& r : e.rejections()) {
    Labels l = export_labels;
    l.push_back({"reason", r.reason()});
    Add(families.rejected, std::move(l), static_cast<double>(r.count()));
  }
  Add(families.streams, export_labels, e.active_streams());
  for (int t = 0; t < e.figures_size(); ++t) AddTarget(families, export_labels, t, e.figures(t));
}

}  // namespace

SelfMetricsCollector::SelfMetricsCollector(const ExportRegistry* registry) : registry_(registry) {}

std::vector<MetricFamily> SelfMetricsCollector::Collect() const {
  std::vector<v1::ExportStatus> live;
  RetiredTotals retired;
  uint64_t started = 0;
  registry_->Snapshot(&live, &retired, &started);

  std::deque<MetricFamily> out;
  AddProcessFamilies(live.size(), started, SumTotals(live, std::move(retired)), &out);
  AddRecoveryFamilies(registry_->recovery(), &out);
  Add(&Family(&out, "rwexport_checkpoints_written_total",
              "Checkpoints of running exports' aggregation state written (--data_dir, "
              "--checkpoint_interval).",
              PromType::Counter),
      {}, static_cast<double>(registry_->checkpoints_written()));
  Add(&Family(&out, "rwexport_checkpoints_failed_total",
              "Checkpoints that could not be written (logged; tried again after the interval).",
              PromType::Counter),
      {}, static_cast<double>(registry_->checkpoints_failed()));
  const ExportFamilies families = MakeExportFamilies(&out);
  for (const v1::ExportStatus& e : live) AddExport(families, e);
  return std::vector<MetricFamily>(std::make_move_iterator(out.begin()),
                                   std::make_move_iterator(out.end()));
}

absl::StatusOr<std::unique_ptr<SelfMetricsServer>> SelfMetricsServer::Start(
    const std::string& listen, const ExportRegistry* registry) {
  std::unique_ptr<SelfMetricsServer> server(new SelfMetricsServer());
  MetricsHttpServer::Handlers handlers;
  handlers.collectables = {std::make_shared<SelfMetricsCollector>(registry),
                           std::make_shared<ProcessCollector>()};
  SelfMetricsServer* self = server.get();
  handlers.ready = [self] { return self->ready_.load(); };
  handlers.page = [self, registry] {
    StatusPageInput input;
    registry->Snapshot(&input.live, &input.retired, &input.exports_started);
    input.build = GetBuildInfo();
    input.process = ReadProcessFigures().value_or(ProcessFigures());
    input.ready = self->ready_.load();
    input.now = absl::Now();
    return RenderStatusPage(input);
  };
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> http =
      MetricsHttpServer::Start(listen, std::move(handlers));
  if (!http.ok()) return http.status();
  server->http_ = *std::move(http);
  return server;
}

}  // namespace rwexport
