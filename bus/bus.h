#pragma once

// The message bus between edges and brokers: NATS core semantics (subjects
// with `*` / `>` wildcards, queue groups, request/reply), behind an interface
// with two implementations: InProcessBus (standalone mode, tests) and NatsBus
// (NATS.c against a nats-server). See bus/README.md.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace switchboard::bus {

struct Message {
  std::string subject;
  std::string payload;   // any bytes, NUL included
  std::string reply_to;  // empty when the sender expects no reply
  // A received message's bytes count against its bus's bound on queued
  // deliveries (Options::max_pending_bytes) until the last copy of this is
  // gone: a handler that hands the contents on to other threads keeps it with
  // them, so that they count until done. Null for a message not received.
  std::shared_ptr<const void> hold;
};

using Handler = std::function<void(Message)>;

// Runs a task somewhere: an edge shard (`[&rt, s](auto fn) { rt.Post(s, fn); }`),
// a thread pool, or inline. Handlers and request callbacks only ever run
// through an executor, never directly on a library thread. An empty Executor
// means "the bus's default executor" (one worker thread owned by the bus, or
// the one given in the bus's options).
using Executor = std::function<void(std::function<void()>)>;

// Runs the task inline, on the calling thread (for tests and trivial handlers).
inline void InlineExecutor(std::function<void()> fn) { fn(); }

// A live subscription. Destroying it unsubscribes.
//
// Guarantee: once Unsubscribe() (or the destructor) has returned, no call of
// the handler starts, and no call is still running on another thread (it
// waits for one that is). Called from inside the handler itself, it does not
// wait for that call (which would deadlock) but the handler is not called
// again. The handler object is destroyed by Unsubscribe(), or at the end of
// the handler call that unsubscribed itself. Tasks already queued on the
// executor become no-ops.
class Subscription {
 public:
  virtual ~Subscription() = default;
  virtual void Unsubscribe() = 0;
  virtual const std::string& subject() const = 0;
};
using SubscriptionPtr = std::unique_ptr<Subscription>;

enum class ConnectionState { kConnected, kDisconnected, kClosed };
using StateCallback = std::function<void(ConnectionState)>;
using RequestCallback = std::function<void(absl::StatusOr<Message>)>;

class Bus {
 public:
  virtual ~Bus() = default;

  // Publishes one message (at most once). `subject` must be a valid subject
  // without wildcards and the payload at most max_payload() bytes
  // (InvalidArgument otherwise, naming the limit). Unavailable while the bus
  // is not connected: nothing is buffered for later.
  virtual absl::Status Publish(std::string_view subject, std::string_view payload,
                               std::string_view reply_to = {}) = 0;

  // Subscribes to a pattern: `*` matches one token, `>` one or more trailing
  // tokens. With a queue group, each message goes to one member of every
  // group whose members match it; plain subscribers all get every message.
  // `handler` runs on `executor` (the bus default when empty), one call per
  // message. Subscriptions survive reconnects.
  virtual absl::StatusOr<SubscriptionPtr> Subscribe(std::string_view subject_pattern,
                                                    Handler handler,
                                                    std::string_view queue_group = {},
                                                    Executor executor = {}) = 0;

  // Sends a request and calls `done` exactly once, on `executor` (the bus
  // default when empty): with the first reply; DeadlineExceeded after
  // `timeout`; NotFound when nobody subscribes to `subject` ("no
  // responders"); Unavailable when not connected; Cancelled when the bus is
  // destroyed first.
  virtual void Request(std::string_view subject, std::string_view payload,
                       std::chrono::milliseconds timeout, RequestCallback done,
                       Executor executor = {}) = 0;

  virtual bool connected() const = 0;
  // Traffic since the start (metrics). Zero where an implementation keeps none.
  struct Stats {
    uint64_t messages_in = 0;
    uint64_t messages_out = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t reconnects = 0;
    uint64_t publish_errors = 0;  // Publish calls that failed (not connected, I/O error)
    // Received messages dropped: the deliveries queued (and held) were over
    // the bus's byte bound, this process being slower than its publishers.
    uint64_t dropped = 0;
    // Slow-consumer errors of the client library (its own queue over its
    // limit: it dropped messages).
    uint64_t slow_consumer = 0;
    // Publishes and requests refused: payload over max_payload().
    uint64_t too_large = 0;
    // Now (a gauge): bytes of received messages queued for or held by
    // their handlers, against the bus's bound.
    uint64_t pending_bytes = 0;
  };
  virtual Stats stats() const { return {}; }

  // The largest payload Publish and Request accept, in bytes (NATS: the
  // server's max_payload, read at connect). 0: no limit.
  virtual uint64_t max_payload() const { return 0; }

  // Called (on the bus default executor) on every change of the connection
  // state. Replaces any previous callback; an empty one clears it.
  virtual void SetStateCallback(StateCallback cb) = 0;
};
using BusPtr = std::unique_ptr<Bus>;

}  // namespace switchboard::bus
