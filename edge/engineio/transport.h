#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>

#include "edge/engineio/packet.h"

namespace switchboard::eio {

class Transport;

// What a transport tells the session it carries (Session implements it).
// Called on the session's shard.
class TransportListener {
 public:
  // One encoded packet from the client (a WebSocket message: the type
  // character and data, or raw bytes when `binary`).
  virtual void OnTransportMessage(Transport& from, std::string_view data, bool binary) = 0;
  // One decoded packet from the client (a long-polling payload holds several).
  virtual void OnTransportPacket(Transport& from, Packet&& packet) = 0;
  // The transport failed ("transport error", "transport close", "parse
  // error") or, once closed by the session, is done (its last output sent).
  // After this it delivers nothing more.
  virtual void OnTransportClosed(Transport& from, std::string_view reason) = 0;
  // A message over maxHttpBufferSize was refused (the transport then fails).
  virtual void OnTransportMessageTooBig() = 0;
  // Whether the session still takes packets (a payload stops at a close).
  virtual bool AcceptsPackets() const = 0;

 protected:
  ~TransportListener() = default;
};

// How an Engine.IO session reaches its client: long-polling and WebSocket
// (edge/engineio/transports/), peers behind this interface, as engine.io's
// transport.ts. The session holds one active transport and, while upgrading,
// a probe; it never knows which kind it holds. Lives on the session's shard.
class Transport {
 public:
  virtual ~Transport() = default;

  // The name the client uses in `transport=`: "polling", "websocket".
  virtual std::string_view name() const = 0;
  // Starts delivering to `listener`, held until the transport is closed,
  // fails or is handed over.
  virtual void Attach(std::shared_ptr<TransportListener> listener) = 0;

  // Queues the frames of one packet, in order (the session has checked the
  // queue bound). One call per delivery: the hot path.
  virtual void Write(const Frame* frames, size_t count) = 0;
  void Write(const Frame& frame) { Write(&frame, 1); }
  // Whether a volatile packet goes out now (else it is dropped): a long poll
  // is waiting, or less than `volatile_drop_bytes` are queued.
  virtual bool TakesVolatile(size_t volatile_drop_bytes) const = 0;
  // Bytes queued and not yet handed to the kernel (or to a poll).
  size_t queued_bytes() const { return queued_bytes_; }
  // Asks the CPU for what Write() reads: the object's first two cache lines,
  // where a transport keeps the fields its Write() needs (Namespace::
  // DeliverLocal prefetches a batch of recipients).
  void Prefetch() const {
    __builtin_prefetch(this);
    __builtin_prefetch(reinterpret_cast<const char*>(this) + 64);
  }

  // True: the session is moving to another transport (an upgrade probe was
  // answered): output waits for it, and what waits for output is let go (a
  // long poll is answered at once). False: the upgrade failed, output goes on.
  virtual void SetPaused(bool paused) { (void)paused; }
  // The upgrade is complete: gives what this transport has not sent yet to
  // `next`, in order, answers what is pending (a long poll gets a noop) and
  // lets the listener go.
  virtual void HandOver(Transport& next) = 0;

  enum class CloseMode {
    kFlush,   // what is queued goes out first (a server-side close)
    kAbort,   // queued output is dropped (a failure, a timeout)
    kAnswer,  // the client asked for the close: acknowledged, nothing else
  };
  // Ends the session's output with the close (Engine.IO close packet or
  // WebSocket close frame, as the kind speaks). True: done, the session may
  // finish now; false: it ends later (a long poll still has to carry the close
  // packet) and says so with OnTransportClosed.
  virtual bool Close(CloseMode mode) = 0;
  // The session is finished: the transport lets go of everything now (a
  // pending long poll is answered, a request still arriving is cut off), then
  // closes its connection once what is queued is out.
  virtual void Discard() = 0;

 protected:
  size_t queued_bytes_ = 0;
};

// While one lives on the calling thread, a transport with nothing queued may
// hand a write to the kernel right away instead of at the end of the event
// loop's turn: for a delivery with no other delivery queued behind it, whose
// frames have nothing to coalesce with (Namespace::DeliverLocal). Scopes nest.
class WriteThrough {
 public:
  WriteThrough() { ++depth_; }
  ~WriteThrough() {
    if (--depth_ == 0 && at_end_ != nullptr) std::exchange(at_end_, nullptr)();
  }
  WriteThrough(const WriteThrough&) = delete;
  WriteThrough& operator=(const WriteThrough&) = delete;

  static bool active() { return depth_ > 0; }
  // Runs `release` when the outermost scope of this thread ends (a transport
  // drops what it kept for the scope's writes); one function per thread.
  static void AtEnd(void (*release)()) { at_end_ = release; }

 private:
  static inline thread_local int depth_ = 0;
  static inline thread_local void (*at_end_)() = nullptr;
};

}  // namespace switchboard::eio
