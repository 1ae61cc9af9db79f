#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "edge/recovery/recovery.h"
#include "edge/socketio/broadcast.h"
#include "edge/socketio/event_args.h"
#include "edge/socketio/limits.h"
#include "edge/socketio/socket.h"

namespace switchboard::sio {

class Server;

// A rejected connection: sent to the client as CONNECT_ERROR {message, data}.
struct ConnectError {
  std::string message;
  Json data;  // null: no "data" field
};
// Middleware continuation: nullopt accepts, a ConnectError rejects. May be
// called later (asynchronously), but on the socket's shard.
using Next = std::function<void(std::optional<ConnectError>)>;
using Middleware = std::function<void(const SocketPtr&, Next)>;
using ConnectionHandler = std::function<void(const SocketPtr&)>;
using DisconnectHandler = std::function<void(const SocketPtr&, std::string_view reason)>;
// A client event: args excludes the event name. `ack` is empty when the
// client asked for no acknowledgement.
using EventHandler =
    std::function<void(const SocketPtr&, std::string_view event, Json& args, Ack ack)>;
// The same with the arguments as received (EventArgs): parsed only if the
// handler asks for their values.
using LazyEventHandler =
    std::function<void(const SocketPtr&, std::string_view event, EventArgs& args, Ack ack)>;

// A Socket.IO namespace ("/", "/chat"...). Handlers are registered before the
// server starts and then run concurrently on every shard: they must only
// touch the socket they are given, or thread-safe state.
class Namespace {
 public:
  Namespace(Server& server, std::string name);
  ~Namespace();

  const std::string& name() const { return name_; }
  Server& server() { return server_; }

  void Use(Middleware middleware) { middlewares_.push_back(std::move(middleware)); }
  void OnConnection(ConnectionHandler handler) { on_connection_ = std::move(handler); }
  void OnDisconnect(DisconnectHandler handler) { on_disconnect_ = std::move(handler); }
  // Handler for one event name; OnAnyEvent catches the rest.
  void On(std::string event, EventHandler handler) {
    handlers_[std::move(event)] = Parsing(std::move(handler));
  }
  void OnAnyEvent(EventHandler handler) { on_any_ = Parsing(std::move(handler)); }
  void OnLazy(std::string event, LazyEventHandler handler) {
    handlers_[std::move(event)] = std::move(handler);
  }
  void OnAnyEventLazy(LazyEventHandler handler) { on_any_ = std::move(handler); }

  // Connection state recovery (edge/recovery); set before serving. Null:
  // off (the default).
  void EnableRecovery(std::unique_ptr<recovery::Recovery> recovery) {
    recovery_ = std::move(recovery);
  }
  recovery::Recovery* recovery() { return recovery_.get(); }
  const recovery::Recovery* recovery() const { return recovery_.get(); }

  // Limits of this namespace's sockets; set before serving.
  void SetLimits(NamespaceLimits limits) { limits_ = limits; }
  const NamespaceLimits& limits() const { return limits_; }

  Broadcast To(std::string_view room) { return Broadcast(*this).To(room); }
  Broadcast Except(std::string_view room) { return Broadcast(*this).Except(room); }
  void Emit(std::string_view event, Json args = Json::array()) {
    Broadcast(*this).Emit(event, std::move(args));
  }
  // Sends an encoded packet to its target on every shard.
  void Deliver(std::shared_ptr<const Delivery> delivery);
  // A publish read from a cluster's recovery log (its stream), in the log's
  // order: `delivery` without its offset, which is added here. One caller at
  // a time, offsets increasing.
  void DeliverFromLog(uint64_t offset, std::shared_ptr<const Delivery> delivery);
  // Runs `visit` once on every shard with the connected sockets `target`
  // matches there (each once, held: a visit may join, leave or disconnect
  // them), by Deliver()'s fan-out: one post per shard, the caller's own shard
  // last and inline. For what is not one packet for all recipients: commands,
  // emits with an ack id per recipient (AckEvent).
  using TargetVisit = std::function<void(const std::vector<SocketPtr>& sockets)>;
  void ForEachTarget(std::shared_ptr<const BroadcastTarget> target, TargetVisit visit);

  // Visits the sockets of this namespace on the calling shard (snapshots).
  void ForEachLocalSocket(const std::function<void(const Socket&)>& visit) const;
  // Visits the sockets `target` matches on the calling shard, each once.
  // They are collected first, so `visit` may join, leave or disconnect.
  void ForEachLocalTarget(const BroadcastTarget& target, const std::function<void(Socket&)>& visit);
  // Counters (all shards): sockets connected now, events received from
  // clients that no handler took.
  size_t SocketCount() const;
  uint64_t UnhandledEvents() const;
  // Deliveries handed to the shards and not begun yet: how far the sockets'
  // writes are behind the publishers.
  size_t QueuedDeliveries() const;
  // Packets received from / sent to this namespace's clients.
  uint64_t MessagesIn() const;
  uint64_t MessagesOut() const;
  // Broadcasts handed to Deliver() (local emits and cluster deliveries), and
  // the sends to recipients they made on this edge.
  uint64_t Broadcasts() const { return broadcasts_.load(std::memory_order_relaxed); }
  uint64_t BroadcastDeliveries() const;
  // Sockets that moved in from further back in a cluster's recovery log than
  // this edge holds: the packets in between were not sent to them.
  uint64_t MovedInLate() const { return moved_in_late_.load(std::memory_order_relaxed); }

