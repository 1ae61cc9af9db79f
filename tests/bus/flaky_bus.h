#pragma once

// A real InProcessBus that can be made to look down, for tests of what our
// code does while the bus is unavailable (the in-process bus itself is always
// connected).

#include <atomic>
#include <cstdint>

#include "bus/inproc_bus.h"

namespace switchboard::testing_support {

class FlakyBus : public bus::Bus {
 public:
  // Publishes fail with Unavailable and connected() is false.
  std::atomic<bool> down{false};
  // Publishes fail with Unavailable, connected() stays true.
  std::atomic<bool> fail_publish{false};
  // As NATS's max_payload: a larger publish fails with InvalidArgument. 0: none.
  std::atomic<uint64_t> payload_limit{0};

  absl::Status Publish(std::string_view subject, std::string_view payload,
                       std::string_view reply_to = {}) override {
    if (down || fail_publish) return absl::UnavailableError("bus down");
    if (payload_limit != 0 && payload.size() > payload_limit) {
      return absl::InvalidArgumentError("over max_payload");
    }
    return inner_.Publish(subject, payload, reply_to);
  }
  absl::StatusOr<bus::SubscriptionPtr> Subscribe(std::string_view pattern, bus::Handler handler,
                                                 std::string_view queue_group = {},
                                                 bus::Executor executor = {}) override {
    return inner_.Subscribe(pattern, std::move(handler), queue_group, std::move(executor));
  }
  void Request(std::string_view subject, std::string_view payload,
               std::chrono::milliseconds timeout, bus::RequestCallback done,
               bus::Executor executor = {}) override {
    inner_.Request(subject, payload, timeout, std::move(done), std::move(executor));
  }
  bool connected() const override { return !down; }
  uint64_t max_payload() const override { return payload_limit; }
  void SetStateCallback(bus::StateCallback) override {}

 private:
  bus::InProcessBus inner_;
};

}  // namespace switchboard::testing_support
