#include "edge/socketio/namespace.h"

#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "base/shrink_when_sparse.h"
#include "edge/engineio/transport.h"
#include "edge/ids.h"
#include "edge/recovery/offset.h"
#include "edge/recovery/session_match.h"
#include "edge/socketio/client.h"
#include "edge/socketio/server.h"

namespace switchboard::sio {

namespace {

// A shard's sockets, found by id: a set of pointers hashed by the socket's
// own id (no key copy, no node per socket). A socket leaves it (OnClosed)
// before it can die: the set reads ids when it grows.
struct SocketIdHash {
  using is_transparent = void;
  size_t operator()(std::string_view id) const { return absl::Hash<std::string_view>{}(id); }
  size_t operator()(const Socket* socket) const { return (*this)(socket->id()); }
};
struct SocketIdEq {
  using is_transparent = void;
  static std::string_view Id(std::string_view id) { return id; }
  static std::string_view Id(const Socket* socket) { return socket->id(); }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return Id(a) == Id(b);
  }
};

}  // namespace

// Sockets and rooms of one shard: touched only by that shard's thread.
struct Namespace::ShardState {
  absl::flat_hash_set<Socket*, SocketIdHash, SocketIdEq> sockets;
  std::unordered_map<std::string, std::unordered_set<Socket*>> rooms;
  std::unordered_map<std::string, std::unordered_set<Socket*>> users;  // non-empty user ids
  std::atomic<size_t> socket_count{0};
  std::atomic<uint64_t> unhandled_events{0};
  std::atomic<uint64_t> handler_errors{0};
  // Written by this shard only; read by anyone (heartbeats).
  std::atomic<uint64_t> messages_in{0};
  std::atomic<uint64_t> messages_out{0};
  std::atomic<uint64_t> deliveries{0};  // sends made by DeliverLocal
  // Deliveries posted to this shard and not begun yet (any thread adds).
  std::atomic<uint32_t> queued_deliveries{0};
  // The offset of the last logged delivery this shard ran (this shard only).
  uint64_t last_logged = 0;
};

Namespace::Namespace(Server& server, std::string name) : server_(server), name_(std::move(name)) {
  for (size_t i = 0; i < server_.runtime().size(); ++i) {
    shards_.push_back(std::make_unique<ShardState>());
  }
}

Namespace::~Namespace() = default;

Namespace::ShardState& Namespace::Local() {
  int shard = edge::Runtime::CurrentShard();
  return *shards_[shard < 0 ? 0 : shard];
}

void Namespace::Connect(const SocketPtr& socket,
                        std::function<bool(std::optional<ConnectError>)> admit,
                        std::optional<RecoveryAttempt> attempt) {
  if (recovery_ && attempt) {
    if (recovery_->options().skip_middlewares) {
      return TryRestore(socket, std::move(admit), std::move(*attempt), false);
    }
    // The middlewares first: the restore must be the same user's.
    return RunMiddleware(socket, 0,
                         [this, socket, admit = std::move(admit), attempt = std::move(*attempt)](
                             std::optional<ConnectError> error) mutable {
                           if (error) return Admit(socket, std::move(admit), std::move(error));
                           TryRestore(socket, std::move(admit), std::move(attempt), true);
                         });
  }
  RunMiddleware(socket, 0,
                [this, socket, admit = std::move(admit)](std::optional<ConnectError> error) {
                  Admit(socket, admit, std::move(error));
                });
}

