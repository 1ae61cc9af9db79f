#include "edge/engineio/transports/websocket.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <limits>
#include <vector>

namespace switchboard::eio {
namespace net = boost::asio;
using boost::asio::ip::tcp;

namespace {

// How long a closed connection waits for the client's end of the TCP close
// (so that the last frames are not cut by a reset).
constexpr auto kCloseLinger = std::chrono::seconds(2);
constexpr size_t kReadBuffer = 64 * 1024;
// Reads per readiness event: a client sending without pause cannot hold the
// shard.
constexpr int kReadsPerEvent = 4;
constexpr size_t kMaxQueuedForPong = 64 * 1024;

char* ReadBuffer() {
  thread_local std::unique_ptr<char[]> buffer(new char[kReadBuffer]);
  return buffer.get();
}

std::shared_ptr<const std::string> CloseFramePayload(uint16_t code) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  return std::make_shared<const std::string>(std::move(payload));
}

// Transports given frames in this turn of the shard's event loop. One handler,
// posted behind the turn's other work, writes them all: deliveries that
// arrive together leave in one sendmsg per client.
struct ScheduledFlushes {
  std::vector<std::shared_ptr<WebSocketTransport>> pending;
  std::vector<std::shared_ptr<WebSocketTransport>> running;
  bool posted = false;
};

ScheduledFlushes& Scheduled() {
  thread_local ScheduledFlushes scheduled;  // one event loop per thread
  return scheduled;
}

// A frame as it goes on the wire, header and payload in one buffer: made once
// per payload and used by the writes of one delivery to every client of this
// thread, each then a single send() of it. Dropped when the last
// WriteThrough scope ends.
constexpr size_t kMaxWirePayload = 64 * 1024;
struct Wire {
  std::shared_ptr<const std::string> payload;  // held, so its address names it
  bool binary = false;
  std::string bytes;
};
thread_local Wire wire;

bool WireHolds(const Frame& frame) {
  return wire.payload == frame.bytes && wire.binary == frame.binary;
}

const std::string& WireBytes(const Frame& frame) {
  if (!WireHolds(frame)) {
    wire.payload = frame.bytes;
    wire.binary = frame.binary;
    uint8_t header[ws::kMaxServerHeader];
    size_t size =
        ws::EncodeServerHeader(frame.binary ? ws::kBinary : ws::kText, frame.bytes->size(), header);
    wire.bytes.assign(reinterpret_cast<const char*>(header), size);
    wire.bytes.append(*frame.bytes);
    WriteThrough::AtEnd(&WebSocketTransport::ReleaseWire);
  }
  return wire.bytes;
}

}  // namespace

WebSocketTransport::WebSocketTransport(tcp::socket socket, std::string upgrade_response,
                                       size_t max_message_bytes,
                                       std::chrono::milliseconds write_timeout)
    : fd_(-1),
      write_timeout_ms_(static_cast<uint32_t>(
          std::clamp<int64_t>(write_timeout.count(), 1, std::numeric_limits<uint32_t>::max()))),
      poller_(edge::ReadinessPoller::Of(socket.get_executor())),
      max_message_(max_message_bytes) {
  boost::system::error_code ignored;
  socket.non_blocking(true, ignored);
  // Not a TCP socket behind the TLS relay: then the option fails, harmlessly.
  socket.set_option(tcp::no_delay(true), ignored);
  // From here on the socket is ours alone (the poller watches it, not asio).
  boost::system::error_code released;
  fd_ = socket.release(released);
  if (released) {
    fd_ = -1;
    socket_closed_ = true;
  }
  // Sent by the first Attach or Close (no I/O before shared_from_this works).
  queued_bytes_ = upgrade_response.size();
  out_.push_back({std::make_shared<const std::string>(std::move(upgrade_response)), kRaw});
}

WebSocketTransport::~WebSocketTransport() {
  if (!socket_closed_) ::close(fd_);
}

