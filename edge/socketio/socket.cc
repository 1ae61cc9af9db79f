#include "edge/socketio/socket.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdint>
#include <utility>

#include "edge/ids.h"
#include "edge/socketio/ack_event.h"
#include "edge/socketio/client.h"
#include "edge/socketio/event_args.h"
#include "edge/socketio/namespace.h"
#include "edge/socketio/server.h"

namespace switchboard::sio {

struct Socket::PendingAck {
  uint64_t id;
  AckCallback callback;
  boost::asio::steady_timer timer;
  std::unique_ptr<PendingAck> next;  // a younger one
};

namespace {

// Unlinks the pending ack `id` from the list; nullptr if it is not there.
template <typename Ack>
std::unique_ptr<Ack> Unlink(std::unique_ptr<Ack>& head, uint64_t id) {
  for (std::unique_ptr<Ack>* link = &head; *link; link = &(*link)->next) {
    if ((*link)->id != id) continue;
    std::unique_ptr<Ack> found = std::move(*link);
    *link = std::move(found->next);
    return found;
  }
  return nullptr;
}

// Frees a list one node at a time (a recursive free could overflow the
// stack on a long one).
template <typename Ack>
void FreeList(std::unique_ptr<Ack> head) {
  while (head) head = std::move(head->next);
}

}  // namespace

Socket::Socket(std::shared_ptr<Client> client, Namespace& nsp, std::string id, Json auth)
    : client_(std::move(client)), nsp_(nsp), id_(std::move(id)) {
  if (!auth.is_null()) extras().auth = std::move(auth);
  auto now = eio::RateClock::now();
  events_ = eio::TokenBucket(nsp_.limits().event_rate.rate, now);
  last_notice_ = now - std::chrono::hours(1);
  flood_window_ = now;
}

const Json& Socket::auth() const {
  static const Json kNone = Json::object();
  return extras_ && !extras_->auth.is_null() ? extras_->auth : kNone;
}

Json& Socket::data() {
  Json& data = extras().data;
  if (data.is_null()) data = Json::object();  // made when first used
  return data;
}

const std::string& Socket::user_id() const {
  static const std::string kAnonymous;
  return extras_ ? extras_->user_id : kAnonymous;
}

void Socket::SetUserId(std::string user_id) {
  if (connected_ || (!extras_ && user_id.empty())) return;
  extras().user_id = std::move(user_id);
}

const Json& Socket::claims() const {
  static const Json kNone;
  return extras_ ? extras_->claims : kNone;
}

void Socket::SetClaims(Json claims) {
  if (connected_ || (!extras_ && claims.is_null())) return;
  extras().claims = std::move(claims);
}

const std::string& Socket::pid() const {
  static const std::string kNone;
  return extras_ ? extras_->pid : kNone;
}

void Socket::SetPid(std::string pid) {
  if (!extras_ && pid.empty()) return;
  extras().pid = std::move(pid);
}

void Socket::SetStartOffset(uint64_t offset) {
  if (!extras_ && offset == 0) return;
  extras().start_offset = offset;
}

Socket::~Socket() { FreeList(std::move(pending_acks_)); }

const Handshake& Socket::handshake() const { return client_->handshake(); }

std::string_view Socket::transport() const { return client_->transport(); }

void Socket::JoinOnConnect(std::string room) {
  if (connected_) return;
  extras().initial_rooms.push_back(std::move(room));
}

std::vector<std::string> Socket::TakeInitialRooms() {
  if (!extras_) return {};
  return std::exchange(extras_->initial_rooms, {});
}

void Socket::SendPacket(const Packet& packet) {
  if (!connected_) return;
  if (client_->moved()) return client_->Relay(*this, Encode(packet));
  nsp_.CountOut();
  client_->SendPacket(packet);
}

void Socket::SendAckText(uint64_t id, std::string_view args_list) {
  if (!connected_) return;
  // What Encode makes of the parsed arguments, minus the parse and dump.
  const std::string& nsp = nsp_.name();
  char digits[20];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), id);
  auto text = std::make_shared<std::string>();
  text->reserve(4 + nsp.size() + static_cast<size_t>(end - digits) + args_list.size());
  text->push_back(static_cast<char>(eio::PacketType::kMessage));
  text->push_back(static_cast<char>('0' + static_cast<int>(PacketType::kAck)));
  if (!nsp.empty() && nsp != "/") {
    text->append(nsp);
    text->push_back(',');
  }
  text->append(digits, end);
  text->push_back('[');
  text->append(args_list);
  text->push_back(']');
  SendFrames({eio::Frame{std::move(text), /*binary=*/false}}, /*is_volatile=*/false);
}