void Namespace::Admit(const SocketPtr& socket,
                      std::function<bool(std::optional<ConnectError>)> admit,
                      std::optional<ConnectError> error) {
  bool reserved = false;
  if (!error) {
    error = Reserve(*socket);
    reserved = !error;
  }
  // A recoverable session's pid goes out in the CONNECT reply.
  if (!error && recovery_ && socket->pid().empty()) {
    int shard = edge::Runtime::CurrentShard();
    size_t s = shard < 0 ? 0 : static_cast<size_t>(shard);
    socket->SetPid(edge::NewId(s) + edge::NewId(s));
  }
  if (!admit(std::move(error))) {
    if (reserved) Release(*socket);
    return;
  }
  List(*socket);
  socket->MarkConnected();
  socket->Join(socket->id());
  if (auto* observer = server_.membership_observer()) observer->OnConnected(*socket);
  for (std::string& room : socket->TakeInitialRooms()) socket->Join(room);
  if (recovery_) {
    socket->SetStartOffset(recovery_->log().Stats().last_offset);
    SaveSession(*socket, false);
  }
  RunConnectionHandler(socket);
}

// In this shard's tables as a connected socket of the namespace.
Namespace::ShardState& Namespace::List(Socket& socket) {
  ShardState& local = Local();
  local.sockets.insert(&socket);
  if (!socket.user_id().empty()) local.users[socket.user_id()].insert(&socket);
  local.socket_count.fetch_add(1, std::memory_order_relaxed);
  return local;
}

void Namespace::RunConnectionHandler(const SocketPtr& socket) {
  if (!on_connection_) return;
  try {
    on_connection_(socket);
  } catch (const std::exception&) {
    Local().handler_errors.fetch_add(1, std::memory_order_relaxed);
    socket->Disconnect(true);
  }
}

void Namespace::TryRestore(const SocketPtr& socket,
                           std::function<bool(std::optional<ConnectError>)> admit,
                           RecoveryAttempt attempt, bool middlewares_ran) {
  size_t shard = socket->client().shard();
  std::optional<uint64_t> offset = attempt.offset;
  recovery_->sessions().Take(
      attempt.pid, std::chrono::system_clock::now(),
      [this, socket, admit = std::move(admit), offset, middlewares_ran,
       shard](absl::StatusOr<recovery::SessionRecord> record) mutable {
        // Back on the socket's shard (a durable store answers from its own
        // threads; the in-memory one at once).
        auto go = [this, socket, admit = std::move(admit), offset, middlewares_ran,
                   record = std::move(record)]() mutable {
          if (!record.ok()) {
            recovery_->Count(absl::IsFailedPrecondition(record.status()) ? recovery::Result::kReused
                             : absl::IsDeadlineExceeded(record.status())
                                 ? recovery::Result::kExpired
                                 : recovery::Result::kUnknown);
            return NewSessionAfterAttempt(socket, std::move(admit), middlewares_ran);
          }
          Restore(socket, std::move(admit), std::move(*record), offset, middlewares_ran);
        };
        if (edge::Runtime::CurrentShard() == static_cast<int>(shard)) return go();
        server_.runtime().Post(shard, std::move(go));
      });
}

void Namespace::NewSessionAfterAttempt(const SocketPtr& socket,
                                       std::function<bool(std::optional<ConnectError>)> admit,
                                       bool middlewares_ran) {
  if (middlewares_ran) return Admit(socket, std::move(admit), std::nullopt);
  RunMiddleware(socket, 0,
                [this, socket, admit = std::move(admit)](std::optional<ConnectError> error) {
                  Admit(socket, admit, std::move(error));
                });
}