void WebSocketTransport::Attach(std::shared_ptr<TransportListener> listener) {
  listener_ = std::move(listener);
  reading_ = true;
  Watch();
  if (!write_waiting_) TrySend();
}

void WebSocketTransport::Watch() {
  if (watched_ || socket_closed_) return;
  if (!poller_.Add(fd_, this)) {
    // Out of descriptors for the shard's epoll set (or epoll refused the
    // socket, ENOSPC: fs.epoll.max_user_watches): this connection is refused,
    // the process goes on.
    if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOSPC) {
      descriptor_failures_.fetch_add(1, std::memory_order_relaxed);
    }
    return Lost("transport error");
  }
  watched_ = true;
  self_ = shared_from_this();
}

void WebSocketTransport::OnReady(uint32_t events) {
  if (socket_closed_) return;  // closed earlier in this batch
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (write_waiting_ && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
    write_waiting_ = false;
    TrySend();
  }
  if (readable_ && !read_posted_) OnReadable();
}

void WebSocketTransport::OnShutdown() {
  // Nothing runs after this: the last reference goes now, not in a post.
  auto self = std::move(self_);
  listener_.reset();
  CloseSocket();
}

// ---- writing ---------------------------------------------------------------

void WebSocketTransport::ReleaseWire() {
  if (edge::UringSends* uring = edge::UringSends::ForThisThread()) uring->Submit();
  wire = Wire{};
}

void WebSocketTransport::Write(const Frame* frames, size_t count) {
  if (closing_ || socket_closed_) return;
  if (WriteThrough::active() && out_head_ == out_.size() && !write_waiting_ && !flush_scheduled_ &&
      !uring_pending_ && count <= kBatch) {
    return WriteNow(frames, count);
  }
  for (size_t i = 0; i < count; ++i) {
    Enqueue({frames[i].bytes, frames[i].binary ? ws::kBinary : ws::kText});
  }
}

