#include "edge/engineio/session.h"

#include <boost/asio/post.hpp>

#include "edge/engineio/heartbeat_queue.h"
#include "edge/engineio/server.h"

namespace switchboard::eio {
namespace net = boost::asio;

namespace {
const Frame& PingFrame() {
  static const Frame frame = MakeTextFrame(PacketType::kPing);
  return frame;
}
}  // namespace

Session::Session(Server& server, std::string_view id, size_t shard, Handshake handshake)
    : server_(server), shard_(shard), handshake_(std::move(handshake)) {
  id_.fill('\0');
  id.copy(id_.data(), std::min(id.size(), id_.size()));
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
  out += server_.PublicSid(id());
  out += upgrades ? "\",\"upgrades\":[\"websocket\"]" : "\",\"upgrades\":[]";
  out += ",\"pingInterval\":" + std::to_string(o.ping_interval.count());
  out += ",\"pingTimeout\":" + std::to_string(o.ping_timeout.count());
  out += ",\"maxPayload\":" + std::to_string(o.max_http_buffer_size) + "}";
  return out;
}

std::string Session::Open(std::shared_ptr<Transport> transport, bool upgrades) {
  transport_ = std::move(transport);
  server_.CountOpen(shard_, transport_->name(), +1);
  transport_->Attach(AsTransportListener());
  SchedulePing();
  return OpenPacket(upgrades);
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
    case PacketType::kClose: return Terminate("transport close", true);
    case PacketType::kMessage:
      if (listener_) listener_->OnSessionMessage(std::move(packet));
      return;
    case PacketType::kNoop: return;
    case PacketType::kPing:
      // In v4 only the server pings; engine.io 6 closes on "invalid
      // heartbeat direction".
      return Terminate("transport error", false);
    default: return Terminate("parse error", false);
  }
}

void Session::OnTransportMessage(Transport& from, std::string_view data, bool binary) {
  auto self = shared_from_this();
  if (upgrade_ && &from == upgrade_->probe.get()) {
    if (!binary && data == "2probe") {
      upgrade_->probe->Write(MakeTextFrame(PacketType::kPong, "probe"));
      upgrade_->probed = true;
      if (transport_) transport_->SetPaused(true);
      return;
    }
    if (!binary && data == "5" && upgrade_->probed) return CompleteUpgrade();
    return EndProbe();
  }
  if (&from != transport_.get()) return;
  server_.Count(shard_, Server::Counter::kBytesIn, data.size());
  auto packet = DecodeFrame(data, binary);
  if (!packet.ok()) return Terminate("parse error", false);
  OnPacket(std::move(*packet));
}

void Session::OnTransportPacket(Transport& from, Packet&& packet) {
  if (&from != transport_.get()) return;
  OnPacket(std::move(packet));
}

// ---- sending ---------------------------------------------------------------

bool Session::Send(const Frame* frames, size_t count, bool is_volatile) {
  if (state_ != State::kOpen || overflowed_) return false;
  Transport* transport = transport_.get();
  if (transport == nullptr) return false;
  const Options& o = server_.options();
  if (is_volatile && !transport->TakesVolatile(o.volatile_drop_bytes)) {
    server_.Count(shard_, Server::Counter::kVolatileDrops, count);
    return false;
  }
  size_t bytes = 0;
  for (size_t i = 0; i < count; ++i) bytes += frames[i].bytes->size();
  server_.Count(shard_, Server::Counter::kPacketsOut, count);
  server_.Count(shard_, Server::Counter::kBytesOut, bytes);
  if (transport->queued_bytes() + bytes > o.max_send_queue_bytes) {
    // Nothing more is queued; the close is deferred because we may be inside
    // a broadcast loop over this socket's rooms.
    overflowed_ = true;
    net::post(server_.runtime().context(shard_),
              [self = shared_from_this()] { self->Terminate("send queue overflow", false); });
    return true;
  }
  transport->Write(frames, count);
  return true;
}

void Session::OnTransportMessageTooBig() { server_.CountPayloadTooLarge(); }

// ---- upgrade ---------------------------------------------------------------

bool Session::CanUpgrade(const Transport& probe) const {
  return state_ == State::kOpen && transport_ && !upgrade_ && transport_->name() != probe.name() &&
         server_.options().allow_upgrades;
}