void Namespace::Restore(const SocketPtr& socket,
                        std::function<bool(std::optional<ConnectError>)> admit,
                        recovery::SessionRecord record, std::optional<uint64_t> offset,
                        bool middlewares_ran) {
  // The middlewares ran again: never someone else's session.
  if (middlewares_ran && socket->user_id() != record.state.user_id) {
    recovery_->Count(recovery::Result::kUnknown);
    recovery_->sessions().Put(std::move(record), nullptr);  // still its owner's
    return NewSessionAfterAttempt(socket, std::move(admit), true);
  }
  if (socket->client().closed()) {
    recovery_->sessions().Put(std::move(record), nullptr);
    return;
  }
  uint64_t after = offset ? *offset : record.start_offset;
  size_t shard = socket->client().shard();
  // What this edge's memory does not hold (a cluster's log: older than this
  // edge's start) is read from the stream first, outside the order lock.
  auto state = std::make_shared<const MovedSocketState>(record.state);
  recovery_->log().ReadOlder(
      after, [state](const BroadcastTarget& target) { return recovery::Reaches(target, *state); },
      [this, socket, admit = std::move(admit), record = std::move(record), middlewares_ran,
       shard](absl::StatusOr<recovery::RecoveryLog::Older> older) mutable {
        auto go = [this, socket, admit = std::move(admit), record = std::move(record),
                   middlewares_ran, older = std::move(older)]() mutable {
          FinishRestore(socket, std::move(admit), std::move(record), std::move(older),
                        middlewares_ran);
        };
        if (edge::Runtime::CurrentShard() == static_cast<int>(shard)) return go();
        server_.runtime().Post(shard, std::move(go));
      });
}

void Namespace::FinishRestore(const SocketPtr& socket,
                              std::function<bool(std::optional<ConnectError>)> admit,
                              recovery::SessionRecord record,
                              absl::StatusOr<recovery::RecoveryLog::Older> older,
                              bool middlewares_ran) {
  auto expired_or_unknown = [this](const absl::Status& status) {
    recovery_->Count(absl::IsOutOfRange(status) ? recovery::Result::kExpired
                                                : recovery::Result::kUnknown);
  };
  if (!older.ok()) {
    expired_or_unknown(older.status());
    return NewSessionAfterAttempt(socket, std::move(admit), middlewares_ran);
  }
  if (socket->client().closed()) {
    recovery_->sessions().Put(std::move(record), nullptr);
    return;
  }
  std::unique_lock order(recovery_->order_mu());
  absl::StatusOr<std::vector<recovery::LogEntryPtr>> missed;
  const MovedSocketState& state = record.state;
  recovery_->log().ReadAfter(
      older->through,
      [&state](const BroadcastTarget& target) { return recovery::Reaches(target, state); },
      [&missed](absl::StatusOr<std::vector<recovery::LogEntryPtr>> entries) {
        missed = std::move(entries);
      });
  // A cluster's log: the client's old edge delivered further than this one
  // yet (ReadOlder checked the offset against the stream): nothing to send,
  // this edge skips up to it.
  if (absl::IsInvalidArgument(missed.status()) && recovery_->log().shared()) {
    missed = std::vector<recovery::LogEntryPtr>{};
  }
  if (!missed.ok()) {
    order.unlock();
    expired_or_unknown(missed.status());
    return NewSessionAfterAttempt(socket, std::move(admit), middlewares_ran);
  }
  // The session as it was: same id, user, claims, data, rooms.
  socket->SetIdForRestore(record.state.id);
  Json auth = socket->auth();
  record.state.auth = std::move(auth);  // this CONNECT's, without pid / offset
  socket->RestoreState(std::move(record.state));
  socket->SetPid(record.pid);
  socket->SetStartOffset(record.start_offset);
  if (std::optional<ConnectError> error = Reserve(*socket)) {
    order.unlock();
    record.state = socket->ExportState();  // still its owner's, for a later try
    recovery_->sessions().Put(std::move(record), nullptr);
    admit(std::move(error));
    return;
  }
  ShardState& local = List(*socket);
  for (const auto& room : socket->joined_rooms()) local.rooms[room].insert(socket.get());
  socket->MarkConnected();
  // Publishes logged up to here are in `missed` or not for this socket;
  // those still queued for this shard skip it (replayed_through).
  socket->MarkRecovered(std::max(older->through, recovery_->log().Stats().last_offset));
  order.unlock();
  // The missed packets, then the CONNECT reply (the client buffers them
  // until it): as the reference server does.
  for (const auto* part : {&older->entries, &*missed}) {
    for (const recovery::LogEntryPtr& entry : *part) {
      socket->SendFrames(entry->delivery->frames, false);
    }
  }
  recovery_->CountReplayed(older->entries.size() + missed->size());
  recovery_->Count(recovery::Result::kRecovered);
  if (!admit(std::nullopt)) return;  // not reached: the client is open (checked above)
  if (auto* observer = server_.membership_observer()) observer->OnConnected(*socket);
  SaveSession(*socket, false);
  RunConnectionHandler(socket);
}