void WebSocketTransport::WriteNow(const Frame* frames, size_t count) {
  size_t sizes[kBatch];
  ssize_t sent;
  if (count == 1 && frames[0].bytes->size() <= kMaxWirePayload) {
    edge::UringSends* uring = edge::UringSends::ForThisThread();
    if (uring != nullptr && !uring->busy()) {
      // The queued sends point into the wire: they go before it changes.
      // Submitting tells their transports, which may write to this one:
      // the write starts over.
      if (uring->full() || (!uring->empty() && !WireHolds(frames[0]))) {
        uring->Submit();
        return Write(frames, count);
      }
      const std::string& bytes = WireBytes(frames[0]);
      uring_pending_ = true;
      uring->Queue(fd_, bytes.data(),
                   {.owner = shared_from_this(),
                    .content = frames[0].bytes,
                    .sent = &WebSocketTransport::OnUringSent,
                    .size = static_cast<uint32_t>(bytes.size()),
                    .tag = frames[0].binary ? 1u : 0u});
      return;
    }
    const std::string& bytes = WireBytes(frames[0]);
    sizes[0] = bytes.size();
    do {
      sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
  } else {
    iovec iov[2 * kBatch];
    uint8_t headers[kBatch][ws::kMaxServerHeader];
    for (size_t i = 0; i < count; ++i) {
      const std::string& bytes = *frames[i].bytes;
      size_t header = ws::EncodeServerHeader(frames[i].binary ? ws::kBinary : ws::kText,
                                             bytes.size(), headers[i]);
      iov[2 * i] = {headers[i], header};
      iov[2 * i + 1] = {const_cast<char*>(bytes.data()), bytes.size()};
      sizes[i] = header + bytes.size();
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2 * count;
    do {
      sent = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
  }
  if (sent < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Lost("transport error");
    sent = 0;
  }
  // Queue what the kernel did not take; the first of it may be partly sent
  // (the queue is empty, so it becomes the head).
  auto left = static_cast<size_t>(sent);
  for (size_t i = 0; i < count; ++i) {
    if (left >= sizes[i]) {
      left -= sizes[i];
      continue;
    }
    if (out_head_ == out_.size()) out_offset_ = left;
    left = 0;
    queued_bytes_ += frames[i].bytes->size();
    out_.push_back({frames[i].bytes, frames[i].binary ? ws::kBinary : ws::kText});
  }
  if (out_head_ < out_.size()) WaitWrite();
}

void WebSocketTransport::QueueUnsent(const Frame& frame, size_t sent) {
  // In front of what was queued behind it meanwhile: none of that has been
  // sent, it waited for this one.
  out_.insert(out_.begin() + out_head_, {frame.bytes, frame.binary ? ws::kBinary : ws::kText});
  out_offset_ = sent;
  queued_bytes_ += frame.bytes->size();
}

bool WebSocketTransport::SettleUringSend(int result, size_t* sent) {
  uring_pending_ = false;
  if (socket_closed_) return false;
  if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK) {
    Lost("transport error");
    return false;
  }
  *sent = static_cast<size_t>(std::max(result, 0));
  return true;
}

void WebSocketTransport::OnUringSent(const edge::UringSends::Send& send, int result) {
  auto* self = static_cast<WebSocketTransport*>(send.owner.get());
  size_t sent = 0;
  if (!self->SettleUringSend(result, &sent)) return;
  if (sent >= send.size) return;  // what was queued behind it leaves with the scheduled flush
  self->QueueUnsent({send.content, send.tag != 0}, sent);
  self->WaitWrite();
}

void WebSocketTransport::Enqueue(Outgoing out) {
  queued_bytes_ += out.bytes->size();
  out_.push_back(std::move(out));
  if (write_waiting_ || flush_scheduled_) return;
  flush_scheduled_ = true;
  ScheduledFlushes& scheduled = Scheduled();
  scheduled.pending.push_back(shared_from_this());
  if (!scheduled.posted) {
    scheduled.posted = true;
    net::post(poller_.executor(), &WebSocketTransport::FlushScheduled);
  }
}

void WebSocketTransport::FlushScheduled() {
  ScheduledFlushes& scheduled = Scheduled();
  scheduled.posted = false;
  scheduled.running.swap(scheduled.pending);
  edge::UringSends* uring = edge::UringSends::ForThisThread();
  if (uring != nullptr && uring->busy()) uring = nullptr;
  for (auto& transport : scheduled.running) {
    transport->flush_scheduled_ = false;
    // A send still on the io_uring flushes the rest when it is done.
    if (transport->write_waiting_ || transport->uring_pending_) continue;
    if (uring == nullptr || !transport->FlushOnRing(*uring)) transport->TrySend();
  }
  // Each client's sendmsg leaves in a few io_uring_enter calls for the turn.
  if (uring != nullptr) uring->Submit();
  scheduled.running.clear();  // keeps its capacity for the next turn
}

bool WebSocketTransport::FlushOnRing(edge::UringSends& uring) {
  if (uring.full() || uring.NextMessage() == nullptr) uring.Submit();
  // (Submitting told other transports how their sends went, which may have
  // written to or closed this one.)
  edge::UringSends::Message* message = uring.NextMessage();
  if (message == nullptr || out_head_ == out_.size() || socket_closed_ || write_waiting_ ||
      uring_pending_) {
    return false;
  }
  static_assert(2 * kRingFrames <= edge::UringSends::kMessageIov);
  static_assert(kRingFrames * ws::kMaxServerHeader <= edge::UringSends::kMessageScratch);
  size_t bytes = 0;
  bool all = false;
  size_t count = GatherQueued(message->iov,
                              reinterpret_cast<uint8_t(*)[ws::kMaxServerHeader]>(message->scratch),
                              kRingFrames, &bytes, &all);
  // A longer queue leaves in sendmsg calls of kBatch frames (a burst, which
  // gathering already makes cheap).
  if (!all) return false;
  // The frames stay queued (their bytes held) until the send is done.
  uring_pending_ = true;
  uring.QueueMessage(fd_, message, count,
                     {.owner = shared_from_this(),
                      .content = nullptr,
                      .sent = &WebSocketTransport::OnUringFlushed,
                      .size = static_cast<uint32_t>(bytes)});
  return true;
}

void WebSocketTransport::OnUringFlushed(const edge::UringSends::Send& send, int result) {
  auto* self = static_cast<WebSocketTransport*>(send.owner.get());
  size_t sent = 0;
  if (!self->SettleUringSend(result, &sent)) return;
  self->RetireSent(sent);
  if (sent < send.size) return self->WaitWrite();
  // Frames queued meanwhile go now; an empty queue is tidied up.
  self->TrySend();
}

size_t WebSocketTransport::GatherQueued(iovec* iov, uint8_t (*headers)[ws::kMaxServerHeader],
                                        size_t max_frames, size_t* bytes, bool* all) const {
  size_t count = 0;
  size_t total = 0;
  size_t skip = out_offset_;
  size_t i = out_head_;
  for (size_t k = 0; i < out_.size() && k < max_frames; ++i, ++k) {
    const Outgoing& o = out_[i];
    size_t header = o.opcode == kRaw ? 0
                                     : ws::EncodeServerHeader(static_cast<ws::Opcode>(o.opcode),
                                                              o.bytes->size(), headers[k]);
    // The first entry may be partly sent already: skip those bytes.
    size_t from_header = std::min(skip, header);
    if (header > from_header) iov[count++] = {headers[k] + from_header, header - from_header};
    total += header - from_header;
    skip -= from_header;
    if (o.bytes->size() > skip) {
      iov[count++] = {const_cast<char*>(o.bytes->data()) + skip, o.bytes->size() - skip};
      total += o.bytes->size() - skip;
    }
    skip = 0;
  }
  *bytes = total;
  *all = i == out_.size();
  return count;
}

void WebSocketTransport::RetireSent(size_t sent) {
  auto left = sent;
  while (left > 0) {
    const Outgoing& o = out_[out_head_];
    size_t total =
        (o.opcode == kRaw ? 0 : ws::ServerHeaderSize(o.bytes->size())) + o.bytes->size();
    size_t rest = total - out_offset_;
    if (left < rest) {
      out_offset_ += left;
      break;
    }
    left -= rest;
    queued_bytes_ -= o.bytes->size();
    out_[out_head_].bytes.reset();
    ++out_head_;
    out_offset_ = 0;
  }
  if (out_head_ >= 64 && out_head_ * 2 >= out_.size()) {
    out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(out_head_));
    out_head_ = 0;
  }
}

void WebSocketTransport::TrySend() {
  // The queue's head is on the io_uring: its completion sends the rest.
  if (uring_pending_) return;
  while (out_head_ < out_.size() && !socket_closed_) {
    iovec iov[2 * kBatch];
    uint8_t headers[kBatch][ws::kMaxServerHeader];
    size_t bytes = 0;
    bool all = false;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = GatherQueued(iov, headers, kBatch, &bytes, &all);
    ssize_t sent = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return WaitWrite();
      return Lost("transport error");
    }
    RetireSent(static_cast<size_t>(sent));
  }
  if (out_head_ < out_.size() || socket_closed_) return;
  // Drained: give back what a burst made the queue grow to.
  if (out_.capacity() > kInlineOut) {
    decltype(out_)().swap(out_);
  } else {
    out_.clear();
  }
  out_head_ = 0;
  if (closing_ && !close_sent_) AfterCloseSent();
}

