#include "lib/bench/rss_sampler.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace rwexport {

RssSampler::RssSampler(ChildProcess* child, absl::Duration interval,
                       std::function<void(RssSample*)> export_figures)
    : child_(child),
      interval_(std::max(interval, absl::Milliseconds(10))),
      export_figures_(std::move(export_figures)) {
  thread_ = std::thread([this] { Run(); });
}

std::vector<RssSample> RssSampler::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  return std::move(samples_);
}

void RssSampler::Read(absl::Time start) {
  absl::StatusOr<uint64_t> rss = ProcessRssKb(child_->pid());
  if (!rss.ok()) return;
  RssSample sample{absl::Now() - start, *rss};
  absl::StatusOr<ProcessUsage> usage = child_->Usage();
  if (usage.ok()) sample.heap_in_use_kb = usage->heap_in_use_kb;
  if (export_figures_) export_figures_(&sample);
  samples_.push_back(sample);
}

void RssSampler::Run() {
  const absl::Time start = absl::Now();
  for (int64_t i = 0;; ++i) {
    Read(start);
    MutexLock lock(&mu_);
    const absl::Time next = start + interval_ * (i + 1);
    while (!stop_) {
      const absl::Duration left = next - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      cv_.WaitFor(&mu_, absl::ToChronoNanoseconds(left));
    }
    if (stop_) break;
  }
  Read(start);
}

RssProfile SummarizeRss(const std::vector<RssSample>& samples, absl::Duration duration, bool heap) {
  RssProfile p;
  p.samples = samples.size();
  if (samples.empty()) return p;
  auto kb_of = [heap](const RssSample& s) { return heap ? s.heap_in_use_kb : s.rss_kb; };
  auto at = [&](double fraction) {
    uint64_t kb = kb_of(samples.front());
    for (const RssSample& s : samples) {
      if (s.at > duration * fraction) break;
      kb = kb_of(s);
    }
    return kb;
  };
  p.at_10_kb = at(0.10);
  p.at_25_kb = at(0.25);
  p.at_50_kb = at(0.50);
  p.at_75_kb = at(0.75);
  p.at_100_kb = at(1.0);
  p.after_warmup_min_kb = p.after_warmup_max_kb = p.at_25_kb;
  uint64_t q2_sum = 0, q2_n = 0, q4_sum = 0, q4_n = 0;
  for (const RssSample& s : samples) {
    p.max_kb = std::max(p.max_kb, kb_of(s));
    if (s.at > duration / 4 && s.at <= duration) {
      p.after_warmup_min_kb = std::min(p.after_warmup_min_kb, kb_of(s));
      p.after_warmup_max_kb = std::max(p.after_warmup_max_kb, kb_of(s));
    }
    if (s.at > duration / 4 && s.at <= duration / 2) {
      q2_sum += kb_of(s);
      ++q2_n;
    }
    if (s.at > duration * 3 / 4 && s.at <= duration) {
      q4_sum += kb_of(s);
      ++q4_n;
    }
  }
  if (q2_n > 0 && q4_n > 0) {
    p.second_quarter_mean_kb = q2_sum / q2_n;
    p.last_quarter_mean_kb = q4_sum / q4_n;
    if (p.second_quarter_mean_kb > 0) {
      p.quarter_mean_growth_percent = (static_cast<double>(p.last_quarter_mean_kb) -
                                       static_cast<double>(p.second_quarter_mean_kb)) /
                                      static_cast<double>(p.second_quarter_mean_kb) * 100;
    }
  }
  if (p.at_25_kb > 0) {
    p.growth_percent = (static_cast<double>(p.at_100_kb) - static_cast<double>(p.at_25_kb)) /
                       static_cast<double>(p.at_25_kb) * 100;
  }
  return p;
}

}  // namespace rwexport
