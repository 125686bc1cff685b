// The delivery mark after a recovery: points at or before the mark are suppressed, points after
// it and at or before the re-send bound are taken out as re-sends, later ones stay.
#include "lib/export/delivery_mark.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/model/series.h"
#include "tests/testing/series.h"

namespace rwexport {
namespace {

using ::testing::ElementsAre;

// Two series with a point every second from 1000 to 4000 (values = timestamp / 1000).
PointBatch FourWindows() {
  PointBatch batch;
  batch.owner = std::make_shared<int>(7);
  for (const char* name : {"a", "b"}) {
    SeriesPoints s;
    s.series = TestSeries({{"__name__", name}});
    for (int64_t ts = 1000; ts <= 4000; ts += 1000) s.points.push_back({ts, ts / 1000.0});
    batch.series.push_back(std::move(s));
  }
  return batch;
}

std::vector<int64_t> Timestamps(const SeriesPoints& s) {
  std::vector<int64_t> out;
  for (const Point& p : s.points) out.push_back(p.timestamp_ms);
  return out;
}

TEST(DeliveryMarkTest, NotRecoveredTakesNothing) {
  DeliveryMark mark;
  PointBatch batch = FourWindows();
  EXPECT_EQ(mark.Filter(&batch), 4000);
  const PointBatch resend = mark.TakeResend(&batch);
  EXPECT_TRUE(resend.series.empty());
  EXPECT_EQ(batch.point_count(), 8u);
  EXPECT_EQ(mark.resent(), 0u);
}

TEST(DeliveryMarkTest, PointsAfterTheMarkUpToTheBoundAreResends) {
  DeliveryMark mark;
  mark.SuppressThrough(1000);
  mark.ResendThrough(3000);
  PointBatch batch = FourWindows();
  EXPECT_EQ(mark.Filter(&batch), 4000);
  EXPECT_EQ(mark.suppressed(), 2u);
  const PointBatch resend = mark.TakeResend(&batch);
  ASSERT_EQ(resend.series.size(), 2u);
  EXPECT_THAT(Timestamps(resend.series[0]), ElementsAre(2000, 3000));
  EXPECT_THAT(Timestamps(resend.series[1]), ElementsAre(2000, 3000));
  EXPECT_EQ(resend.series[1].series, batch.series[1].series);
  EXPECT_EQ(resend.owner, batch.owner);
  ASSERT_EQ(batch.series.size(), 2u);
  EXPECT_THAT(Timestamps(batch.series[0]), ElementsAre(4000));
  EXPECT_EQ(mark.resent(), 4u);

  // Past the bound: nothing more is a re-send.
  PointBatch later;
  later.series.push_back({TestSeries({{"__name__", "a"}}), {{5000, 5.0}}});
  EXPECT_TRUE(mark.TakeResend(&later).series.empty());
  EXPECT_EQ(later.point_count(), 1u);
}

// A target that took over the crashed process's queue files (through 3000) suppresses their
// windows from the replay too: the files deliver them.
TEST(DeliveryMarkTest, ATargetsRecoveredQueueRaisesItsSuppression) {
  DeliveryMark mark;
  mark.SuppressThrough(1000);
  mark.ResendThrough(DeliveryMark::kResendAll);
  PointBatch batch = FourWindows();
  uint64_t removed = 0;
  EXPECT_EQ(mark.Filter(&batch, &removed, 3000), 4000);
  EXPECT_EQ(removed, 6u);
  EXPECT_EQ(mark.suppressed(), 6u);
  const PointBatch resend = mark.TakeResend(&batch);
  ASSERT_EQ(resend.series.size(), 2u);
  EXPECT_THAT(Timestamps(resend.series[0]), ElementsAre(4000));
  // Another target without queue files keeps the mark's suppression.
  PointBatch other = FourWindows();
  mark.Filter(&other, &removed);
  EXPECT_EQ(removed, 2u);
}

TEST(DeliveryMarkTest, DuringTheReplayEverythingAfterTheMarkIsAResend) {
  DeliveryMark mark;
  mark.SuppressThrough(2000);
  mark.ResendThrough(DeliveryMark::kResendAll);
  PointBatch batch = FourWindows();
  mark.Filter(&batch);
  const PointBatch resend = mark.TakeResend(&batch);
  ASSERT_EQ(resend.series.size(), 2u);
  EXPECT_THAT(Timestamps(resend.series[0]), ElementsAre(3000, 4000));
  EXPECT_TRUE(batch.series.empty());
  EXPECT_EQ(mark.resent(), 4u);
}

}  // namespace
}  // namespace rwexport
