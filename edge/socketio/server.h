#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/options.h"
#include "edge/engineio/server.h"
#include "edge/runtime.h"
#include "edge/socketio/decoder.h"
#include "edge/socketio/limits.h"
#include "edge/socketio/membership_observer.h"
#include "edge/socketio/moved_socket.h"
#include "edge/socketio/namespace.h"

namespace switchboard::sio {

struct ServerOptions {
  // A connection that joins no namespace within this time is closed.
  std::chrono::milliseconds connect_timeout{45000};
  // Packet limits (max_attachment_bytes 0: the engine's maxHttpBufferSize).
  DecoderLimits decoder;
  // Edge-wide limits; per-namespace ones are Namespace::SetLimits().
  ServerLimits limits;
  // In a cluster: socket ids become "<edge_id>.<random>", so that anyone can
  // tell which edge holds a socket. Empty: plain random ids.
  std::string edge_id;
};

// Hears every broadcast that this server's own handlers emit (not those
// handed to Namespace::Deliver from elsewhere), before it is delivered
// locally: what a cluster link sends on to the other edges.
class BroadcastRelay {
 public:
  enum class Relayed {
    kDeliverHere,  // sent on: deliver it on this edge now
    // Refused (it cannot reach the other edges, e.g. too large for the bus):
    // delivered nowhere, rather than on this edge only.
    kRefused,
    // Written to the namespace's recovery log (a cluster's stream): every
    // edge, this one too, delivers it from there, in the log's order.
    kLogged,
  };
  virtual ~BroadcastRelay() = default;
  virtual Relayed OnLocalBroadcast(Namespace& nsp, const Delivery& delivery) = 0;
};

// Hears every client event that reaches a namespace's handlers, before them (the Admin UI's
// development mode shows them). Called on the socket's shard.
class EventTap {
 public:
  virtual ~EventTap() = default;
  virtual void OnClientEvent(const Namespace& nsp, const Socket& socket, std::string_view event,
                             EventArgs& args) = 0;
  // After a delivery was written to `recipients` (on the calling shard). `recipients` is valid
  // during the call only: the tap may deliver (inline on this shard), which reuses it.
  virtual void OnDelivered(const Namespace& nsp, const Delivery& delivery,
                           const std::vector<Socket*>& recipients) = 0;
};

// A Socket.IO server on top of one Engine.IO server. Mount engine() on an
// edge::HttpServer to serve it.
class Server {
 public:
  Server(edge::Runtime& runtime, eio::Options engine_options, ServerOptions options = {});
  ~Server();

  // The namespace of that name, created on first use. Call before serving.
  Namespace& Of(std::string_view name);
  // nullptr for a namespace nobody declared.
  Namespace* Find(std::string_view name);
  const std::vector<std::unique_ptr<Namespace>>& namespaces() const { return namespaces_; }

  eio::Server& engine() { return *engine_; }
  edge::Runtime& runtime() { return runtime_; }
  const ServerOptions& options() const { return options_; }

  // Set before serving; not owned; nullptr: nobody listens.
  void SetMembershipObserver(MembershipObserver* observer) { observer_ = observer; }
  MembershipObserver* membership_observer() const { return observer_; }
  // Set before serving; not owned; nullptr: broadcasts stay on this server.
  void SetBroadcastRelay(BroadcastRelay* relay) { relay_ = relay; }
  BroadcastRelay* broadcast_relay() const { return relay_; }
  // Set before serving; not owned; nullptr: sessions do not move.
  void SetMoveRelay(MoveRelay* relay) { move_relay_ = relay; }
  MoveRelay* move_relay() const { return move_relay_; }
  // Set before serving (or while nothing is served); not owned; nullptr: none.
  void SetEventTap(EventTap* tap) { event_tap_ = tap; }
  EventTap* event_tap() const { return event_tap_; }

  // What the limits refused since the start (all shards).
  struct LimitCounters {
    uint64_t server_at_capacity = 0;     // CONNECT_ERROR "Server at capacity" (maxSockets)
    uint64_t too_many_namespaces = 0;    // CONNECT_ERROR "Too many namespaces"
    uint64_t too_many_user_sockets = 0;  // CONNECT_ERROR "Too many connections for this user"
    uint64_t room_limit = 0;             // joins refused by max_rooms_per_socket
    uint64_t rate_limited = 0;           // client events dropped by the event rate
    uint64_t connect_rate = 0;           // connections closed past the CONNECT rate
    uint64_t flood_disconnects = 0;      // clients disconnected for flooding
    uint64_t json_depth = 0;             // packets refused (connection closed): nesting
    uint64_t attachments = 0;            // ... too many binary attachments
    uint64_t attachment_bytes = 0;       // ... attachments too large
  };
  LimitCounters limit_counters() const;
  // Namespace sockets connected now (all namespaces, all shards).
  size_t SocketCount() const { return sockets_.load(std::memory_order_relaxed); }

  // Internal.
  enum class Limit {
    kServerAtCapacity,
    kTooManyNamespaces,
    kTooManyUserSockets,
    kRoomLimit,
    kRateLimited,
    kConnectRate,
    kFloodDisconnect,
    kJsonDepth,
    kAttachments,
    kAttachmentBytes,
    kCount
  };
  void Count(Limit limit) {
    counters_[static_cast<size_t>(limit)].fetch_add(1, std::memory_order_relaxed);
  }
  // Takes a socket slot; false at limits.max_sockets.
  bool ReserveSocket();
  void ReleaseSocket() { sockets_.fetch_sub(1, std::memory_order_relaxed); }
  // A socket that moved here takes its slot whatever the limit.
  void CountAdoptedSocket() { sockets_.fetch_add(1, std::memory_order_relaxed); }

 private:
  edge::Runtime& runtime_;
  ServerOptions options_;
  std::unique_ptr<eio::Server> engine_;
  std::vector<std::unique_ptr<Namespace>> namespaces_;
  MembershipObserver* observer_ = nullptr;
  BroadcastRelay* relay_ = nullptr;
  MoveRelay* move_relay_ = nullptr;
  EventTap* event_tap_ = nullptr;
  std::atomic<size_t> sockets_{0};
  std::atomic<uint64_t> counters_[static_cast<size_t>(Limit::kCount)] = {};
};

}  // namespace switchboard::sio
