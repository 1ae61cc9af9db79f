#pragma once

// Live reading of a stream in order: an ordered push consumer that hands
// each message with its stream sequence to a callback.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bus/jetstream.h"
#include "bus/js_range.h"

namespace switchboard::bus {

class OrderedConsumer {
 public:
  struct Options {
    std::string stream;
    // One subject, or the stream's own pattern for all of it.
    std::string subject;
    // 0: only messages stored from now on; else from this sequence (a
    // trimmed start begins at the first message still there).
    uint64_t start_seq = 0;
    // The server's idle heartbeat; two missed (a restarted server lost the
    // consumer) and NATS.c re-creates it from the sequence after the last
    // one delivered. It does the same right after a reconnect.
    std::chrono::milliseconds heartbeat{1000};
  };
  // Runs on a NATS.c thread, one call at a time, in stream order, never
  // twice for a sequence: copy what it needs and post the work elsewhere
  // (STYLE: never touch edge state from a NATS thread). A gap in the
  // sequences means those messages were removed by the stream's limits
  // before they were delivered.
  using Callback = std::function<void(StoredMessage)>;

  static absl::StatusOr<std::unique_ptr<OrderedConsumer>> Start(JetStream& js, Options options,
                                                                Callback callback);
  ~OrderedConsumer();  // Stop()
  OrderedConsumer(const OrderedConsumer&) = delete;
  OrderedConsumer& operator=(const OrderedConsumer&) = delete;

  // Deletes the consumer. Once it returns no callback starts, and none is
  // running on another thread; called from the callback itself it does not
  // wait for that call. Idempotent.
  void Stop();

  // The stream sequence of the last message handed to the callback (0:
  // none yet).
  uint64_t last_seq() const;

  struct Core;

 private:
  OrderedConsumer(std::shared_ptr<Core> core, natsSubscription* sub);
  std::shared_ptr<Core> core_;
  natsSubscription* sub_;  // owned; destroyed by Stop()
};

}  // namespace switchboard::bus
