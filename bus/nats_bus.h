#pragma once

// The bus on NATS.c. NATS callbacks run on the library's threads: they only
// copy the message out and post it to the subscription's executor.

#include <memory>
#include <string>
#include <vector>

#include "bus/bus.h"

// NATS.c's connection type, as nats/nats.h declares it.
typedef struct __natsConnection natsConnection;

namespace switchboard::bus {

class NatsBus : public Bus {
 public:
  struct Options {
    std::vector<std::string> urls = {"nats://127.0.0.1:4222"};
    std::string name = "switchboard";
    std::chrono::milliseconds reconnect_wait{500};
    int max_reconnect = -1;  // -1: forever
    std::chrono::milliseconds connect_timeout{2000};
    // The server does not send this connection's own publishes back to its
    // subscriptions (an edge relaying its clients' broadcasts has already
    // delivered them locally).
    bool no_echo = false;
    // Each publish is written at once instead of by NATS.c's flusher thread,
    // which batches for up to 1 ms: for request/reply on a client's critical
    // path (polling through another edge), not for high-rate fan-out.
    bool send_asap = false;
    // On destruction: drain (deliver what is in flight, flush publishes) for
    // at most this long, then close.
    std::chrono::milliseconds drain_timeout{2000};
    // Runs handlers and callbacks that were given no executor. Empty: one
    // worker thread owned by the bus.
    Executor default_executor;
    // Bytes of received messages that may be queued for (or held by,
    // Message::hold) their handlers; past it a message is dropped uncopied
    // and counted (Stats::dropped). Also NATS.c's per-subscription pending
    // byte limit (at least twice max_payload; past it NATS.c drops:
    // Stats::slow_consumer). 0: no bound.
    uint64_t max_pending_bytes = 64 << 20;
  };

  // Connects (Unavailable when no server answers).
  static absl::StatusOr<std::unique_ptr<NatsBus>> Connect(Options options);
  ~NatsBus() override;

  // Unavailable while disconnected or reconnecting: nothing is buffered for
  // later (at-most-once; cross-edge traffic pauses while NATS is down).
  absl::Status Publish(std::string_view subject, std::string_view payload,
                       std::string_view reply_to = {}) override;
  // Plain and queue subscriptions are re-sent by NATS.c after a reconnect.
  absl::StatusOr<SubscriptionPtr> Subscribe(std::string_view subject_pattern, Handler handler,
                                            std::string_view queue_group = {},
                                            Executor executor = {}) override;
  // Replies come to one wildcard inbox subscription (`_INBOX.<nuid>.*`) per
  // connection; "no responders" (server status 503) is NotFound.
  void Request(std::string_view subject, std::string_view payload,
               std::chrono::milliseconds timeout, RequestCallback done,
               Executor executor = {}) override;
  bool connected() const override;
  // From natsConnection_GetStats, plus failed publishes, drops, slow
  // consumer errors and publishes over max_payload.
  Stats stats() const override;
  // The server's max_payload (INFO), read at connect and reconnect.
  uint64_t max_payload() const override;
  void SetStateCallback(StateCallback cb) override;

  // The NATS.c connection, for JetStream (bus/jetstream.h) on the same
  // connection. It stays valid (closed once the bus is destroyed: calls then
  // fail) while the returned pointer lives.
  std::shared_ptr<natsConnection> native_connection() const;

  struct Core;

 private:
  explicit NatsBus(std::shared_ptr<Core> core);
  // InvalidArgument (counted) for a payload over max_payload().
  absl::Status CheckSize(std::string_view payload) const;
  std::shared_ptr<Core> core_;
};

}  // namespace switchboard::bus
