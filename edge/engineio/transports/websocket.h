#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/inlined_vector.h"
#include "edge/engineio/packet.h"
#include "edge/engineio/transport.h"
#include "edge/engineio/websocket_frame.h"
#include "edge/readiness_poller.h"
#include "edge/uring_sends.h"

namespace switchboard::eio {

// The WebSocket transport of one session, on the bare TCP socket (RFC 6455
// framing of our own, edge/engineio/websocket_frame.h): the per-connection
// state is a few hundred bytes, and nothing is buffered while idle.
//
// The socket is watched by the shard's ReadinessPoller (registered once,
// edge-triggered), not by a pending asio operation. Reads go into a
// per-thread buffer; only the tail of an incomplete frame is kept. Writes
// are gathered: frames queued in one turn of the shard's event loop (or
// while the socket is full) leave in one sendmsg() of their headers and their
// shared payload bytes, up to kBatch frames at a time. Inside a WriteThrough
// scope (edge/engineio/transport.h) a write to a transport with nothing queued
// goes to the kernel at once instead.
class WebSocketTransport final : public Transport,
                                 public std::enable_shared_from_this<WebSocketTransport>,
                                 private edge::ReadinessPoller::Listener {
 public:
  // `socket` has just received the opening handshake; `upgrade_response` is
  // the 101 answer (ws::UpgradeResponse), sent first. Output that makes no
  // progress for `write_timeout` (a client that stopped reading, before or
  // after our close frame) closes the connection.
  WebSocketTransport(boost::asio::ip::tcp::socket socket, std::string upgrade_response,
                     size_t max_message_bytes,
                     std::chrono::milliseconds write_timeout = std::chrono::seconds(30));
  ~WebSocketTransport();

  // Transport
  std::string_view name() const override { return "websocket"; }
  // The first call starts reading.
  void Attach(std::shared_ptr<TransportListener> listener) override;
  // In a WriteThrough scope with nothing queued: one send() (sendmsg() for
  // several frames) right away, and only what the kernel does not take is
  // queued.
  void Write(const Frame* frames, size_t count) override;
  using Transport::Write;
  bool TakesVolatile(size_t volatile_drop_bytes) const override {
    return queued_bytes_ < volatile_drop_bytes;
  }
  // Nothing to hand over (a WebSocket is the end of an upgrade): closes.
  void HandOver(Transport& next) override;
  // kFlush sends what is queued first; otherwise only the frame already
  // begun is finished. Done at once (the close frame and the linger are the
  // transport's own business).
  bool Close(CloseMode mode) override;
  void Discard() override { CloseConnection(true); }

  // Sends what is queued (all of it, or only the frame already begun when
  // `flush` is false), then a close frame, then closes the connection.
  // Messages no longer reach the listener.
  void CloseConnection(bool flush = true);

  // The outermost WriteThrough scope of the thread ended: submits the sends
  // queued on the thread's io_uring, then drops the frame kept for the
  // scope's writes.
  static void ReleaseWire();

  // Since the start, all transports of the process: connections closed
  // because their output stalled past the write timeout, and connections
  // refused because the shard's poller could not be made (out of descriptors).
  static uint64_t write_timeouts() { return write_timeouts_.load(std::memory_order_relaxed); }
  static uint64_t descriptor_failures() {
    return descriptor_failures_.load(std::memory_order_relaxed);
  }

 private:
  static constexpr uint8_t kRaw = 0xFF;  // bytes sent as they are (the 101)
  static constexpr size_t kBatch = 32;   // frames per sendmsg

  struct Outgoing {
    std::shared_ptr<const std::string> bytes;
    uint8_t opcode = kRaw;
  };

  // Queues `out`; it is written at the end of this turn of the event loop.
  void Enqueue(Outgoing out);
  static void FlushScheduled();
  // Write() in a WriteThrough scope with nothing queued: sends now (or
  // queues the send on the thread's io_uring, edge/uring_sends.h, submitted
  // at the end of the scope), queues the rest.
  void WriteNow(const Frame* frames, size_t count);
  // The io_uring send of WriteNow is done: `result` bytes of it went out
  // (or -errno); the rest is queued.
  static void OnUringSent(const edge::UringSends::Send& send, int result);
  // A send on the ring is done with `result` (bytes, or -errno): false when
  // the transport is closed (or now lost); else `*sent` is what the kernel
  // took (0 for -EAGAIN).
  bool SettleUringSend(int result, size_t* sent);
  // Queues `frame`, of which the kernel took `sent` bytes (header
  // included), in front of anything queued behind it.
  void QueueUnsent(const Frame& frame, size_t sent);
  // The scheduled flush of a transport with nothing on the io_uring: its
  // queue in one sendmsg queued on the ring, when the queue fits in one
  // (kRingFrames); false if it does not (the caller sends it itself).
  bool FlushOnRing(edge::UringSends& uring);
  static void OnUringFlushed(const edge::UringSends::Send& send, int result);
  static constexpr size_t kRingFrames = 8;
  // Points iov at the queued frames from the head on (the first may be
  // partly sent), at most `max_frames`, their headers encoded into
  // `headers`: the number of buffers; `*bytes` their total size, `*all`
  // whether they reach the end of the queue.
  size_t GatherQueued(iovec* iov, uint8_t (*headers)[ws::kMaxServerHeader], size_t max_frames,
                      size_t* bytes, bool* all) const;
  // The kernel took `sent` bytes from the head of the queue.
  void RetireSent(size_t sent);
  void TrySend();
  void WaitWrite();
  // Drops the queued frames not begun yet.
  void DropUnsent();
  void AfterCloseSent();
  // The socket just filled up: output must make progress within the write
  // timeout from now.
  void StartWriteDeadline();
  // (Re)starts the timer's wait for `at`.
  void ArmTimer(std::chrono::steady_clock::time_point at);
  void OnTimer();

  // Registers the socket with the poller (once); it then keeps itself alive
  // until the socket is closed.
  void Watch();
  void OnReady(uint32_t events) override;
  void OnRead(char* data, int result) override;
  void OnShutdown() override;
  void OnReadable();
  // recv() in a loop, a few times at most (then again in a later turn).
  void ReadOnYourOwn();
  // One read's outcome (`result` bytes in `data`, 0 at the end, or -errno):
  // true when the socket may hold more (the read filled `capacity`).
  bool TakeRead(char* data, ssize_t result, size_t capacity);
  // Parses and handles the frames in data[0, size).
  void Consume(char* data, size_t size);
  bool HandleFrame(const ws::ClientFrame& frame);
  void Deliver(std::string_view message, bool binary);
  // Fails the connection with a close frame carrying `code`.
  void FailWith(uint16_t code, std::string_view reason);
  // The connection is gone (error, EOF): tells the listener, closes.
  void Lost(std::string_view reason);
  void NotifyClosed(std::string_view reason);
  void CloseSocket();

  // The small fields first: Write() reads them, and they share the object's
  // first cache lines with the vtable pointer (Transport::Prefetch). A
  // connection holds them for its whole life.
  int fd_;
  uint32_t out_head_ = 0;  // first entry not fully sent
  uint32_t write_timeout_ms_;
  // A fragmented message's opcode (text or binary; 0: none), whether a send
  // is on the io_uring, not done yet, and whether a recv is queued on the
  // poller's batch (edge/readiness_poller.h): one byte for all three.
  uint8_t message_opcode_ : 4 = 0;
  uint8_t uring_pending_ : 1 = 0;
  uint8_t read_queued_ : 1 = 0;
  bool watched_ = false;
  bool reading_ = false;        // reads wanted (attached, or closing)
  bool readable_ = false;       // input may be waiting (edge-triggered)
  bool read_posted_ = false;    // a read continues in a later turn
  bool write_waiting_ = false;  // the socket was full: wait for EPOLLOUT
  bool flush_scheduled_ = false;
  bool closing_ = false;      // close frame queued: nothing more is sent
  bool close_sent_ = false;   // ... and handed to the kernel
  bool peer_closed_ = false;  // the client's close frame arrived
  bool socket_closed_ = false;
  bool timer_waiting_ = false;  // a wait on timer_ is pending
  // One entry inline: the queue is empty while a connection keeps up, and a
  // burst grows it on the heap (given back once drained).
  static constexpr size_t kInlineOut = 1;
  absl::InlinedVector<Outgoing, kInlineOut> out_;
  size_t out_offset_ = 0;  // bytes of out_[out_head_] already sent
  edge::ReadinessPoller& poller_;
  size_t max_message_;
  std::shared_ptr<TransportListener> listener_;
  // Set while the poller watches the socket: the poller holds a plain pointer.
  std::shared_ptr<WebSocketTransport> self_;
  // Input held between reads: only while a frame or a fragmented message is
  // incomplete (an idle connection holds none).
  struct PartialInput {
    std::string frame_tail;  // an incomplete frame's bytes so far
    std::string message;     // the fragments of a message so far
  };
  PartialInput& Partial();
  void ReleasePartial();
  std::unique_ptr<PartialInput> partial_;
  // Only while output is stalled (the write deadline) or after our close frame
  // (the linger): a connection that keeps up holds none.
  struct Timer {
    explicit Timer(const boost::asio::any_io_executor& executor) : timer(executor) {}
    boost::asio::steady_timer timer;
    std::chrono::steady_clock::time_point stalled_since;
  };
  std::unique_ptr<Timer> timer_;
  static inline std::atomic<uint64_t> write_timeouts_{0};
  static inline std::atomic<uint64_t> descriptor_failures_{0};
};

}  // namespace switchboard::eio