void Namespace::SaveSession(const Socket& socket, bool disconnected) {
  if (!recovery_ || socket.pid().empty()) return;
  recovery::SessionRecord record;
  record.pid = socket.pid();
  record.state = socket.ExportState();
  record.state.auth = Json();  // not kept: a restore brings its own
  record.start_offset = socket.start_offset();
  record.edge_id = server_.options().edge_id;
  if (disconnected) record.disconnected_at = std::chrono::system_clock::now();
  recovery_->sessions().Put(std::move(record), nullptr);
}

std::optional<ConnectError> Namespace::Reserve(const Socket& socket) {
  if (!server_.ReserveSocket()) {
    server_.Count(Server::Limit::kServerAtCapacity);
    return ConnectError{"Server at capacity", nullptr};
  }
  if (limits_.max_sockets_per_user > 0 && !socket.user_id().empty()) {
    std::lock_guard lock(users_mu_);
    size_t& count = user_sockets_[socket.user_id()];
    if (count >= limits_.max_sockets_per_user) {
      server_.ReleaseSocket();
      server_.Count(Server::Limit::kTooManyUserSockets);
      return ConnectError{"Too many connections for this user", nullptr};
    }
    ++count;
  }
  return std::nullopt;
}

void Namespace::Release(const Socket& socket) {
  server_.ReleaseSocket();
  if (limits_.max_sockets_per_user > 0 && !socket.user_id().empty()) {
    std::lock_guard lock(users_mu_);
    auto it = user_sockets_.find(socket.user_id());
    if (it != user_sockets_.end() && --it->second == 0) user_sockets_.erase(it);
  }
}

void Namespace::RunMiddleware(const SocketPtr& socket, size_t index,
                              std::function<void(std::optional<ConnectError>)> done) {
  if (index == middlewares_.size()) return done(std::nullopt);
  auto called = std::make_shared<bool>(false);
  auto next = [this, socket, index, done, called](std::optional<ConnectError> error) {
    if (*called) return;  // next() twice is ignored
    *called = true;
    if (error) return done(std::move(error));
    RunMiddleware(socket, index + 1, done);
  };
  try {
    middlewares_[index](socket, next);
  } catch (const std::exception&) {
    Local().handler_errors.fetch_add(1, std::memory_order_relaxed);
    next(ConnectError{"Internal server error", nullptr});
  }
}

void Namespace::Remove(Socket& socket, std::string_view reason) {
  if (!Unlist(socket)) return;
  if (auto* observer = server_.membership_observer()) observer->OnDisconnected(socket, reason);
  // After the observer: once the record says "disconnected", a restore of
  // the same socket id may run on another shard, and its connect must come
  // after this disconnect in the membership stream.
  if (recovery_ && !socket.pid().empty()) {
    // As the reference server: a session ended on purpose (either side's
    // namespace disconnect, a protocol violation) is not recoverable.
    if (reason == "client namespace disconnect" || reason == "server namespace disconnect" ||
        reason == "parse error") {
      recovery_->sessions().Erase(socket.pid(), nullptr);
    } else {
      SaveSession(socket, true);
    }
  }
  if (on_disconnect_) on_disconnect_(socket.shared_from_this(), reason);
}

void Namespace::Detach(Socket& socket, std::string_view to_edge) {
  if (!Unlist(socket)) return;
  if (auto* observer = server_.membership_observer()) observer->OnMovedOut(socket, to_edge);
}

