#pragma once

#include <absl/base/thread_annotations.h>

#include <deque>
#include <mutex>

#include "edge/recovery/recovery_log.h"

namespace switchboard::recovery {

// The standalone log: entries in a deque, offsets contiguous, so a restore
// finds its first entry by index (offset - first offset) and reads only the
// entries after it. Trimmed on append: older than `max_age`, or past
// `max_bytes` (oldest first).
class MemoryLog final : public RecoveryLog {
 public:
  using Clock = std::chrono::steady_clock;
  MemoryLog(std::chrono::milliseconds max_age, size_t max_bytes)
      : max_age_(max_age), max_bytes_(max_bytes) {}

  absl::StatusOr<LogEntryPtr> Append(sio::BroadcastTarget target, const Encode& encode,
                                     uint64_t given = 0) override;
  void ReadAfter(uint64_t after, const Match& match, ReadDone done) override;
  LogStats Stats() const override;

  // Begins after `last` (a cluster's stream's end when this edge started):
  // nothing before it is held, the next given offset is last + 1.
  void StartAfter(uint64_t last);

  // Tests: appends as if at `now`.
  absl::StatusOr<LogEntryPtr> AppendAtForTest(sio::BroadcastTarget target, const Encode& encode,
                                              Clock::time_point now);
  // Trims what is older than max_age at `now`.
  void TrimForTest(Clock::time_point now);

 private:
  absl::StatusOr<LogEntryPtr> AppendAt(sio::BroadcastTarget target, const Encode& encode,
                                       Clock::time_point now, uint64_t given = 0);
  void Trim(Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::chrono::milliseconds max_age_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::deque<LogEntryPtr> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_offset_ ABSL_GUARDED_BY(mu_) = 0;
  // Every offset up to this one is gone.
  uint64_t trimmed_through_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace switchboard::recovery
