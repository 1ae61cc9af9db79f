#pragma once

// Internals shared by the bus implementations: a one-thread worker with
// timers (the default executor and request deadlines) and the gate that
// gives Subscription its unsubscribe guarantee.

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

// Posts one delivery through `executor` into `gate`.
inline void Dispatch(const Executor& executor,
                     const std::shared_ptr<HandlerGate>& gate, Message msg) {
  executor([gate, msg = std::move(msg)]() mutable { gate->Deliver(std::move(msg)); });
}

}  // namespace switchboard::bus::internal
