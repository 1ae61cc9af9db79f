#pragma once

#include <absl/status/statusor.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/handshake.h"
#include "edge/engineio/rate_limit.h"
#include "edge/socketio/ack.h"
#include "edge/socketio/moved_socket.h"
#include "edge/socketio/packet.h"
#include "edge/socketio/socket_rooms.h"

namespace switchboard::sio {

class Namespace;
class AckEvent;
class Broadcast;
class Client;
using Handshake = eio::Handshake;

// Result of a server → client ack: the client's arguments, or
// DeadlineExceeded / Unavailable (socket gone).
using AckCallback = std::function<void(absl::StatusOr<Json> args)>;

// One client connected to one namespace. Lives on its connection's shard:
// call its methods only from there (handlers already run there).
class Socket : public std::enable_shared_from_this<Socket> {
 public:
  Socket(std::shared_ptr<Client> client, Namespace& nsp, std::string id, Json auth);
  ~Socket();

  const std::string& id() const { return id_; }
  Namespace& nsp() const { return nsp_; }
  const Handshake& handshake() const;
  // The CONNECT packet's auth payload ({} when none was sent).
  const Json& auth() const;
  // "polling" or "websocket" (current transport).
  std::string_view transport() const;
  bool connected() const { return connected_; }

  // Application data kept on the socket (e.g. claims); an object.
  Json& data();
  // The authenticated user ("" for anonymous sockets). Set by middleware,
  // before the socket is connected; ignored afterwards.
  const std::string& user_id() const;
  void SetUserId(std::string user_id);
  // Verified token claims kept on the socket (null: none). Set like the user id.
  const Json& claims() const;
  void SetClaims(Json claims);

  // Rooms to join as the socket connects (after the membership observer
  // hears of the connection, before the connection handler runs). Set by
  // middleware; ignored once connected.
  void JoinOnConnect(std::string room);
  std::vector<std::string> TakeInitialRooms();

  // args must be a JSON array; binary nodes become attachments.
  void Emit(std::string_view event, Json args = Json::array());
  void EmitWithAck(std::string_view event, Json args, std::chrono::milliseconds timeout,
                   AckCallback callback);
  // The same with the event encoded once for many sockets (AckEvent).
  void EmitWithAck(const AckEvent& event, std::chrono::milliseconds timeout, AckCallback callback);
  // Emits only when the client can take it now (dropped otherwise).
  void EmitVolatile(std::string_view event, Json args = Json::array());

  // False when the socket is not connected or is in max_rooms_per_socket
  // rooms already (ServerLimits; counted); true once it is in the room.
  bool Join(std::string_view room);
  void Leave(std::string_view room);
  bool InRoom(std::string_view room) const;
  // Every room the socket is in, its own id room first (Socket.IO's
  // socket.rooms); joined_rooms() without the own id room.
  SocketRooms rooms() const { return SocketRooms(in_own_room_ ? &id_ : nullptr, &rooms_); }
  const std::vector<std::string>& joined_rooms() const { return rooms_; }

  // To every socket of the namespace except this one.
  Broadcast broadcast();

  // Server-side disconnect: sends DISCONNECT; close=true also closes the
  // underlying connection (all its namespaces).
  void Disconnect(bool close = false);

  // Internal (called by Client / Namespace).
  void OnPacket(Packet&& packet);
  // The socket is gone (either side disconnected it, or the connection
  // closed): leaves every room, fails pending acks, runs the disconnect handler.
  void OnClosed(std::string_view reason);
  bool SendFrames(const std::vector<eio::Frame>& frames, bool is_volatile);
  void SendPacket(const Packet& packet);
  // ACK `id` whose arguments are JSON text, comma-separated without brackets.
  void SendAckText(uint64_t id, std::string_view args_list);
  void MarkConnected() { connected_ = true; }
  // Connection state recovery (edge/recovery): the session's pid ("" when
  // its namespace has none), whether it was restored, and the last log
  // offset a restore replayed (live deliveries up to it are skipped: the
  // replay sent them).
  const std::string& pid() const;
  void SetPid(std::string pid);
  bool recovered() const { return recovered_; }
  uint64_t replayed_through() const { return extras_ ? extras_->replayed_through : 0; }
  void MarkRecovered(uint64_t replayed_through) {
    recovered_ = true;
    extras().replayed_through = replayed_through;
  }
  uint64_t start_offset() const { return extras_ ? extras_->start_offset : 0; }
  void SetStartOffset(uint64_t offset);
  // A restore takes over the previous session's id (before it connects).
  void SetIdForRestore(std::string id) {
    if (!connected_) id_ = std::move(id);
  }
  // Moves (cluster/session_mover.h): the socket's state, to take along; and
  // the same restored on the new edge (before it is connected there).
  MovedSocketState ExportState() const;
  void RestoreState(MovedSocketState&& state);
  // The client's answer to the server -> client ack `id` (one this socket
  // awaits; others are ignored).
  void AnswerAck(uint64_t id, Json args) { OnAck(id, std::move(args)); }
  Client& client() { return *client_; }
  // Asks the CPU for the fields a delivery reads (Namespace::DeliverLocal).
  void Prefetch() const {
    __builtin_prefetch(&client_);
    __builtin_prefetch(&connected_);
  }

 private:
  void OnAck(uint64_t id, Json args);
  // Registers `callback` (with its timeout) under the next ack id; returns it.
  uint64_t AwaitAck(std::chrono::milliseconds timeout, AckCallback callback);
  // The event rate limit: false when this client event is dropped (and the
  // client told, or disconnected for flooding).
  bool AllowEvent(const std::optional<uint64_t>& ack_id);

  // Fields are laid out for size: one per connection (idle sockets).
  std::shared_ptr<Client> client_;
  Namespace& nsp_;
  uint32_t flood_drops_ = 0;  // events dropped in the flood window (saturates)
  bool connected_ = false;
  bool in_own_room_ = false;
  bool recovered_ = false;
  std::string id_;
  // Rooms joined, without the own id room (implicit: in_own_room_).
  std::vector<std::string> rooms_;
  // What many sockets never set, made on the first set: an anonymous
  // socket that sent no auth payload and recovers nothing holds a null
  // pointer instead of ~130 bytes.
  struct Extras {
    Json auth;  // null: none sent
    Json data;  // null until data() is first called
    std::string user_id;
    Json claims;
    std::string pid;  // empty unless the namespace recovers sessions
    uint64_t replayed_through = 0;
    uint64_t start_offset = 0;
    std::vector<std::string> initial_rooms;  // JoinOnConnect's
  };
  Extras& extras() {
    if (!extras_) extras_ = std::make_unique<Extras>();
    return *extras_;
  }
  std::unique_ptr<Extras> extras_;
  uint64_t next_ack_id_ = 0;
  struct PendingAck;
  // Acks awaited, oldest first (a list: usually empty, costs one pointer).
  std::unique_ptr<PendingAck> pending_acks_;
  eio::TokenBucket events_;
  eio::RateClock::time_point last_notice_;   // last "rate-limited" event sent
  eio::RateClock::time_point flood_window_;  // start of the current drop window
};

using SocketPtr = std::shared_ptr<Socket>;

}  // namespace switchboard::sio