uint64_t Namespace::LastLoggedOnThisShard() { return Local().last_logged; }

void Namespace::Adopt(const SocketPtr& socket, std::string_view from_edge, uint64_t log_offset) {
  // Its slots are taken past the limits: refusing would disconnect it.
  server_.CountAdoptedSocket();
  if (limits_.max_sockets_per_user > 0 && !socket->user_id().empty()) {
    std::lock_guard lock(users_mu_);
    ++user_sockets_[socket->user_id()];
  }
  // A cluster's log: this edge may be behind or ahead of the old one. What
  // the old edge handed out up to log_offset is skipped here, what this edge
  // delivered after it is sent now (after the packets the session brought).
  std::vector<recovery::LogEntryPtr> missed;
  std::unique_lock<std::mutex> order;
  if (recovery_ && recovery_->log().shared() && !socket->pid().empty()) {
    order = std::unique_lock(recovery_->order_mu());
    MovedSocketState state = socket->ExportState();
    // A shard that ran no logged delivery says 0: the session's start then.
    log_offset = std::max(log_offset, socket->start_offset());
    recovery_->log().ReadAfter(
        log_offset,
        [&state](const BroadcastTarget& target) { return recovery::Reaches(target, state); },
        [&missed, &moved_in_late =
                      moved_in_late_](absl::StatusOr<std::vector<recovery::LogEntryPtr>> entries) {
          // Older than this edge's memory (it started after the socket's
          // old edge delivered it): counted, not read from the stream.
          // (InvalidArgument: the old edge was ahead of this one: nothing to send.)
          if (absl::IsOutOfRange(entries.status())) {
            moved_in_late.fetch_add(1, std::memory_order_relaxed);
          }
          if (entries.ok()) missed = std::move(*entries);
        });
    socket->MarkRecovered(std::max(log_offset, recovery_->log().Stats().last_offset));
  }
  ShardState& local = List(*socket);
  for (const auto& room : socket->joined_rooms()) local.rooms[room].insert(socket.get());
  socket->MarkConnected();
  if (order.owns_lock()) order.unlock();
  for (const recovery::LogEntryPtr& entry : missed) {
    socket->SendFrames(entry->delivery->frames, false);
  }
  if (auto* observer = server_.membership_observer()) observer->OnMovedIn(*socket, from_edge);
  if (recovery_ && !socket->pid().empty()) SaveSession(*socket, false);
}

bool Namespace::Unlist(Socket& socket) {
  ShardState& local = Local();
  // By pointer: another socket of the same id (impossible by construction)
  // must not stand for this one.
  auto found = local.sockets.find(std::string_view(socket.id()));
  if (found == local.sockets.end() || *found != &socket) return false;
  local.sockets.erase(found);
  base::ShrinkWhenSparse(local.sockets);
  local.socket_count.fetch_sub(1, std::memory_order_relaxed);
  Release(socket);
  if (!socket.user_id().empty()) {
    auto it = local.users.find(socket.user_id());
    if (it != local.users.end()) {
      it->second.erase(&socket);
      if (it->second.empty()) local.users.erase(it);
    }
  }
  for (const auto& room : socket.joined_rooms()) EraseMember(local, room, socket);
  return true;
}

bool Namespace::EraseMember(ShardState& local, const std::string& room, Socket& socket) {
  auto it = local.rooms.find(room);
  if (it == local.rooms.end()) return false;
  it->second.erase(&socket);
  if (it->second.empty()) {
    local.rooms.erase(it);
  } else {
    base::ShrinkWhenSparse(it->second);  // a crowded room emptying
  }
  return true;
}

void Namespace::AddToRoom(Socket& socket, const std::string& room) {
  // A socket's own-id room is implicit (found through `sockets`): an entry
  // per socket here would cost every connection a few hundred bytes.
  if (room == socket.id()) return;
  Local().rooms[room].insert(&socket);
  if (auto* observer = server_.membership_observer()) observer->OnJoined(socket, room);
  if (socket.connected()) SaveSession(socket, false);
}

