#include "edge/engineio/session.h"

#include <boost/asio/post.hpp>

#include "edge/engineio/heartbeat_queue.h"
#include "edge/engineio/server.h"
#include "edge/engineio/websocket.h"
#include "edge/http/session.h"

namespace switchboard::eio {
namespace net = boost::asio;
namespace http = boost::beast::http;

namespace {
// How long a server-closed polling session waits for the GET that carries
// its close packet.
constexpr auto kPollingLinger = std::chrono::seconds(5);

const Frame& NoopFrame() {
  static const Frame frame = MakeTextFrame(PacketType::kNoop);
  return frame;
}
const Frame& PingFrame() {
  static const Frame frame = MakeTextFrame(PacketType::kPing);
  return frame;
}
const Frame& CloseFrame() {
  static const Frame frame = MakeTextFrame(PacketType::kClose);
  return frame;
}
}  // namespace

Session::Session(Server& server, std::string_view id, size_t shard, Handshake handshake,
                 Transport transport)
    : server_(server), shard_(shard), transport_(transport), handshake_(std::move(handshake)) {
  id_.fill('\0');
  id.copy(id_.data(), std::min(id.size(), id_.size()));
  if (transport_ == Transport::kPolling) polling_ = std::make_unique<Polling>();
  server_.CountOpen(shard_, transport_ == Transport::kWebSocket, +1);
}

Session::~Session() = default;

namespace {
class MessageListener : public SessionListener {
 public:
  explicit MessageListener(std::function<void(Packet&&)> handler) : handler_(std::move(handler)) {}
  void OnSessionMessage(Packet&& packet) override { handler_(std::move(packet)); }
  void OnSessionClose(std::string_view) override {}

