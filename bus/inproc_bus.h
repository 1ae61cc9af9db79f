#pragma once

// NATS subject semantics inside one process: the bus of the standalone role
// and of multi-edge tests. Thread-safe; handlers run on their subscription's
// executor, never with the bus lock held.

#include <memory>

#include "bus/bus.h"

namespace switchboard::bus {

class InProcessBus : public Bus {
 public:
  struct Options {
    // Runs handlers and callbacks that were given no executor. Empty: one
    // worker thread owned by the bus.
    Executor default_executor;
    // Bytes of delivered messages that may be queued for (or held by,
    // Message::hold) their handlers; past it a message is dropped and
    // counted (Stats::dropped). 0: no bound.
    uint64_t max_pending_bytes = 64 << 20;
  };
  InProcessBus();
  explicit InProcessBus(Options options);
  // Completes pending requests with Cancelled, then stops the worker (tasks
  // already posted to it still run). Subscriptions may outlive the bus.
  ~InProcessBus() override;

  absl::Status Publish(std::string_view subject, std::string_view payload,
                       std::string_view reply_to = {}) override;
  absl::StatusOr<SubscriptionPtr> Subscribe(std::string_view subject_pattern, Handler handler,
                                            std::string_view queue_group = {},
                                            Executor executor = {}) override;
  void Request(std::string_view subject, std::string_view payload,
               std::chrono::milliseconds timeout, RequestCallback done,
               Executor executor = {}) override;
  bool connected() const override { return true; }
  // Only `dropped` and `pending_bytes` (the rest is not counted in process).
  Stats stats() const override;
  void SetStateCallback(StateCallback) override {}  // always connected

  struct Core;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace switchboard::bus