void WebSocketTransport::WaitWrite() {
  // The socket was writable before (or never waited on): a new stall.
  // (EPOLLOUT comes only once the client has taken a good part of the send
  // buffer, so each stall follows real progress.)
  if (!write_waiting_) StartWriteDeadline();
  // The poller reports EPOLLOUT once the kernel takes more.
  write_waiting_ = true;
  Watch();
}

void WebSocketTransport::StartWriteDeadline() {
  if (close_sent_ || socket_closed_) return;
  if (!timer_) timer_ = std::make_unique<Timer>(poller_.executor());
  timer_->stalled_since = std::chrono::steady_clock::now();
  // A wait already pending (an earlier stall) finds the new start when it
  // fires and waits on.
  if (!timer_waiting_) {
    ArmTimer(timer_->stalled_since + std::chrono::milliseconds(write_timeout_ms_));
  }
}

void WebSocketTransport::ArmTimer(std::chrono::steady_clock::time_point at) {
  // A wait already pending is cancelled: its handler sees operation_aborted.
  timer_->timer.expires_at(at);
  timer_waiting_ = true;
  timer_->timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;  // cancelled: a newer wait (or none) stands
    self->timer_waiting_ = false;
    self->OnTimer();
  });
}

void WebSocketTransport::OnTimer() {
  if (socket_closed_) return;
  // After our close frame: the linger is over.
  if (close_sent_) return CloseSocket();
  if (!write_waiting_) {
    // Caught up since: nothing to watch.
    timer_.reset();
    return;
  }
  const auto deadline = timer_->stalled_since + std::chrono::milliseconds(write_timeout_ms_);
  if (std::chrono::steady_clock::now() < deadline) return ArmTimer(deadline);
  // The client stopped reading (our close frame included): let it go.
  write_timeouts_.fetch_add(1, std::memory_order_relaxed);
  Lost("transport error");
}