bool Socket::SendFrames(const std::vector<eio::Frame>& frames, bool is_volatile) {
  if (!connected_) return false;
  if (client_->moved()) {
    client_->Relay(*this, frames);
    return true;
  }
  // Counted before the write starts: the client may read the packet before
  // SendFrames returns, and must then find it counted.
  nsp_.CountOut();
  if (!client_->SendFrames(frames, is_volatile)) {
    nsp_.CountOut(-1);
    return false;
  }
  return true;
}

void Socket::Emit(std::string_view event, Json args) {
  SendPacket(MakeEvent(nsp_.name(), event, std::move(args)));
}

void Socket::EmitVolatile(std::string_view event, Json args) {
  if (!connected_) return;
  SendFrames(Encode(MakeEvent(nsp_.name(), event, std::move(args))), true);
}

void Socket::EmitWithAck(std::string_view event, Json args, std::chrono::milliseconds timeout,
                         AckCallback callback) {
  if (!connected_) {
    if (callback) callback(absl::UnavailableError("socket is disconnected"));
    return;
  }
  uint64_t id = AwaitAck(timeout, std::move(callback));
  SendPacket(MakeEvent(nsp_.name(), event, std::move(args), id));
}

void Socket::EmitWithAck(const AckEvent& event, std::chrono::milliseconds timeout,
                         AckCallback callback) {
  if (!connected_) {
    if (callback) callback(absl::UnavailableError("socket is disconnected"));
    return;
  }
  SendFrames(event.Frames(AwaitAck(timeout, std::move(callback))), /*is_volatile=*/false);
}

uint64_t Socket::AwaitAck(std::chrono::milliseconds timeout, AckCallback callback) {
  uint64_t id = next_ack_id_++;
  auto pending = std::make_unique<PendingAck>(PendingAck{
      id, std::move(callback),
      boost::asio::steady_timer(nsp_.server().runtime().context(client_->shard()), timeout),
      nullptr});
  pending->timer.async_wait([weak = weak_from_this(), id](boost::system::error_code ec) {
    if (ec) return;
    auto self = weak.lock();
    if (!self) return;
    std::unique_ptr<PendingAck> expired = Unlink(self->pending_acks_, id);
    if (!expired) return;
    auto cb = std::move(expired->callback);
    expired.reset();
    if (cb) cb(absl::DeadlineExceededError("operation has timed out"));
  });
  std::unique_ptr<PendingAck>* tail = &pending_acks_;
  while (*tail) tail = &(*tail)->next;
  *tail = std::move(pending);
  return id;
}

void Socket::OnAck(uint64_t id, Json args) {
  std::unique_ptr<PendingAck> pending = Unlink(pending_acks_, id);
  if (!pending) {
    // Late or unknown; or, for a socket that moved here (its id names
    // another edge), asked for by the edge it came from.
    auto* relay = nsp_.server().move_relay();
    if (relay != nullptr && edge::EdgeOfSocketId(id_) != nsp_.server().options().edge_id) {
      relay->AnswerElsewhere(*this, id, args);
    }
    return;
  }
  pending->timer.cancel();
  if (pending->callback) pending->callback(std::move(args));
}

bool Socket::Join(std::string_view room) {
  if (!connected_) return false;
  // The own id room is implicit (the namespace finds it through its socket
  // map), and not counted against the limit.
  if (room == id_) {
    in_own_room_ = true;
    return true;
  }
  if (InRoom(room)) return true;
  size_t max = nsp_.server().options().limits.max_rooms_per_socket;
  if (max > 0 && rooms_.size() >= max) {
    nsp_.server().Count(Server::Limit::kRoomLimit);
    return false;
  }
  rooms_.emplace_back(room);
  nsp_.AddToRoom(*this, rooms_.back());
  return true;
}

void Socket::Leave(std::string_view room) {
  if (room == id_) {
    in_own_room_ = false;
    return;
  }
  auto it = std::find(rooms_.begin(), rooms_.end(), room);
  if (it == rooms_.end()) return;
  nsp_.RemoveFromRoom(*this, *it);
  rooms_.erase(it);
}

bool Socket::InRoom(std::string_view room) const {
  if (room == id_) return in_own_room_;
  return std::find(rooms_.begin(), rooms_.end(), room) != rooms_.end();
}

Broadcast Socket::broadcast() { return Broadcast(nsp_).Except(id_); }