void Session::HandleUpgrade(std::shared_ptr<Transport> probe) {
  upgrade_ = std::make_unique<Upgrade>();  // CanUpgrade() said there was none
  upgrade_->probe = std::move(probe);
  upgrade_->probe->Attach(AsTransportListener());
  upgrade_->timer = std::make_unique<net::steady_timer>(server_.runtime().context(shard_));
  upgrade_->timer->expires_after(server_.options().upgrade_timeout);
  upgrade_->timer->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->EndProbe();
  });
}

void Session::CompleteUpgrade() {
  server_.Count(shard_, Server::Counter::kUpgrades);
  server_.CountOpen(shard_, transport_->name(), -1);
  std::shared_ptr<Transport> old = std::move(transport_);
  transport_ = std::move(upgrade_->probe);
  upgrade_.reset();
  server_.CountOpen(shard_, transport_->name(), +1);
  // A pending poll is answered; what was queued while the upgrade was under
  // way goes out on the new transport.
  if (old) old->HandOver(*transport_);
  if (listener_) listener_->OnSessionUpgrade();
}

// ---- moves -----------------------------------------------------------------

namespace {
// Takes what a transport hands over (its queued frames), nothing else.
class FrameCollector final : public Transport {
 public:
  std::string_view name() const override { return "collector"; }
  void Attach(std::shared_ptr<TransportListener>) override {}
  void Write(const Frame* frames, size_t count) override {
    queued.insert(queued.end(), frames, frames + count);
  }
  bool TakesVolatile(size_t) const override { return true; }
  void HandOver(Transport&) override {}
  bool Close(CloseMode) override { return true; }
  void Discard() override {}
  std::vector<Frame> queued;
};
}  // namespace

bool Session::PauseForMove() {
  if (state_ != State::kOpen || !transport_ || upgrade_ || transport_->name() != "polling") {
    return false;
  }
  // An upgrade without a local probe: the probe is on the other edge.
  upgrade_ = std::make_unique<Upgrade>();
  upgrade_->probed = true;
  upgrade_->timer = std::make_unique<net::steady_timer>(server_.runtime().context(shard_));
  upgrade_->timer->expires_after(server_.options().upgrade_timeout);
  upgrade_->timer->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->EndProbe();
  });
  transport_->SetPaused(true);
  return true;
}

std::optional<Session::Departure> Session::Depart() {
  if (state_ != State::kOpen || !upgrade_ || upgrade_->probe || !transport_) return std::nullopt;
  auto self = shared_from_this();
  upgrade_.reset();
  heartbeat_hook_.unlink();
  FrameCollector collector;
  transport_->HandOver(collector);
  server_.CountOpen(shard_, transport_->name(), -1);
  transport_->Discard();
  state_ = State::kClosed;
  server_.Count(shard_, Server::Counter::kMovesOut);
  server_.Unregister(*this);
  return Departure{std::move(collector.queued), std::move(listener_)};
}

void Session::EndProbe() {
  if (!upgrade_) return;
  std::unique_ptr<Upgrade> upgrade = std::move(upgrade_);
  if (upgrade->probe) upgrade->probe->Close(Transport::CloseMode::kFlush);
  if (transport_) transport_->SetPaused(false);
}

void Session::OnTransportClosed(Transport& from, std::string_view reason) {
  if (upgrade_ && &from == upgrade_->probe.get()) {
    upgrade_.reset();
    if (transport_) transport_->SetPaused(false);
    return;
  }
  if (&from != transport_.get()) return;
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
  if (!transport_) return Finish();
  // A graceful close sends what is queued (e.g. a DISCONNECT packet) before
  // the close; a client's close is answered, nothing more.
  const Transport::CloseMode mode = client_initiated ? Transport::CloseMode::kAnswer
                                    : graceful       ? Transport::CloseMode::kFlush
                                                     : Transport::CloseMode::kAbort;
  if (transport_->Close(mode)) Finish();
  // Else the transport says when it is done (OnTransportClosed).
}

void Session::Finish() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  heartbeat_hook_.unlink();
  if (transport_) {
    server_.CountOpen(shard_, transport_->name(), -1);
    // Kept (its name is the session's last transport); it holds no listener.
    transport_->Discard();
  }
  server_.Unregister(*this);
}

}  // namespace switchboard::eio
