#pragma once

// Internals shared by the bus implementations: a one-thread worker with
// timers (the default executor and request deadlines) and the gate that
// gives Subscription its unsubscribe guarantee.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "bus/bus.h"

namespace switchboard::bus::internal {

// One thread running posted tasks in order, and timers.
class Worker {
 public:
  Worker();
  ~Worker();  // Shutdown()
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Dropped (destroyed unrun) after Shutdown().
  void Post(std::function<void()> fn);
  // Runs fn after `delay` unless cancelled; returns an id for Cancel().
  uint64_t PostAfter(std::chrono::milliseconds delay, std::function<void()> fn);
  void Cancel(uint64_t id);
  // Runs the tasks already posted, drops the timers, joins. Idempotent.
  void Shutdown();

  // An Executor posting to `worker` while it is alive.
  static Executor ExecutorFor(const std::shared_ptr<Worker>& worker);

 private:
  void Run();
  using Clock = std::chrono::steady_clock;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  // (deadline, id) -> task
  std::map<std::pair<Clock::time_point, uint64_t>, std::function<void()>> timers_
      ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Clock::time_point> timer_ids_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::thread thread_;
};

// Owns a subscription's handler and decides whether a delivery may run.
class HandlerGate {
 public:
  explicit HandlerGate(Handler handler) : handler_(std::move(handler)) {}
  // Calls the handler unless the gate is closed.
  void Deliver(Message msg);
  // After it returns no call starts, and none runs on another thread.
  void Close();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  Handler handler_;  // written only when closed and idle
};

// The bytes of received messages not done with yet (queued for their
// handler, or held on by it: Message::hold), against a bound. A message that
// would go over it is dropped and counted, rather than queued without bound
// behind a slow consumer. Thread-safe.
class DeliveryBudget : public std::enable_shared_from_this<DeliveryBudget> {
 public:
  // 0: no bound (still counted).
  explicit DeliveryBudget(uint64_t max_bytes) : max_bytes_(max_bytes) {}
  // A hold on `bytes` (released when its last copy goes), or null when over
  // the bound (counted as dropped). A message larger than the whole bound
  // passes when nothing else is held, so that every size can get through.
  std::shared_ptr<const void> TryReserve(uint64_t bytes);
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t held_bytes() const { return held_.load(std::memory_order_relaxed); }

 private:
  struct Hold;
  const uint64_t max_bytes_;
  std::atomic<uint64_t> held_{0};
  std::atomic<uint64_t> dropped_{0};
};

// Posts one delivery through `executor` into `gate`, its bytes held against
// `budget` (none: unbounded) until the handler is done with it.
inline void Dispatch(const Executor& executor, const std::shared_ptr<HandlerGate>& gate,
                     Message msg, DeliveryBudget* budget = nullptr) {
  if (budget != nullptr && !msg.hold) {
    msg.hold = budget->TryReserve(msg.payload.size() + msg.subject.size());
    if (!msg.hold) return;
  }
  executor([gate, msg = std::move(msg)]() mutable { gate->Deliver(std::move(msg)); });
}

}  // namespace switchboard::bus::internal