void Socket::OnPacket(Packet&& packet) {
  if (!connected_) return;
  nsp_.CountIn();
  switch (packet.type) {
    case PacketType::kEvent:
    case PacketType::kBinaryEvent: {
      if (!AllowEvent(packet.id)) return;
      // Unparsed when the decoder could leave it as text (EventArgs).
      EventArgs args =
          packet.raw ? EventArgs(std::move(*packet.raw)) : EventArgs(std::move(*packet.data));
      Ack ack;
      if (packet.id) ack = Ack(weak_from_this(), *packet.id);
      nsp_.Dispatch(shared_from_this(), args.name(), args, std::move(ack));
      return;
    }
    case PacketType::kAck:
    case PacketType::kBinaryAck:
      if (packet.id) OnAck(*packet.id, packet.data ? std::move(*packet.data) : Json::array());
      return;
    case PacketType::kDisconnect: {
      auto self = shared_from_this();
      client_->Remove(*this);
      OnClosed("client namespace disconnect");
      return;
    }
    default: return;
  }
}

bool Socket::AllowEvent(const std::optional<uint64_t>& ack_id) {
  const EventRateLimits& limits = nsp_.limits().event_rate;
  if (limits.rate.per_second <= 0) return true;
  auto now = eio::RateClock::now();
  if (events_.Take(limits.rate, now)) return true;
  Server& server = nsp_.server();
  server.Count(Server::Limit::kRateLimited);
  if (now - flood_window_ >= limits.flood_window) {
    flood_window_ = now;
    flood_drops_ = 0;
  }
  if (flood_drops_ < UINT32_MAX) ++flood_drops_;
  if (limits.flood_drops > 0 && flood_drops_ > limits.flood_drops) {
    server.Count(Server::Limit::kFloodDisconnect);
    Disconnect(true);
    return false;
  }
  int64_t retry_ms = events_.RetryAfterMs(limits.rate);
  if (ack_id) {
    SendPacket(Packet{
        PacketType::kAck, nsp_.name(), *ack_id,
        Json::array({Json{{"ok", false}, {"error", "rate-limited"}, {"retryAfterMs", retry_ms}}})});
  }
  if (now - last_notice_ >= std::chrono::seconds(1)) {
    last_notice_ = now;
    Emit("rate-limited", Json::array({Json{{"retryAfterMs", retry_ms}}}));
  }
  return false;
}

void Socket::Disconnect(bool close) {
  if (!connected_) return;
  // Closing the connection disconnects every namespace on it, each with its
  // own DISCONNECT packet, as the reference server does.
  if (close) return client_->DisconnectAll();
  auto self = shared_from_this();
  SendPacket(Packet{PacketType::kDisconnect, nsp_.name(), std::nullopt, std::nullopt});
  client_->Remove(*this);
  OnClosed("server namespace disconnect");
}

MovedSocketState Socket::ExportState() const {
  MovedSocketState state;
  state.nsp = nsp_.name();
  state.id = id_;
  if (extras_) {
    state.user_id = extras_->user_id;
    state.claims = extras_->claims;
    state.data = extras_->data;
    state.auth = extras_->auth;
    state.pid = extras_->pid;
    state.start_offset = extras_->start_offset;
  }
  state.rooms = rooms_;
  state.in_own_room = in_own_room_;
  state.next_ack_id = next_ack_id_;
  return state;
}

void Socket::RestoreState(MovedSocketState&& state) {
  if (extras_ || !state.user_id.empty() || !state.claims.is_null() || !state.data.is_null() ||
      !state.auth.is_null() || !state.pid.empty() || state.start_offset != 0) {
    Extras& extras = this->extras();
    extras.user_id = std::move(state.user_id);
    extras.claims = std::move(state.claims);
    extras.data = std::move(state.data);
    extras.auth = std::move(state.auth);
    extras.pid = std::move(state.pid);
    extras.start_offset = state.start_offset;
  }
  rooms_ = std::move(state.rooms);
  in_own_room_ = state.in_own_room;
  next_ack_id_ = state.next_ack_id;
}

void Socket::OnClosed(std::string_view reason) {
  if (!connected_) return;
  auto self = shared_from_this();
  connected_ = false;
  nsp_.Remove(*this, reason);
  rooms_.clear();
  in_own_room_ = false;
  std::unique_ptr<PendingAck> acks = std::move(pending_acks_);
  while (acks) {
    std::unique_ptr<PendingAck> pending = std::move(acks);
    acks = std::move(pending->next);
    pending->timer.cancel();
    if (pending->callback)
      pending->callback(absl::UnavailableError("socket has been disconnected"));
  }
}

}  // namespace switchboard::sio