void WebSocketTransport::HandOver(Transport&) { CloseConnection(true); }

bool WebSocketTransport::Close(CloseMode mode) {
  CloseConnection(mode == CloseMode::kFlush);
  return true;
}

void WebSocketTransport::CloseConnection(bool flush) {
  listener_.reset();
  if (closing_ || socket_closed_) return;
  closing_ = true;
  if (!flush) DropUnsent();
  static const auto kNormal = CloseFramePayload(1000);
  Enqueue({kNormal, ws::kClose});
  // A transport never attached (a refused upgrade) reads too, to see the end.
  reading_ = true;
  Watch();
}

void WebSocketTransport::DropUnsent() {
  // Frames on the io_uring are begun: their send finishes first. (Inside
  // a submit, before this transport is told, nothing is dropped.)
  if (uring_pending_) {
    if (edge::UringSends* uring = edge::UringSends::ForThisThread()) uring->Submit();
    if (uring_pending_) return;
  }
  // A frame already begun is kept: the stream must stay well framed.
  size_t keep = out_head_ + (out_offset_ > 0 ? 1 : 0);
  for (size_t i = keep; i < out_.size(); ++i) queued_bytes_ -= out_[i].bytes->size();
  out_.erase(out_.begin() + static_cast<std::ptrdiff_t>(keep), out_.end());
}

void WebSocketTransport::AfterCloseSent() {
  close_sent_ = true;
  if (peer_closed_) return CloseSocket();
  // Our half is done; the client answers with its close frame and its FIN,
  // which the read loop waits for (bounded by the linger timer).
  ::shutdown(fd_, SHUT_WR);
  if (!timer_) timer_ = std::make_unique<Timer>(poller_.executor());
  ArmTimer(std::chrono::steady_clock::now() + kCloseLinger);
}

// ---- reading ---------------------------------------------------------------

void WebSocketTransport::OnReadable() {
  // Nothing is read before the session is attached, nor after the client's
  // close frame.
  if (!reading_ || peer_closed_ || socket_closed_ || read_queued_) return;
  // Told in a batch of readiness events: the read joins the batch's others
  // in one io_uring submit, and OnRead follows.
  if (poller_.QueueRead(fd_, this, shared_from_this())) {
    read_queued_ = true;
    return;
  }
  ReadOnYourOwn();
}

