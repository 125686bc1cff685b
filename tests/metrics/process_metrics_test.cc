#include "lib/metrics/process_metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <string>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/common/build_info.h"

namespace rwexport {
namespace {

TEST(ProcessMetricsTest, FiguresOfThisProcess) {
  absl::StatusOr<ProcessFigures> before = ReadProcessFigures();
  ASSERT_TRUE(before.ok()) << before.status();
  const int fd = open("/proc/self/stat", O_RDONLY);
  ASSERT_GE(fd, 0);
  absl::StatusOr<ProcessFigures> after = ReadProcessFigures();
  close(fd);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->open_fds, before->open_fds + 1);
  EXPECT_GE(before->open_fds, 3);  // stdin, stdout, stderr at least
  EXPECT_EQ(before->max_fds, static_cast<double>(sysconf(_SC_OPEN_MAX)));
  EXPECT_GT(before->resident_bytes, 1 << 20);
  EXPECT_GT(before->virtual_bytes, before->resident_bytes);
  EXPECT_GE(after->cpu_seconds, before->cpu_seconds);
  // Started within the last 10 minutes (the clock tick rounds it to 10 ms).
  const double now = absl::ToUnixMicros(absl::Now()) / 1e6;
  EXPECT_LE(before->start_time_seconds, now + 1);
  EXPECT_GT(before->start_time_seconds, now - 600);
}

TEST(ProcessMetricsTest, CollectsPrometheusNamesAndBuildInfo) {
  std::map<std::string, prometheus::MetricFamily> families;
  for (prometheus::MetricFamily& f : ProcessCollector().Collect()) families[f.name] = f;
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds", "rwexport_build_info"}) {
    ASSERT_EQ(families.count(name), 1u) << name;
    ASSERT_EQ(families[name].metric.size(), 1u) << name;
  }
  EXPECT_EQ(families["process_cpu_seconds_total"].type, prometheus::MetricType::Counter);
  const prometheus::ClientMetric& info = families["rwexport_build_info"].metric[0];
  EXPECT_EQ(info.gauge.value, 1);
  ASSERT_EQ(info.label.size(), 3u);
  EXPECT_EQ(info.label[0].name, "version");
  EXPECT_EQ(info.label[0].value, GetBuildInfo().version);
  EXPECT_EQ(info.label[1].name, "revision");
  EXPECT_EQ(info.label[1].value, GetBuildInfo().revision);
  EXPECT_EQ(info.label[2].name, "build_date");
}

}  // namespace
}  // namespace rwexport
