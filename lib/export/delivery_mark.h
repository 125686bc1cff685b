// One export's delivery mark (issue 12): the window end through which every target has
// delivered (or dropped) every point of the export, recorded in the data dir as it advances,
// and after a recovery the suppression of the points that the crashed process had delivered.
//
// Why: Prometheus refuses a whole remote-write request (400, nothing stored) when one of its
// samples is older than its series' newest stored sample, and a recovered export rebuilds its
// windows from the write-ahead log from the start. Points of windows at or before the
// recovered mark are rebuilt (counter totals need them) but not sent again. Points after it
// and at or before the re-send bound (what the crashed process's clock could have reached)
// may have been delivered in the last moments before the crash (the mark is recorded up to a
// tick after a delivery): they are handed to the sender as re-sends (BatchKind::
// kRecoveryResend: one window per request, a 400 "already stored" counts as sent).
//
// The mark: each batch handed to the sender raises the highest enqueued timestamp (after it is
// enqueued); when no target has points queued, or (durable queues, with a data dir) every
// queued point is in its target's queue files, every point up to that timestamp is delivered,
// dropped or durably queued, so the mark may advance to it. So the mark means "every point up
// to here was delivered or is in a queue file" (what a checkpoint may rely on). A target with
// points that are not durable (no durable queue, or a queue file that could not be written)
// holds the mark back (it then lags, it is never ahead). At recovery the queue files are
// delivered first, and each target suppresses the windows at or before max(mark, the newest
// timestamp of its queue files) from the replay.
//
// Thread-safe.
#ifndef RWEXPORT_LIB_EXPORT_DELIVERY_MARK_H_
#define RWEXPORT_LIB_EXPORT_DELIVERY_MARK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>

#include "lib/model/series.h"

namespace rwexport {

class DeliveryMark {
 public:
  // Recovery: the crashed process had delivered every point at or before `ms`.
  void SuppressThrough(int64_t ms);
  // Recovery: the crashed process may have delivered points at or before `ms` (after the
  // suppression mark); kResendAll while the bound is not known yet (during the replay).
  static constexpr int64_t kResendAll = std::numeric_limits<int64_t>::max();
  void ResendThrough(int64_t ms);

  // For the aggregator's sink: removes the points at or before the suppression mark from
  // `batch` (counted in suppressed(), and in `*removed` if given). Returns the highest
  // timestamp the batch had (0: none).
  // `also_through`: a higher suppression bound for this batch (a target's recovered queue).
  int64_t Filter(PointBatch* batch, uint64_t* removed = nullptr, int64_t also_through = 0);
  // For the sink, after Filter: moves the points at or before the re-send bound out of
  // `batch` (which keeps the later ones) into the returned batch (no series when none; the
  // owner is shared). Counted in resent().
  PointBatch TakeResend(PointBatch* batch);
  // The sink enqueued (or suppressed) a batch whose highest timestamp was `max_ts_ms`.
  void Enqueued(int64_t max_ts_ms);

  // The mark to record, if it can advance past the recorded one: `nothing_queued` says
  // whether every target's queued points (if any) are durable (asked after the highest
  // enqueued timestamp is read).
  std::optional<int64_t> Next(const std::function<bool()>& nothing_queued) const;
  // The mark was recorded.
  void Recorded(int64_t ms);

  int64_t recorded() const { return recorded_.load(); }
  int64_t suppress_through() const { return suppress_through_.load(); }
  uint64_t suppressed() const { return suppressed_.load(); }
  int64_t resend_through() const { return resend_through_.load(); }
  uint64_t resent() const { return resent_.load(); }

 private:
  std::atomic<int64_t> suppress_through_{0};
  std::atomic<uint64_t> suppressed_{0};
  // 0: no re-send (not recovered).
  std::atomic<int64_t> resend_through_{0};
  std::atomic<uint64_t> resent_{0};
  std::atomic<int64_t> enqueued_max_{0};
  std::atomic<int64_t> recorded_{0};
};

}  // namespace rwexport

#endif  // RWEXPORT_LIB_EXPORT_DELIVERY_MARK_H_