void WebSocketTransport::ReadOnYourOwn() {
  char* buffer = ReadBuffer();
  for (int round = 0; round < kReadsPerEvent; ++round) {
    ssize_t n;
    do {
      n = ::recv(fd_, buffer, kReadBuffer, 0);
    } while (n < 0 && errno == EINTR);
    if (!TakeRead(buffer, n < 0 ? -errno : n, kReadBuffer)) return;
  }
  // More may be waiting: read it in a later turn, after the other sockets.
  read_posted_ = true;
  net::post(poller_.executor(), [self = shared_from_this()] {
    self->read_posted_ = false;
    if (self->readable_) self->OnReadable();
  });
}

void WebSocketTransport::OnRead(char* data, int result) {
  read_queued_ = false;
  if (!reading_ || peer_closed_ || socket_closed_) return;
  // A full buffer: more may be waiting.
  if (TakeRead(data, result, edge::ReadinessPoller::kReadBytes)) ReadOnYourOwn();
}

bool WebSocketTransport::TakeRead(char* data, ssize_t result, size_t capacity) {
  if (result > 0) {
    // Once closing, what the client still sends is read and dropped until
    // its FIN.
    if (!closing_) Consume(data, static_cast<size_t>(result));
    if (socket_closed_ || peer_closed_) return false;
    // A short read emptied the socket: new input brings a new edge.
    if (static_cast<size_t>(result) < capacity) {
      readable_ = false;
      return false;
    }
    return true;
  }
  if (result == -EAGAIN || result == -EWOULDBLOCK) {
    readable_ = false;
    return false;
  }
  // EOF or a reset.
  if (closing_) {
    CloseSocket();
  } else {
    Lost("transport error");
  }
  return false;
}

void WebSocketTransport::Consume(char* data, size_t size) {
  // An incomplete frame from an earlier read continues here. (partial_ then
  // stays while the loop runs: its frame_tail is not empty.)
  const bool in_tail = partial_ && !partial_->frame_tail.empty();
  if (in_tail) {
    partial_->frame_tail.append(data, size);
    data = partial_->frame_tail.data();
    size = partial_->frame_tail.size();
  }
  size_t offset = 0;
  bool reading = true;
  while (reading && offset < size) {
    ws::ClientFrame frame;
    size_t used = 0;
    switch (ws::ParseClientFrame(data + offset, size - offset, max_message_, &frame, &used)) {
      case ws::ParseStatus::kIncomplete: reading = false; continue;
      case ws::ParseStatus::kProtocol: return FailWith(1002, "transport error");
      case ws::ParseStatus::kTooBig:
        if (auto listener = listener_) listener->OnTransportMessageTooBig();
        return FailWith(1009, "transport error");
      case ws::ParseStatus::kFrame: break;
    }
    offset += used;
    // Stops at a close, or when the session closes us (a closed socket has
    // released the bytes `data` may point into).
    if (!HandleFrame(frame) || socket_closed_) return;
  }
  if (in_tail) {
    if (offset == size) {
      std::string().swap(partial_->frame_tail);
    } else {
      partial_->frame_tail.erase(0, offset);
    }
  } else if (offset < size) {
    Partial().frame_tail.assign(data + offset, size - offset);
  }
  ReleasePartial();
}

