#pragma once

// The table of a bus's requests awaiting a reply, shared by the bus
// implementations: each request is registered under a new id (the tail of
// its reply subject) with a deadline on the bus's worker; whichever of
// reply, failure, deadline or CancelAll comes first takes it and completes
// it, once, on its executor.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bus/bus.h"
#include "bus/worker.h"

namespace switchboard::bus::internal {

// Owned through a shared_ptr: deadline timers hold only a weak_ptr to it.
class PendingRequests : public std::enable_shared_from_this<PendingRequests> {
 public:
  struct Pending {
    RequestCallback done;
    Executor executor;
    uint64_t timer = 0;
  };

  explicit PendingRequests(std::shared_ptr<Worker> worker) : worker_(std::move(worker)) {}

  // Registers `p` under a new id and arms its deadline: after `timeout` it
  // completes with DeadlineExceeded unless taken first. Returns the id.
  uint64_t Add(Pending p, std::chrono::milliseconds timeout);
  // Takes request `id` (cancelling its deadline) and completes it with
  // `result`; nothing if it is gone (late reply: timed out or cancelled).
  void Finish(uint64_t id, absl::StatusOr<Message> result);
  // Completes every pending request with `status` (on bus destruction).
  void CancelAll(const absl::Status& status);

  // Calls p.done with `result` through p.executor.
  static void Complete(Pending p, absl::StatusOr<Message> result);

 private:
  // Removes and returns request `id`, if still there.
  std::optional<Pending> Take(uint64_t id);

  std::shared_ptr<Worker> worker_;
  std::mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::bus::internal
