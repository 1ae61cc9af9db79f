#include "edge/socketio/client.h"

#include <algorithm>

#include "edge/ids.h"
#include "edge/recovery/offset.h"
#include "edge/socketio/server.h"

namespace switchboard::sio {

Client::Client(Server& server, eio::SessionPtr session)
    : server_(server),
      session_(std::move(session)),
      decoder_(server.options().decoder),
      connects_(server.options().limits.connect_rate, eio::RateClock::now()) {}

void Client::Start() {
  // The session holds us until it closes.
  session_->SetListener(std::shared_ptr<eio::SessionListener>(
      shared_from_this(), static_cast<eio::SessionListener*>(this)));
  connect_timer_ = std::make_unique<boost::asio::steady_timer>(server_.runtime().context(shard()),
                                                               server_.options().connect_timeout);
  connect_timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    auto self = weak.lock();
    if (self && self->sockets_.empty()) self->Close();
  });
}

void Client::OnSessionUpgrade() {
  auto* observer = server_.membership_observer();
  if (observer == nullptr) return;
  for (auto& socket : sockets_) {
    if (socket->connected()) observer->OnTransportChanged(*socket);
  }
}

void Client::OnSessionMessage(eio::Packet&& message) {
  auto packet = decoder_.FeedLazy(std::move(message.data), message.binary);
  if (!packet.ok()) {
    switch (decoder_.breach()) {
      case LimitBreach::kJsonDepth: server_.Count(Server::Limit::kJsonDepth); break;
      case LimitBreach::kAttachments: server_.Count(Server::Limit::kAttachments); break;
      case LimitBreach::kAttachmentBytes: server_.Count(Server::Limit::kAttachmentBytes); break;
      case LimitBreach::kNone: break;
    }
    // A protocol violation (a packet over a limit too) closes the connection.
    session_->Close("parse error");
    return;
  }
  if (packet->has_value()) OnPacket(std::move(**packet));
}

SocketPtr Client::Find(std::string_view nsp) const {
  for (const auto& socket : sockets_) {
    if (socket->nsp().name() == nsp) return socket;
  }
  return nullptr;
}

void Client::OnPacket(Packet&& packet) {
  if (packet.type == PacketType::kConnect) return OnConnect(std::move(packet));
  if (packet.type == PacketType::kConnectError) {
    session_->Close("parse error");
    return;
  }
  // Packets for a namespace this client is not in (e.g. racing a server-side
  // disconnect) are dropped; so are those for a socket still connecting
  // (Socket::OnPacket).
  if (SocketPtr socket = Find(packet.nsp)) socket->OnPacket(std::move(packet));
}

void Client::OnConnect(Packet&& packet) {
  // Every CONNECT counts, whatever becomes of it: refused ones cost a token
  // check, accepted ones (with their DISCONNECT) membership events.
  if (!connects_.Take(server_.options().limits.connect_rate, eio::RateClock::now())) {
    server_.Count(Server::Limit::kConnectRate);
    // As for an event flood: every namespace disconnected, then the close.
    return DisconnectAll();
  }
  if (Find(packet.nsp)) return;
  Namespace* nsp = server_.Find(packet.nsp);
  if (nsp == nullptr) {
    Packet error{PacketType::kConnectError, packet.nsp, std::nullopt,
                 Json{{"message", "Invalid namespace"}}};
    return SendPacket(error);
  }
  size_t max_namespaces = server_.options().limits.max_namespaces_per_connection;
  if (max_namespaces > 0 && sockets_.size() >= max_namespaces) {
    server_.Count(Server::Limit::kTooManyNamespaces);
    return SendPacket(Packet{PacketType::kConnectError, packet.nsp, std::nullopt,
                             Json{{"message", "Too many namespaces"}}});
  }
  Json auth = packet.data.has_value() ? std::move(*packet.data) : Json();
  // Connection state recovery: a pid (and the last offset received) from a
  // client that had a session here. Taken out of the auth the middlewares
  // see. Unusable ones make a new session, as unknown pids do.
  std::optional<Namespace::RecoveryAttempt> attempt;
  if (nsp->recovery() != nullptr && auth.is_object()) {
    auto pid = auth.find("pid");
    if (pid != auth.end() && pid->is_string()) {
      attempt.emplace();
      attempt->pid = pid->get<std::string>();
      auto offset = auth.find("offset");
      if (offset != auth.end() && offset->is_string()) {
        attempt->offset = recovery::ParseOffset(offset->get_ref<const std::string&>());
        if (!attempt->offset) {
          nsp->recovery()->Count(recovery::Result::kUnknown);
          attempt.reset();
        }
      }
      auth.erase("pid");
      auth.erase("offset");
    }
  }
  const std::string& edge_id = server_.options().edge_id;
  std::string id =
      edge_id.empty() ? edge::NewId(shard()) : edge::MakeSocketId(edge_id, edge::NewId(shard()));
  auto socket = std::make_shared<Socket>(shared_from_this(), *nsp, std::move(id), std::move(auth));
  // Listed while connecting too: a second CONNECT to the namespace is
  // ignored, and the namespace limit counts it.
  sockets_.push_back(socket);
  nsp->Connect(
      socket,
      [self = shared_from_this(), socket](std::optional<ConnectError> error) {
        // Closed: OnSessionClose has let go of the sockets already.
        if (self->closed_) return false;
        const std::string& name = socket->nsp().name();
        if (error) {
          self->Remove(*socket);
          Json data{{"message", error->message}};
          if (!error->data.is_null()) data["data"] = error->data;
          self->SendPacket(Packet{PacketType::kConnectError, name, std::nullopt, std::move(data)});
          return false;
        }
        // Like the reference server: the connect timeout ends with the first
        // namespace joined (and its timer is not kept for the connection's life).
        self->connect_timer_.reset();
        Json reply{{"sid", socket->id()}};
        if (!socket->pid().empty()) reply["pid"] = socket->pid();
        self->SendPacket(Packet{PacketType::kConnect, name, std::nullopt, std::move(reply)});
        return true;
      },
      std::move(attempt));
}