bool WebSocketTransport::HandleFrame(const ws::ClientFrame& frame) {
  switch (frame.opcode) {
    case ws::kText:
    case ws::kBinary:
      if (message_opcode_ != 0) {
        FailWith(1002,
                 "transport error");  // a new message inside a fragmented one
        return false;
      }
      if (frame.fin) {
        Deliver(frame.payload, frame.opcode == ws::kBinary);
      } else {
        message_opcode_ = frame.opcode;
        Partial().message.assign(frame.payload);
      }
      break;
    case ws::kContinuation:
      if (message_opcode_ == 0) {
        FailWith(1002, "transport error");
        return false;
      }
      if (Partial().message.size() + frame.payload.size() > max_message_) {
        if (auto listener = listener_) listener->OnTransportMessageTooBig();
        FailWith(1009, "transport error");
        return false;
      }
      Partial().message.append(frame.payload);
      if (frame.fin) {
        bool binary = message_opcode_ == ws::kBinary;
        message_opcode_ = 0;
        std::string message = std::move(Partial().message);
        Partial().message = std::string();
        ReleasePartial();
        Deliver(message, binary);
      }
      break;
    case ws::kPing:
      // A client pinging without reading gets no more answers once its
      // queue is long (RFC 6455 lets a pong answer only the latest ping).
      if (!closing_ && queued_bytes_ < kMaxQueuedForPong) {
        Enqueue({std::make_shared<const std::string>(frame.payload), ws::kPong});
      }
      break;
    case ws::kPong: break;
    case ws::kClose: {
      if (frame.payload.size() == 1) {
        FailWith(1002, "transport error");
        return false;
      }
      peer_closed_ = true;
      NotifyClosed("transport close");
      if (!closing_) {
        closing_ = true;
        // Echo the status code, as RFC 6455 5.5.1 asks.
        auto payload = std::make_shared<const std::string>(frame.payload.substr(0, 2));
        Enqueue({std::move(payload), ws::kClose});
      } else if (close_sent_) {
        CloseSocket();
      }
      return false;
    }
    default: break;
  }
  return !closing_;
}

void WebSocketTransport::Deliver(std::string_view message, bool binary) {
  if (!binary && !ws::IsValidUtf8(message)) return FailWith(1007, "transport error");
  // The listener may close us while handling the message.
  if (auto listener = listener_) listener->OnTransportMessage(*this, message, binary);
}

WebSocketTransport::PartialInput& WebSocketTransport::Partial() {
  if (!partial_) partial_ = std::make_unique<PartialInput>();
  return *partial_;
}

void WebSocketTransport::ReleasePartial() {
  if (partial_ && partial_->frame_tail.empty() && partial_->message.empty()) partial_.reset();
}

void WebSocketTransport::FailWith(uint16_t code, std::string_view reason) {
  NotifyClosed(reason);
  if (closing_) return;
  closing_ = true;
  // Unsent frames are dropped; the client learns why from the code.
  DropUnsent();
  Enqueue({CloseFramePayload(code), ws::kClose});
}

void WebSocketTransport::Lost(std::string_view reason) {
  NotifyClosed(reason);
  CloseSocket();
}

void WebSocketTransport::NotifyClosed(std::string_view reason) {
  auto listener = std::move(listener_);
  if (!listener) return;
  // Never from inside the listener's own call (a write during a broadcast).
  net::post(poller_.executor(),
            [self = shared_from_this(), listener = std::move(listener),
             reason = std::string(reason)] { listener->OnTransportClosed(*self, reason); });
}

void WebSocketTransport::CloseSocket() {
  if (socket_closed_) return;
  // A send queued on the io_uring names the descriptor, which must not be
  // closed (and reused) under it.
  if (uring_pending_ || read_queued_) {
    if (edge::UringSends* uring = edge::UringSends::ForThisThread()) uring->Submit();
    if (socket_closed_) return;
  }
  socket_closed_ = true;
  timer_.reset();
  timer_waiting_ = false;
  out_.clear();
  out_head_ = 0;
  out_offset_ = 0;
  queued_bytes_ = 0;
  partial_.reset();
  // Closing the descriptor takes it out of the epoll set.
  edge::ReadinessPoller::Listener::unlink();
  ::close(fd_);
  // Events of the poller's current batch may still name this transport:
  // the last reference goes in a later turn.
  if (auto self = std::move(self_)) net::post(poller_.executor(), [self = std::move(self)] {});
}

}  // namespace switchboard::eio