 private:
  std::function<void(Packet&&)> handler_;
};
}  // namespace

void Session::OnMessage(std::function<void(Packet&&)> handler) {
  listener_ = std::make_shared<MessageListener>(std::move(handler));
}

std::string Session::OpenPacket(bool upgrades) const {
  const Options& o = server_.options();
  std::string out = "0{\"sid\":\"";
  out += id();
  out += upgrades ? "\",\"upgrades\":[\"websocket\"]" : "\",\"upgrades\":[]";
  out += ",\"pingInterval\":" + std::to_string(o.ping_interval.count());
  out += ",\"pingTimeout\":" + std::to_string(o.ping_timeout.count());
  out += ",\"maxPayload\":" + std::to_string(o.max_http_buffer_size) + "}";
  return out;
}

std::string Session::OpenPolling() {
  const Options& o = server_.options();
  SchedulePing();
  return OpenPacket(o.allow_upgrades && o.allow_websocket);
}

void Session::OpenWebSocket(std::shared_ptr<WebSocketTransport> ws) {
  ws_ = std::move(ws);
  ws_->Attach(shared_from_this());
  std::string open = OpenPacket(false);
  Frame frame{std::make_shared<const std::string>(std::move(open)), false};
  Send(frame);
  SchedulePing();
}

// ---- heartbeat -------------------------------------------------------------

void Session::SchedulePing() {
  heartbeat_state_ = Timer::kPing;
  server_.ping_queue(shard_).Schedule(
      *this, std::chrono::steady_clock::now() + server_.options().ping_interval);
}

void Session::OnHeartbeatTimer() {
  if (state_ != State::kOpen) return;
  if (heartbeat_state_ == Timer::kPong) return Terminate("ping timeout", false);
  Send(PingFrame());
  heartbeat_state_ = Timer::kPong;
  // Measured from when the ping was due, not from when the timer ran.
  server_.pong_queue(shard_).Schedule(*this, heartbeat_due_ + server_.options().ping_timeout);
}

// ---- inbound ---------------------------------------------------------------

bool Session::CheckHeartbeat() {
  if (state_ == State::kOpen && heartbeat_state_ == Timer::kPong &&
      std::chrono::steady_clock::now() >= heartbeat_due_) {
    // The timer is due but has not run yet: the peer is late all the same.
    Terminate("ping timeout", false);
  }
  return state_ != State::kClosed;
}

void Session::OnPacket(Packet&& packet) {
  if (state_ != State::kOpen) return;
  server_.Count(shard_, Server::Counter::kPacketsIn);
  switch (packet.type) {
    case PacketType::kPong:
      if (heartbeat_state_ == Timer::kPong) SchedulePing();
      return;
    case PacketType::kClose:
      return Terminate("transport close", true);
    case PacketType::kMessage:
      if (listener_) listener_->OnSessionMessage(std::move(packet));
      return;
    case PacketType::kNoop:
      return;
    case PacketType::kPing:
      // In v4 only the server pings; engine.io 6 closes on "invalid
      // heartbeat direction".
      return Terminate("transport error", false);
    default:
      return Terminate("parse error", false);
  }
}

void Session::OnFrame(WebSocketTransport* from, std::string_view data, bool binary) {
  auto self = shared_from_this();
  if (polling_ && polling_->probe && from == polling_->probe.get()) {
    Polling& p = *polling_;
    if (!binary && data == "2probe") {
      p.probe->Write(MakeTextFrame(PacketType::kPong, "probe"));
      p.upgrading = true;
      // Release a pending GET so the client can pause polling.
      if (p.poll) FlushPoll();
      return;
    }
    if (!binary && data == "5" && p.upgrading) {
      transport_ = Transport::kWebSocket;
      server_.Count(shard_, Server::Counter::kUpgrades);
      server_.CountOpen(shard_, false, -1);
      server_.CountOpen(shard_, true, +1);
      ws_ = std::move(p.probe);
      if (p.poll) RespondPoll(std::string(1, static_cast<char>(PacketType::kNoop)));
      Flush();  // what was queued while the upgrade was under way
      polling_.reset();
      if (listener_) listener_->OnSessionUpgrade();
      return;
    }
    EndProbe();
    return;
  }
  if (from != ws_.get()) return;
  server_.Count(shard_, Server::Counter::kBytesIn, data.size());
  auto packet = DecodeFrame(data, binary);
  if (!packet.ok()) return Terminate("parse error", false);
  OnPacket(std::move(*packet));
}

void Session::HandlePost(const std::shared_ptr<edge::HttpSession>& http) {
  const Options& o = server_.options();
  if (polling_ && !polling_->data_request.expired()) {
    // Like engine.io: a POST while another one's body is still arriving is
    // refused and ends the session (the reference destroys both requests).
    server_.SendError(http, 400, -1, "data request overlap");
    return Terminate("transport error", false);
  }
  if (polling_) polling_->data_request = http;
  http->ReadBody(o.max_http_buffer_size, [self = shared_from_this(), http](
                                              boost::system::error_code ec, std::string body) {
    if (self->polling_ && self->polling_->data_request.lock() == http) {
      self->polling_->data_request.reset();
    }
    if (ec == http::error::body_limit) {
      self->server_.CountPayloadTooLarge();
      self->server_.SendError(http, 413, -1, "Payload too large");
      return self->Terminate("transport error", false);
    }
    if (ec) return self->Terminate("transport error", false);
    self->server_.Count(self->shard_, Server::Counter::kBytesIn, body.size());
    if (self->state_ != State::kOpen || !self->polling_) {
      return self->server_.SendError(http, 400, 3, "Bad request");
    }
    auto packets = DecodePayload(body);
    if (!packets.ok()) {
      self->server_.SendError(http, 400, 3, "Bad request");
      return self->Terminate("parse error", false);
    }
    self->server_.SendOk(http);
    for (auto& packet : *packets) {
      self->OnPacket(std::move(packet));
      if (self->state_ != State::kOpen) break;
    }
  });
}

// ---- polling out -----------------------------------------------------------

void Session::HandlePoll(const std::shared_ptr<edge::HttpSession>& http) {
  if (transport_ != Transport::kPolling || !polling_ || state_ == State::kClosed) {
    return server_.SendError(http, 400, 3, "Bad request");
  }
  Polling& p = *polling_;
  if (p.poll) {
    // At most one pending GET: a second one is a protocol violation.
    server_.SendError(http, 400, 3, "Bad request");
    return Terminate("transport error", false);
  }
  p.poll = http;
  if (!p.queue.empty() || p.upgrading || state_ == State::kClosing) return FlushPoll();
  http->WatchForAbort([weak = weak_from_this(), raw = http.get()] {
    auto self = weak.lock();
    if (!self || !self->polling_ || self->polling_->poll.get() != raw) return;
    self->polling_->poll.reset();
    self->Terminate("transport close", false);
  });
}

void Session::FlushPoll() {
  if (!polling_ || !polling_->poll) return;
  Polling& p = *polling_;
  std::string body;
  size_t size = 0;
  for (const auto& f : p.queue) size += f.bytes->size() + 1;
  body.reserve(size);
  for (const auto& f : p.queue) AppendToPayload(body, f);
  p.queue.clear();
  p.queued_bytes = 0;
  if (body.empty()) body.push_back(static_cast<char>(PacketType::kNoop));
  RespondPoll(std::move(body));
  if (state_ != State::kClosing) return;
  if (terminal_queued_) return Finish();
  // Like the reference server, the close packet travels in a response of
  // its own: clients handle a close before the packets decoded with it.
  p.queue.push_back(CloseFrame());
  terminal_queued_ = true;
}

void Session::RespondPoll(std::string body) {
  auto http = std::move(polling_->poll);
  polling_->poll.reset();
  server_.SendPayload(http, std::move(body));
}

// ---- sending ---------------------------------------------------------------

bool Session::Send(const Frame* frames, size_t count, bool is_volatile) {
  if (state_ != State::kOpen || overflowed_) return false;
  const Options& o = server_.options();
  WebSocketTransport* ws = transport_ == Transport::kWebSocket ? ws_.get() : nullptr;
  Polling* p = polling_.get();
  if (ws == nullptr && p == nullptr) return false;  // its WebSocket is gone: closing
  size_t queued = ws ? ws->queued_bytes() : p->queued_bytes;
  if (is_volatile) {
    bool can_write =
        ws == nullptr ? (p->poll != nullptr && !p->upgrading) : queued < o.volatile_drop_bytes;
    if (!can_write) {
      server_.Count(shard_, Server::Counter::kVolatileDrops, count);
      return false;
    }
  }
  size_t bytes = 0;
  for (size_t i = 0; i < count; ++i) bytes += frames[i].bytes->size();
  server_.Count(shard_, Server::Counter::kPacketsOut, count);
  server_.Count(shard_, Server::Counter::kBytesOut, bytes);
  if (queued + bytes > o.max_send_queue_bytes) {
    // Nothing more is queued; the close is deferred because we may be inside
    // a broadcast loop over this socket's rooms.
    overflowed_ = true;
    net::post(server_.runtime().context(shard_), [self = shared_from_this()] {
      self->Terminate("send queue overflow", false);
    });
    return true;
  }
  if (ws) {
    ws->Write(frames, count);
    return true;
  }
  p->queue.insert(p->queue.end(), frames, frames + count);
  p->queued_bytes += bytes;
  Flush();
  return true;
}

void Session::PrefetchTransport() const {
  if (transport_ == Transport::kWebSocket && ws_) ws_->Prefetch();
}

void Session::Flush() {
  if (!polling_) return;
  Polling& p = *polling_;
  if (transport_ == Transport::kWebSocket) {
    // What was queued while the upgrade was under way.
    if (!ws_) return;
    for (auto& frame : p.queue) ws_->Write(std::move(frame));
    p.queue.clear();
    p.queued_bytes = 0;
    return;
  }
  if (!p.poll || p.flush_posted) return;
  // Coalesce everything queued in this turn into one response.
  p.flush_posted = true;
  net::post(server_.runtime().context(shard_), [self = shared_from_this()] {
    if (!self->polling_) return;  // upgraded meanwhile
    self->polling_->flush_posted = false;
    self->FlushPoll();
  });
}

void Session::OnMessageTooBig() { server_.CountPayloadTooLarge(); }

// ---- upgrade ---------------------------------------------------------------

bool Session::CanUpgrade() const {
  return state_ == State::kOpen && transport_ == Transport::kPolling && polling_ &&
         !polling_->probe && server_.options().allow_upgrades;
}

void Session::HandleUpgrade(std::shared_ptr<WebSocketTransport> ws) {
  Polling& p = *polling_;  // CanUpgrade() said so
  p.probe = std::move(ws);
  p.probe->Attach(shared_from_this());
  p.upgrade_timer = std::make_unique<net::steady_timer>(server_.runtime().context(shard_));
  p.upgrade_timer->expires_after(server_.options().upgrade_timeout);
  p.upgrade_timer->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->EndProbe();
  });
}

