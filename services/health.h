#pragma once

// Readiness of a switchboard process: what /readyz (services/admin_server.h)
// and the gRPC health service report.
//
// Ready = the bus is connected, the process is not draining, and its resident
// memory is under the threshold (when one is set). Liveness (/healthz) is just
// "the process answers".
//
// Thread-safety: every method may be called from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace switchboard::bus {
class Bus;
}

namespace switchboard::services {

class Health {
 public:
  // `bus` may be null (no bus: always connected); it must outlive this.
  // `memory_limit_bytes` 0: no memory check.
  Health(const bus::Bus* bus, uint64_t memory_limit_bytes);
  ~Health();
  Health(const Health&) = delete;
  Health& operator=(const Health&) = delete;

  // OK when ready, else Unavailable with the first reason ("draining", "bus
  // disconnected", "memory N bytes over the limit M").
  absl::Status Check() const;
  bool ready() const { return Check().ok(); }

  // From now on not ready (irreversible: a draining process goes away).
  void SetDraining();
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

  // Calls `listener(ready)` now and whenever readiness changes (checked every
  // `period` on a thread of its own, and at once on SetDraining). Listeners
  // are added before anything can change (at start-up).
  void Watch(std::function<void(bool)> listener,
             std::chrono::milliseconds period = std::chrono::milliseconds(500));

  // Stops the watch thread and drops the listeners (before what they touch
  // goes away). Idempotent.
  void StopWatch();

  // Resident set size of this process, in bytes (0 when unknown).
  static uint64_t ResidentBytes();

 private:
  void Notify();
  void Loop(std::chrono::milliseconds period);

  const bus::Bus* bus_;
  const uint64_t memory_limit_bytes_;
  std::atomic<bool> draining_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int last_ = -1;  // -1: not reported yet
  std::vector<std::function<void(bool)>> listeners_;
  std::thread thread_;
};

}  // namespace switchboard::services