  // Internal: called by Client / Socket on their shard.
  // Runs the middlewares; `admit` sends the verdict and says whether the
  // socket is still wanted (its connection may have closed meanwhile).
  // A client's attempt to recover a session (its CONNECT's pid and offset;
  // no offset: it never received one).
  struct RecoveryAttempt {
    std::string pid;
    std::optional<uint64_t> offset;
  };
  void Connect(const SocketPtr& socket, std::function<bool(std::optional<ConnectError>)> admit,
               std::optional<RecoveryAttempt> attempt = std::nullopt);
  void Remove(Socket& socket, std::string_view reason);
  // Moves: the socket leaves for another edge (reported as moved: no
  // disconnect handler runs); a socket that moved here joins as it was.
  void Detach(Socket& socket, std::string_view to_edge);
  void Adopt(const SocketPtr& socket, std::string_view from_edge, uint64_t log_offset = 0);
  // The last recovery log offset this shard has delivered (0: none).
  uint64_t LastLoggedOnThisShard();
  void AddToRoom(Socket& socket, const std::string& room);
  void RemoveFromRoom(Socket& socket, const std::string& room);
  void Dispatch(const SocketPtr& socket, std::string_view event, EventArgs& args, Ack ack);
  void CountIn();
  // `n` -1 takes back a count made just before a send that was refused.
  void CountOut(int n = 1);

 private:
  struct ShardState;
  ShardState& Local();
  // A handler of parsed arguments as a lazy one.
  static LazyEventHandler Parsing(EventHandler handler) {
    if (!handler) return nullptr;
    return [handler = std::move(handler)](const SocketPtr& socket, std::string_view event,
                                          EventArgs& args, Ack ack) {
      handler(socket, event, args.json(), std::move(ack));
    };
  }
  // Runs `task` on every shard: posted to the others (counted as queued
  // deliveries until it starts), on the caller's own shard last and inline.
  template <typename Task>
  void OnEveryShard(const Task& task);
  void DeliverLocal(const Delivery& delivery);
  // Deliver() for a recoverable publish: logged (at `given`, an offset a
  // cluster's stream gave it, or the log's next), then handed to the shards
  // in log order (Recovery::order_mu).
  void DeliverLogged(std::shared_ptr<const Delivery> delivery, uint64_t given);
  // Admission after the middlewares (or none): the new-session path.
  void Admit(const SocketPtr& socket, std::function<bool(std::optional<ConnectError>)> admit,
             std::optional<ConnectError> error);
  // Recovery: takes the attempt's session record, then restores it or falls
  // back to a new session (running the middlewares if they were skipped).
  void TryRestore(const SocketPtr& socket, std::function<bool(std::optional<ConnectError>)> admit,
                  RecoveryAttempt attempt, bool middlewares_ran);
  void Restore(const SocketPtr& socket, std::function<bool(std::optional<ConnectError>)> admit,
               recovery::SessionRecord record, std::optional<uint64_t> offset,
               bool middlewares_ran);
  // After the older part of the log was read: the rest under the order lock,
  // then the socket as it was, its missed packets, the CONNECT reply.
  void FinishRestore(const SocketPtr& socket,
                     std::function<bool(std::optional<ConnectError>)> admit,
                     recovery::SessionRecord record,
                     absl::StatusOr<recovery::RecoveryLog::Older> older, bool middlewares_ran);
  void NewSessionAfterAttempt(const SocketPtr& socket,
                              std::function<bool(std::optional<ConnectError>)> admit,
                              bool middlewares_ran);
  // Writes the socket's session record (connected, or disconnected now).
  void SaveSession(const Socket& socket, bool disconnected);
  // Lists a connecting (or arriving) socket in this shard's tables.
  ShardState& List(Socket& socket);
  void RunConnectionHandler(const SocketPtr& socket);
  // The sockets `target` matches on this shard, each once, held.
  std::vector<SocketPtr> HoldLocalTarget(const BroadcastTarget& target);
  // The members of a union target (several rooms, or users) on this shard,
  // each once, except-lists not applied.
  void CollectUnion(const BroadcastTarget& target, std::vector<Socket*>& out);
  static bool Excluded(const BroadcastTarget& target, const Socket& socket);
  static void KeepOnly(const std::vector<std::string>& ids, std::vector<Socket*>& members);
  void RunMiddleware(const SocketPtr& socket, size_t index,
                     std::function<void(std::optional<ConnectError>)> done);
  // Admission after the middlewares: takes the socket's slots (edge
  // capacity, its user's sockets) or says which limit refuses it.
  std::optional<ConnectError> Reserve(const Socket& socket);
  void Release(const Socket& socket);
  // Takes the socket out of this shard's tables (and releases its slots);
  // false when it was not in them.
  bool Unlist(Socket& socket);
  // Takes the socket out of the shard's room (dropping an emptied room);
  // false when the room is not there.
  bool EraseMember(ShardState& local, const std::string& room, Socket& socket);

  Server& server_;
  std::string name_;
  std::vector<Middleware> middlewares_;
  ConnectionHandler on_connection_;
  DisconnectHandler on_disconnect_;
  // Transparent, so a client's event name is looked up without a copy.
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view name) const { return std::hash<std::string_view>{}(name); }
  };
  std::unordered_map<std::string, LazyEventHandler, NameHash, std::equal_to<>> handlers_;
  LazyEventHandler on_any_;
  std::vector<std::unique_ptr<ShardState>> shards_;
  NamespaceLimits limits_;
  // Sockets per user id on this edge (all shards); only with
  // limits_.max_sockets_per_user.
  std::mutex users_mu_;
  std::unordered_map<std::string, size_t> user_sockets_;
  std::atomic<uint64_t> broadcasts_{0};
  // Sockets of a recovery namespace that moved in from further back in its
  // log than this edge holds (Adopt).
  std::atomic<uint64_t> moved_in_late_{0};
  std::unique_ptr<recovery::Recovery> recovery_;
};

}  // namespace switchboard::sio
