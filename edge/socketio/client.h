#pragma once

#include <absl/container/inlined_vector.h>

#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "edge/engineio/rate_limit.h"
#include "edge/engineio/session.h"
#include "edge/socketio/decoder.h"
#include "edge/socketio/moved_socket.h"
#include "edge/socketio/socket.h"

namespace switchboard::sio {

class Server;

// The Socket.IO side of one Engine.IO connection: decodes packets and
// multiplexes them over the namespace sockets it holds.
class Client : public std::enable_shared_from_this<Client>, private eio::SessionListener {
 public:
  Client(Server& server, eio::SessionPtr session);

  void Start();
  const Handshake& handshake() const { return session_->handshake(); }
  std::string_view transport() const { return session_->transport_name(); }
  size_t shard() const { return session_->shard(); }
  bool closed() const { return closed_; }

  bool SendFrames(const std::vector<eio::Frame>& frames, bool is_volatile);
  // Prefetches of what SendFrames reads, one level at a time (each reads
  // what the one before fetched): Namespace::DeliverLocal.
  void Prefetch() const { __builtin_prefetch(&session_); }
  void PrefetchSession() const { session_->Prefetch(); }
  void PrefetchTransport() const { session_->PrefetchTransport(); }
  void SendPacket(const Packet& packet);
  // Closes the whole connection (every namespace).
  void Close();
  // Server-side disconnect of every namespace socket, then Close().
  void DisconnectAll();
  // A socket left (either side disconnected it).
  void Remove(const Socket& socket);
  // The socket of namespace `nsp`, connected or still connecting.
  SocketPtr Find(std::string_view nsp) const;

  // Moves (cluster/session_mover.h). The client over `session`, or null.
  static std::shared_ptr<Client> Of(const eio::Session& session);
  // Whether every socket is connected (none is half way through a CONNECT):
  // then the session may move.
  bool CanMove() const;
  std::vector<MovedSocketState> DescribeSockets() const;
  // The old edge, once the session departed: the sockets leave their
  // namespaces (reported as moved, not disconnected), and what they send
  // from now on (answers to acks asked for before the move) goes to the
  // new edge through the server's MoveRelay.
  std::vector<MovedSocketState> Depart(std::string_view to_edge);
  bool moved() const { return moved_; }
  // The old edge, when it stops relaying for a departed client: lets go of
  // its sockets (each holds the client: a cycle otherwise).
  void ForgetSockets();
  void Relay(const Socket& socket, const std::vector<eio::Frame>& frames);
  // The new edge: the client of a session that moved here, with its sockets
  // connected as they were (no middleware, no connection handler).
  static std::shared_ptr<Client> Adopt(Server& server, eio::SessionPtr session,
                                       std::vector<MovedSocketState> sockets,
                                       std::string_view from_edge);

 private:
  // eio::SessionListener
  void OnSessionMessage(eio::Packet&& message) override;
  void OnSessionClose(std::string_view reason) override;
  void OnSessionUpgrade() override;
  void OnPacket(Packet&& packet);
  void OnConnect(Packet&& packet);

  Server& server_;
  eio::SessionPtr session_;
  Decoder decoder_;
  // Namespace sockets, connected or connecting (until the namespace admits
  // or refuses them); usually one, held inline. Few per connection, so a
  // vector beats a map; each socket knows its namespace's name.
  absl::InlinedVector<SocketPtr, 1> sockets_;
  std::unique_ptr<boost::asio::steady_timer> connect_timer_;
  // CONNECT packets (ServerLimits::connect_rate).
  eio::TokenBucket connects_;
  bool closed_ = false;
  bool moved_ = false;
};

}  // namespace switchboard::sio