bool Client::SendFrames(const std::vector<eio::Frame>& frames, bool is_volatile) {
  return session_->Send(frames.data(), frames.size(), is_volatile);
}

void Client::SendPacket(const Packet& packet) {
  auto frames = Encode(packet);
  session_->Send(frames.data(), frames.size());
}

void Client::Remove(const Socket& socket) {
  auto it = std::find_if(sockets_.begin(), sockets_.end(),
                         [&](const SocketPtr& entry) { return entry.get() == &socket; });
  if (it != sockets_.end()) sockets_.erase(it);
}

void Client::Close() {
  if (closed_) return;
  session_->Close("forced close");
}

void Client::DisconnectAll() {
  auto self = shared_from_this();
  auto sockets = sockets_;  // Disconnect() edits sockets_
  for (auto& socket : sockets) socket->Disconnect(false);
  Close();
}

std::shared_ptr<Client> Client::Of(const eio::Session& session) {
  eio::SessionListener* listener = session.listener();
  if (listener == nullptr) return nullptr;
  // Every listener of a session a sio::Server accepted is a Client.
  return static_cast<Client*>(listener)->shared_from_this();
}

bool Client::CanMove() const {
  if (closed_ || moved_) return false;
  for (const auto& socket : sockets_) {
    if (!socket->connected()) return false;
  }
  return true;
}

std::vector<MovedSocketState> Client::DescribeSockets() const {
  std::vector<MovedSocketState> out;
  for (const auto& socket : sockets_) {
    if (socket->connected()) out.push_back(socket->ExportState());
  }
  return out;
}

std::vector<MovedSocketState> Client::Depart(std::string_view to_edge) {
  auto self = shared_from_this();
  moved_ = true;
  connect_timer_.reset();
  std::vector<MovedSocketState> out;
  for (const auto& socket : sockets_) {
    if (!socket->connected()) continue;
    out.push_back(socket->ExportState());
    out.back().log_offset = socket->nsp().LastLoggedOnThisShard();
    socket->nsp().Detach(*socket, to_edge);
  }
  return out;
}

void Client::ForgetSockets() {
  auto sockets = std::move(sockets_);
  sockets_.clear();
}

void Client::Relay(const Socket& socket, const std::vector<eio::Frame>& frames) {
  if (auto* relay = server_.move_relay()) relay->SendToMoved(socket, frames);
}

std::shared_ptr<Client> Client::Adopt(Server& server, eio::SessionPtr session,
                                      std::vector<MovedSocketState> sockets,
                                      std::string_view from_edge) {
  auto client = std::make_shared<Client>(server, std::move(session));
  client->session_->SetListener(std::shared_ptr<eio::SessionListener>(
      client, static_cast<eio::SessionListener*>(client.get())));
  for (MovedSocketState& state : sockets) {
    Namespace* nsp = server.Find(state.nsp);
    if (nsp == nullptr) continue;  // not served here: configurations differ
    std::string id = state.id;
    uint64_t log_offset = state.log_offset;
    auto socket = std::make_shared<Socket>(client, *nsp, std::move(id), Json());
    socket->RestoreState(std::move(state));
    client->sockets_.push_back(socket);
    nsp->Adopt(socket, from_edge, log_offset);
  }
  return client;
}

void Client::OnSessionClose(std::string_view reason) {
  closed_ = true;
  connect_timer_.reset();
  auto sockets = std::move(sockets_);
  sockets_.clear();
  for (auto& socket : sockets) socket->OnClosed(reason);
}

}  // namespace switchboard::sio
