#pragma once

// Pipelined JetStream publishing: many publishes in flight, each completion
// (the stream sequence, or an error) delivered in publish order.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bus/bus.h"
#include "bus/jetstream.h"

namespace switchboard::bus {

class AsyncPublisher {
 public:
  struct Options {
    // Publishes whose completion has not run yet; past it Publish refuses
    // (ResourceExhausted) rather than queue without bound or block.
    size_t max_pending = 1024;
    // A publish without an ack after this long completes with
    // DeadlineExceeded.
    std::chrono::milliseconds ack_timeout{5000};
    // Runs the completions, in publish order (give a serial one). Empty: one
    // worker thread owned by the publisher.
    Executor executor;
  };
  // The stream sequence of the message, or why it was not stored.
  using Done = std::function<void(absl::StatusOr<uint64_t>)>;

  // Its own JetStream context on js's connection (async acks are per
  // context).
  static absl::StatusOr<std::unique_ptr<AsyncPublisher>> Create(const JetStream& js,
                                                                Options options);
  // Waits (at most ack_timeout) for the acks in flight; the completions of
  // publishes still unanswered then run with Cancelled.
  ~AsyncPublisher();
  AsyncPublisher(const AsyncPublisher&) = delete;
  AsyncPublisher& operator=(const AsyncPublisher&) = delete;

  // Sends without waiting. OK: `done` will run exactly once, after the
  // completions of every earlier publish. Otherwise `done` never runs:
  // ResourceExhausted when max_pending completions are outstanding,
  // Unavailable / InvalidArgument as NATS.c says.
  absl::Status Publish(std::string_view subject, std::string_view payload, Done done);

  // Sends to the stream without asking for an ack, in order with Publish
  // (same connection, same lock): for writes whose outcome nobody waits
  // for, which then cost neither side an ack message. Not bounded by
  // max_pending (nothing is kept for it); an error is only what NATS.c says
  // at once. The destructor flushes the connection, so that these reach the
  // server before it closes.
  absl::Status PublishUnacknowledged(std::string_view subject, std::string_view payload);

  // Waits until the completion of every publish made so far has returned;
  // DeadlineExceeded after `timeout`. Not from a completion (it would wait
  // for itself).
  absl::Status Flush(std::chrono::milliseconds timeout);

  // Publishes whose completion has not returned yet.
  size_t pending() const;

  struct Core;

 private:
  explicit AsyncPublisher(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace switchboard::bus