void Namespace::RemoveFromRoom(Socket& socket, const std::string& room) {
  if (room == socket.id()) return;
  if (!EraseMember(Local(), room, socket)) return;
  if (auto* observer = server_.membership_observer()) observer->OnLeft(socket, room);
  if (socket.connected()) SaveSession(socket, false);
}

void Namespace::Dispatch(const SocketPtr& socket, std::string_view event, EventArgs& args,
                         Ack ack) {
  if (EventTap* tap = server_.event_tap()) tap->OnClientEvent(*this, *socket, event, args);
  auto it = handlers_.find(event);
  const LazyEventHandler* handler = it != handlers_.end() ? &it->second
                                    : on_any_             ? &on_any_
                                                          : nullptr;
  if (handler == nullptr) {
    Local().unhandled_events.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Application code must not take the edge down: a throwing handler costs
  // its client the connection, nothing more.
  try {
    (*handler)(socket, event, args, std::move(ack));
  } catch (const std::exception&) {
    Local().handler_errors.fetch_add(1, std::memory_order_relaxed);
    socket->Disconnect(true);
  }
}

template <typename Task>
void Namespace::OnEveryShard(const Task& task) {
  auto& runtime = server_.runtime();
  int current = edge::Runtime::CurrentShard();
  for (size_t i = 0; i < runtime.size(); ++i) {
    if (static_cast<int>(i) == current) continue;
    shards_[i]->queued_deliveries.fetch_add(1, std::memory_order_relaxed);
    runtime.Post(i, [this, task] {
      Local().queued_deliveries.fetch_sub(1, std::memory_order_relaxed);
      task();
    });
  }
  // The caller's own shard last and inline, so that what a handler emits
  // reaches local clients before anything it sends afterwards (e.g. an ack).
  if (current >= 0) task();
}

void Namespace::Deliver(std::shared_ptr<const Delivery> delivery) {
  if (recovery_ && !delivery->target.is_volatile && !delivery->target.only &&
      delivery->offset == 0 && recovery::IsRecoverable(delivery->frames)) {
    return DeliverLogged(std::move(delivery), 0);
  }
  broadcasts_.fetch_add(1, std::memory_order_relaxed);
  OnEveryShard([this, delivery] { DeliverLocal(*delivery); });
}

void Namespace::DeliverFromLog(uint64_t offset, std::shared_ptr<const Delivery> delivery) {
  if (!recovery::IsRecoverable(delivery->frames)) return;  // not what a log holds
  DeliverLogged(std::move(delivery), offset);
}

void Namespace::DeliverLogged(std::shared_ptr<const Delivery> original, uint64_t given) {
  const Delivery& delivery = *original;
  broadcasts_.fetch_add(1, std::memory_order_relaxed);
  auto& runtime = server_.runtime();
  int current = edge::Runtime::CurrentShard();
  std::shared_ptr<const Delivery> here;
  {
    std::unique_lock order(recovery_->order_mu());
    absl::StatusOr<recovery::LogEntryPtr> entry = recovery_->log().Append(
        delivery.target,
        [&delivery](uint64_t offset) { return *recovery::WithOffset(delivery.frames, offset); },
        given);
    if (absl::IsUnimplemented(entry.status())) {
      // A cluster's log takes only what came through its stream: this one
      // did not (a broker that did not know of the log yet). Live only.
      order.unlock();
      OnEveryShard([this, original] { DeliverLocal(*original); });
      return;
    }
    if (!entry.ok()) return;  // the log refused it: delivered nowhere, as a refused relay
    std::shared_ptr<const Delivery> logged = (*entry)->delivery;
    // Posted to every shard in log order. The caller's shard runs it inline
    // (after the lock) only if nothing is queued for it there: otherwise it
    // would overtake earlier offsets.
    bool run_here = current >= 0 && shards_[current]->queued_deliveries.load() == 0;
    for (size_t i = 0; i < runtime.size(); ++i) {
      if (static_cast<int>(i) == current && run_here) continue;
      shards_[i]->queued_deliveries.fetch_add(1, std::memory_order_relaxed);
      // `original` holds what the caller holds it for (e.g. the bus's bytes
      // against its bound) until every shard has taken the delivery.
      runtime.Post(i, [this, logged, original] {
        Local().queued_deliveries.fetch_sub(1, std::memory_order_relaxed);
        DeliverLocal(*logged);
      });
    }
    if (run_here) here = std::move(logged);
  }
  if (here) DeliverLocal(*here);
}

void Namespace::ForEachTarget(std::shared_ptr<const BroadcastTarget> target, TargetVisit visit) {
  auto shared_visit = std::make_shared<const TargetVisit>(std::move(visit));
  OnEveryShard([this, target, shared_visit] { (*shared_visit)(HoldLocalTarget(*target)); });
}

bool Namespace::Excluded(const BroadcastTarget& target, const Socket& socket) {
  for (const auto& room : target.except_rooms) {
    if (socket.InRoom(room)) return true;
  }
  return false;
}

void Namespace::CollectUnion(const BroadcastTarget& target, std::vector<Socket*>& out) {
  ShardState& local = Local();
  for (const auto& room : target.rooms) {
    auto it = local.rooms.find(room);
    if (it != local.rooms.end()) out.insert(out.end(), it->second.begin(), it->second.end());
    // A socket id names the socket's own room.
    auto own = local.sockets.find(std::string_view(room));
    if (own != local.sockets.end()) out.push_back(*own);
  }
  for (const auto& user : target.user_ids) {
    auto it = local.users.find(user);
    if (it != local.users.end()) out.insert(out.end(), it->second.begin(), it->second.end());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

void Namespace::KeepOnly(const std::vector<std::string>& ids, std::vector<Socket*>& members) {
  std::erase_if(members, [&ids](const Socket* socket) {
    return std::find(ids.begin(), ids.end(), socket->id()) == ids.end();
  });
}

void Namespace::DeliverLocal(const Delivery& delivery) {
  const BroadcastTarget& target = delivery.target;
  const std::vector<eio::Frame>& frames = delivery.frames;
  ShardState& local = Local();
  if (delivery.offset != 0) local.last_logged = delivery.offset;
  // Alone in the shard's queue, the packet has nothing to coalesce with: it
  // goes to each client's kernel buffer during the walk (paced publishes).
  // With more deliveries behind it, the writes wait for the end of the loop
  // turn, so that each client gets them all in one write.
  std::optional<eio::WriteThrough> write_through;
  if (local.queued_deliveries.load(std::memory_order_relaxed) == 0) write_through.emplace();
  // Collected first (in a buffer kept per thread): the walk below goes
  // through them in batches.
  thread_local std::vector<Socket*> members;
  members.clear();
  if (target.rooms.empty() && target.user_ids.empty()) {
    members.reserve(local.sockets.size());
    for (Socket* socket : local.sockets) members.push_back(socket);
  } else if (target.rooms.size() == 1 && target.user_ids.empty() &&
             !local.sockets.contains(std::string_view(target.rooms.front()))) {
    auto it = local.rooms.find(target.rooms.front());
    if (it != local.rooms.end()) members.assign(it->second.begin(), it->second.end());
  } else {
    CollectUnion(target, members);  // a union: each member once
  }
  if (target.only) KeepOnly(*target.only, members);
  // A write to one client reads its socket, client, session and transport in
  // turn, each far from the others in memory: a cache miss at every step.
  // A batch of members goes through those steps together (prefetching), so
  // that the misses of one step overlap instead of adding up.
  constexpr size_t kBatch = 16;
  uint64_t sent = 0;
  EventTap* tap = server_.event_tap();
  thread_local std::vector<Socket*> tapped;
  tapped.clear();
  for (size_t begin = 0; begin < members.size(); begin += kBatch) {
    size_t end = std::min(members.size(), begin + kBatch);
    for (size_t i = begin; i < end; ++i) members[i]->Prefetch();
    for (size_t i = begin; i < end; ++i) members[i]->client().Prefetch();
    for (size_t i = begin; i < end; ++i) members[i]->client().PrefetchSession();
    for (size_t i = begin; i < end; ++i) members[i]->client().PrefetchTransport();
    for (size_t i = begin; i < end; ++i) {
      Socket* socket = members[i];
      if (Excluded(target, *socket)) continue;
      // A restored socket got it in its replay already.
      if (delivery.offset != 0 && delivery.offset <= socket->replayed_through()) continue;
      socket->SendFrames(frames, target.is_volatile);
      ++sent;
      if (tap != nullptr) tapped.push_back(socket);
    }
  }
  if (tap != nullptr && !tapped.empty()) tap->OnDelivered(*this, delivery, tapped);
  local.deliveries.store(local.deliveries.load(std::memory_order_relaxed) + sent,
                         std::memory_order_relaxed);
}

uint64_t Namespace::BroadcastDeliveries() const {
  uint64_t total = 0;
  for (const auto& shard : shards_) total += shard->deliveries.load(std::memory_order_relaxed);
  return total;
}

std::vector<SocketPtr> Namespace::HoldLocalTarget(const BroadcastTarget& target) {
  std::vector<Socket*> members;
  if (target.rooms.empty() && target.user_ids.empty()) {
    for (Socket* socket : Local().sockets) members.push_back(socket);
  } else {
    CollectUnion(target, members);
  }
  if (target.only) KeepOnly(*target.only, members);
  // Held: a visit may disconnect a socket (and so release it).
  std::vector<SocketPtr> held;
  held.reserve(members.size());
  for (Socket* socket : members) {
    if (!Excluded(target, *socket)) held.push_back(socket->shared_from_this());
  }
  return held;
}

void Namespace::ForEachLocalTarget(const BroadcastTarget& target,
                                   const std::function<void(Socket&)>& visit) {
  for (const SocketPtr& socket : HoldLocalTarget(target)) {
    if (socket->connected()) visit(*socket);
  }
}

void Namespace::ForEachLocalSocket(const std::function<void(const Socket&)>& visit) const {
  int shard = edge::Runtime::CurrentShard();
  for (const Socket* socket : shards_[shard < 0 ? 0 : shard]->sockets) visit(*socket);
}

size_t Namespace::SocketCount() const {
  size_t total = 0;
  for (const auto& shard : shards_) total += shard->socket_count.load(std::memory_order_relaxed);
  return total;
}

size_t Namespace::QueuedDeliveries() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    total += shard->queued_deliveries.load(std::memory_order_relaxed);
  }
  return total;
}

void Namespace::CountIn() {
  auto& counter = Local().messages_in;
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void Namespace::CountOut(int n) {
  auto& counter = Local().messages_out;
  counter.store(counter.load(std::memory_order_relaxed) + static_cast<uint64_t>(n),
                std::memory_order_relaxed);
}

uint64_t Namespace::MessagesIn() const {
  uint64_t total = 0;
  for (const auto& shard : shards_) total += shard->messages_in.load(std::memory_order_relaxed);
  return total;
}

uint64_t Namespace::MessagesOut() const {
  uint64_t total = 0;
  for (const auto& shard : shards_) total += shard->messages_out.load(std::memory_order_relaxed);
  return total;
}

uint64_t Namespace::UnhandledEvents() const {
  uint64_t total = 0;
  for (const auto& shard : shards_) {
    total += shard->unhandled_events.load(std::memory_order_relaxed);
  }
  return total;
}

}  // namespace switchboard::sio