void Session::EndProbe() {
  if (!polling_) return;
  Polling& p = *polling_;
  p.upgrade_timer.reset();
  p.upgrading = false;
  if (p.probe) {
    p.probe->Close();
    p.probe.reset();
  }
}

void Session::OnTransportClosed(WebSocketTransport* from, std::string_view reason) {
  if (polling_ && polling_->probe && from == polling_->probe.get()) {
    polling_->probe.reset();
    polling_->upgrade_timer.reset();
    polling_->upgrading = false;
    return;
  }
  if (from != ws_.get()) return;
  ws_.reset();
  if (state_ == State::kClosing) return Finish();
  Terminate(reason, false);
}

// ---- closing ---------------------------------------------------------------

void Session::Close(std::string_view reason) {
  if (state_ != State::kOpen) return;
  Terminate(reason, false, true);
}

void Session::Terminate(std::string_view reason, bool client_initiated, bool graceful) {
  if (state_ == State::kClosed) return;
  auto self = shared_from_this();
  heartbeat_hook_.unlink();
  EndProbe();
  if (state_ == State::kOpen) {
    state_ = State::kClosing;
    server_.CountClose(shard_, reason);
    if (auto listener = std::move(listener_)) listener->OnSessionClose(reason);
  }
  if (transport_ == Transport::kWebSocket) {
    // A graceful close sends what is queued (e.g. a DISCONNECT packet) before
    // the close frame.
    if (ws_) ws_->Close(graceful);
    ws_.reset();
    return Finish();
  }
  // Polling: the pending GET carries a close packet, or a noop when the
  // client asked for the close itself.
  Polling& p = *polling_;  // a polling session keeps it until it is closed
  if (client_initiated) {
    p.queue.clear();
    p.queue.push_back(NoopFrame());
    terminal_queued_ = true;
  } else if (!graceful || p.queue.empty()) {
    p.queue.push_back(CloseFrame());
    terminal_queued_ = true;
  }
  if (p.poll) return FlushPoll();
  if (!graceful && !client_initiated) return Finish();
  // A server-side close waits (briefly) for the GET that drains the queue; a
  // client's close for the GET it may have sent alongside (over another
  // connection, so it can arrive second).
  p.linger_timer = std::make_unique<net::steady_timer>(server_.runtime().context(shard_));
  p.linger_timer->expires_after(kPollingLinger);
  p.linger_timer->async_wait([self](boost::system::error_code ec) {
    if (!ec) self->Finish();
  });
}

void Session::Finish() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  server_.CountOpen(shard_, transport_ == Transport::kWebSocket, -1);
  heartbeat_hook_.unlink();
  if (ws_) {
    ws_->Close();
    ws_.reset();
  }
  if (polling_ && polling_->poll) {
    RespondPoll(std::string(1, static_cast<char>(PacketType::kNoop)));
  }
  // A POST still arriving is cut off (its body would only find the session
  // gone).
  if (polling_) {
    if (auto data_request = polling_->data_request.lock()) data_request->Close();
  }
  polling_.reset();
  server_.Unregister(id());
}

}  // namespace switchboard::eio
