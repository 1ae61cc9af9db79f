#include "broker/index.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <map>
#include <new>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "base/shrink_when_sparse.h"
#include "broker/index_internal.h"

namespace switchboard::broker {

size_t Index::SocketHash::operator()(std::string_view id) const {
  return absl::Hash<std::string_view>{}(id);
}
size_t Index::SocketHash::operator()(const std::unique_ptr<Socket>& s) const {
  return (*this)(s->id());
}
std::string_view Index::SocketEq::Id(const std::unique_ptr<Socket>& s) { return s->id(); }

bool Index::ById::operator()(const SocketRef& a, const SocketRef& b) const {
  if (a.prefix != b.prefix) return a.prefix < b.prefix;
  return a.socket->id() < b.socket->id();
}
bool Index::ById::operator()(const SocketRef& a, const IdKey& b) const {
  if (a.prefix != b.prefix) return a.prefix < b.prefix;
  return a.socket->id() < b.id;
}
bool Index::ById::operator()(const IdKey& a, const SocketRef& b) const {
  if (a.prefix != b.prefix) return a.prefix < b.prefix;
  return a.id < b.socket->id();
}

namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

}  // namespace

std::string_view ToString(ApplyResult result) {
  switch (result) {
    case ApplyResult::kApplied: return "applied";
    case ApplyResult::kDuplicate: return "duplicate";
    case ApplyResult::kGap: return "gap";
  }
  return "?";
}

Index::Index() = default;
Index::~Index() = default;

// ---------------------------------------------------------------------------
// Edges and their streams.

Index::Edge& Index::GetOrAddEdge(std::string_view edge_id, TimePoint now, bool& created) {
  auto it = edges_.find(edge_id);
  created = it == edges_.end();
  if (created) {
    auto edge = std::make_unique<Edge>();
    edge->id = std::string(edge_id);
    std::string_view key = edge->id;
    it = edges_.emplace(key, std::move(edge)).first;
  }
  it->second->last_seen = now;
  return *it->second;
}

ApplyResult Index::ApplyEvent(std::string_view edge_id, uint64_t seq, const Event& event,
                              TimePoint now) {
  bool created = false;
  Edge& edge = GetOrAddEdge(edge_id, now, created);
  // A new edge whose first event is 1 has announced everything it holds.
  if (created && seq != 1) edge.needs_snapshot = true;
  if (!edge.needs_snapshot) {
    if (seq <= edge.last_seq) return ApplyResult::kDuplicate;
    if (seq == edge.last_seq + 1) {
      Apply(edge, event);
      edge.last_seq = seq;
      return ApplyResult::kApplied;
    }
    edge.needs_snapshot = true;
  }
  if (edge.pending.size() < kMaxPendingEvents) edge.pending.emplace(seq, event);
  return ApplyResult::kGap;
}

ApplyResult Index::ApplySnapshot(const Snapshot& snapshot, TimePoint now) {
  bool created = false;
  Edge& edge = GetOrAddEdge(snapshot.edge_id, now, created);
  if (!created && !edge.needs_snapshot && snapshot.seq < edge.last_seq) {
    return ApplyResult::kDuplicate;
  }
  DropEdgeSockets(edge);
  // A moved-away socket the snapshot does not list was moved out as of it
  // (its MovedOut will not come as an event); one it still lists is the
  // other edge's already (the snapshot predates its MovedOut, still to come).
  absl::flat_hash_set<std::string_view> listed;
  listed.reserve(snapshot.sockets.size());
  for (const SocketInfo& info : snapshot.sockets) listed.insert(info.id);
  absl::erase_if(edge.moved_away, [&](const std::string& id) { return !listed.contains(id); });
  for (const SocketInfo& info : snapshot.sockets) {
    if (!edge.moved_away.contains(info.id)) MoveSocketTo(edge, info);
  }
  edge.last_seq = snapshot.seq;
  edge.needs_snapshot = false;
  edge.awaited_seq = 0;
  ApplyPending(edge);
  return edge.needs_snapshot ? ApplyResult::kGap : ApplyResult::kApplied;
}

void Index::ApplyPending(Edge& edge) {
  while (!edge.pending.empty()) {
    auto it = edge.pending.begin();
    if (it->first > edge.last_seq + 1) {
      edge.needs_snapshot = true;  // a hole: keep the rest for the next snapshot
      return;
    }
    if (it->first == edge.last_seq + 1) {
      Apply(edge, it->second);
      edge.last_seq = it->first;
    }
    edge.pending.erase(it);
  }
}

ApplyResult Index::ApplyHeartbeat(const Heartbeat& heartbeat, TimePoint now) {
  bool created = false;
  Edge& edge = GetOrAddEdge(heartbeat.edge_id, now, created);
  if (created && heartbeat.last_seq == 0 && heartbeat.counts.sockets == 0) {
    return ApplyResult::kApplied;  // an edge that has announced nothing yet
  }
  // Events the last heartbeat announced still missing, none having come
  // since (a lost tail: a lost event followed by others is a gap in the
  // stream), or (below) an index that disagrees with the edge: only a
  // snapshot settles it.
  if (created || edge.needs_snapshot ||
      (edge.last_seq < edge.awaited_seq && edge.last_seq == edge.awaited_from)) {
    edge.needs_snapshot = true;
    return ApplyResult::kGap;
  }
  // Behind: overtaken by the events after it, its counts older than ours. (A
  // restarted edge has a new incarnation: the broker forgot the old one.)
  if (heartbeat.last_seq < edge.last_seq) return ApplyResult::kApplied;
  if (heartbeat.last_seq > edge.last_seq) {
    // Ahead: it travels on its own subject and may have overtaken its events
    // (during a burst of connects, often by more than a heartbeat period). A
    // snapshot of a large edge costs megabytes; wait while they keep coming.
    edge.awaited_seq = heartbeat.last_seq;
    edge.awaited_from = edge.last_seq;
    return ApplyResult::kApplied;
  }
  edge.awaited_seq = 0;
  // The edge still counts the sockets it has not yet reported moved away.
  if (heartbeat.counts.sockets != edge.sockets.size() + edge.moved_away.size()) {
    edge.needs_snapshot = true;
    return ApplyResult::kGap;
  }
  return ApplyResult::kApplied;
}

std::vector<std::string> Index::ExpireEdges(TimePoint now, std::chrono::milliseconds timeout,
                                            std::vector<SocketInfo>* dropped) {
  std::vector<std::string> expired;
  for (const auto& [id, edge] : edges_) {
    if (now - edge->last_seen > timeout) expired.emplace_back(id);
  }
  for (const std::string& id : expired) {
    if (dropped != nullptr) {
      std::vector<SocketInfo> sockets = EdgeSockets(id);
      std::move(sockets.begin(), sockets.end(), std::back_inserter(*dropped));
    }
    RemoveEdge(id);
  }
  return expired;
}

std::optional<TimePoint> Index::LastSeen(std::string_view edge_id) const {
  auto it = edges_.find(edge_id);
  if (it == edges_.end()) return std::nullopt;
  return it->second->last_seen;
}

bool Index::Touch(std::string_view edge_id, TimePoint now) {
  auto it = edges_.find(edge_id);
  if (it == edges_.end()) return false;
  it->second->last_seen = std::max(it->second->last_seen, now);
  return true;
}

bool Index::ForgetEdge(std::string_view edge_id) {
  if (!edges_.contains(edge_id)) return false;
  RemoveEdge(edge_id);
  return true;
}

void Index::RemoveEdge(std::string_view edge_id) {
  auto it = edges_.find(edge_id);
  if (it == edges_.end()) return;
  DropEdgeSockets(*it->second);
  edges_.erase(it);
}

std::vector<SocketInfo> Index::EdgeSockets(std::string_view edge_id) const {
  std::vector<SocketInfo> out;
  auto it = edges_.find(edge_id);
  if (it == edges_.end()) return out;
  out.reserve(it->second->sockets.size());
  for (const Socket* s : it->second->sockets) out.push_back(ToInfo(*s));
  return out;
}

std::vector<std::string> Index::EdgesNeedingSnapshot() const {
  std::vector<std::string> out;
  for (const auto& [id, edge] : edges_) {
    if (edge->needs_snapshot) out.emplace_back(id);
  }
  return out;
}

bool Index::NeedsSnapshot(std::string_view edge_id) const {
  auto it = edges_.find(edge_id);
  return it != edges_.end() && it->second->needs_snapshot;
}

// ---------------------------------------------------------------------------
// Sockets, rooms, users.

void Index::Apply(Edge& edge, const Event& event) {
  auto owned = [&](std::string_view id) -> Socket* {
    auto it = sockets_.find(id);
    if (it == sockets_.end() || (*it)->edge != &edge) return nullptr;
    return it->get();
  };
  std::visit(Overloaded{
                 [&](const Connected& e) { AddSocket(edge, e.socket); },
                 [&](const Disconnected& e) {
                   if (Socket* s = owned(e.socket_id)) RemoveSocket(s);
                 },
                 [&](const Joined& e) {
                   if (Socket* s = owned(e.socket_id)) JoinRoom(s, e.room);
                 },
                 [&](const Left& e) {
                   Socket* s = owned(e.socket_id);
                   if (s == nullptr) return;
                   for (Room* room : s->rooms) {
                     if (room->name == e.room) {
                       LeaveRoom(s, room);
                       return;
                     }
                   }
                 },
                 [&](const TransportChanged& e) {
                   if (Socket* s = owned(e.socket_id)) s->transport = InternTransport(e.transport);
                 },
                 [&](const MovedIn& e) { MoveSocketTo(edge, e.socket); },
                 [&](const MovedOut& e) {
                   if (Socket* s = owned(e.socket_id)) {
                     RemoveSocket(s);  // out before in: the new edge adds it
                   } else {
                     edge.moved_away.erase(e.socket_id);  // in before out: settled
                   }
                 },
             },
             event);
}

void Index::AddSocket(Edge& edge, const SocketInfo& info) {
  if (info.id.empty()) return;
  if (auto it = sockets_.find(info.id); it != sockets_.end()) RemoveSocket(it->get());

  std::unique_ptr<Socket> owned = Socket::Make({info.id, info.remote_address, info.claims});
  Socket* s = owned.get();
  s->edge = &edge;
  s->transport = InternTransport(info.transport);
  s->connected_at = info.connected_at;
  sockets_.insert(std::move(owned));
  const SocketRef ref = s->ref();

  auto ns_it = namespaces_.find(info.nsp);
  if (ns_it == namespaces_.end()) {
    auto ns = std::make_unique<Namespace>();
    ns->name = info.nsp;
    std::string_view key = ns->name;
    ns_it = namespaces_.emplace(key, std::move(ns)).first;
  }
  s->nsp = ns_it->second.get();

  if (!info.user_id.empty()) {
    auto user_it = users_.find(info.user_id);
    if (user_it == users_.end()) {
      auto user = std::make_unique<User>();
      user->id = info.user_id;
      std::string_view key = user->id;
      user_it = users_.emplace(key, std::move(user)).first;
    }
    s->user = user_it->second.get();
    s->user->sockets.insert(ref);
    ++s->nsp->users[s->user];
  }

  edge.sockets.insert(s);
  s->nsp->sockets.insert(ref);
  for (const std::string& room : info.rooms) JoinRoom(s, room);
}

void Index::MoveSocketTo(Edge& edge, const SocketInfo& info) {
  if (info.id.empty()) return;
  if (auto it = sockets_.find(info.id); it != sockets_.end() && (*it)->edge != &edge) {
    (*it)->edge->moved_away.insert(info.id);
  }
  edge.moved_away.erase(info.id);
  AddSocket(edge, info);
}

void Index::RemoveSocket(Socket* s) {
  while (!s->rooms.empty()) LeaveRoom(s, s->rooms.back());
  Namespace* ns = s->nsp;
  const SocketRef ref = s->ref();
  if (User* user = s->user) {
    user->sockets.erase(ref);
    auto count = ns->users.find(user);
    if (--count->second == 0) ns->users.erase(count);
    if (user->sockets.empty()) users_.erase(users_.find(user->id));
  }
  s->edge->sockets.erase(s);
  base::ShrinkWhenSparse(s->edge->sockets);
  ns->sockets.erase(ref);
  if (ns->sockets.empty()) namespaces_.erase(namespaces_.find(ns->name));
  sockets_.erase(sockets_.find(s->id()));  // destroys s: last
  base::ShrinkWhenSparse(sockets_);
}

void Index::JoinRoom(Socket* s, std::string_view name) {
  if (name == s->id()) return;  // the own-id room is implicit
  for (Room* room : s->rooms) {
    if (room->name == name) return;
  }
  auto& rooms = s->nsp->rooms;
  auto it = rooms.find(name);
  if (it == rooms.end()) {
    auto room = std::make_unique<Room>();
    room->name = std::string(name);
    std::string_view key = room->name;
    it = rooms.emplace(key, std::move(room)).first;
    ++room_count_;
  }
  it->second->members.insert(s->ref());
  s->rooms.push_back(it->second.get());
}

void Index::LeaveRoom(Socket* s, Room* room) {
  auto pos = std::find(s->rooms.begin(), s->rooms.end(), room);
  if (pos == s->rooms.end()) return;
  *pos = s->rooms.back();
  s->rooms.pop_back();
  room->members.erase(s->ref());
  if (room->members.empty()) {
    s->nsp->rooms.erase(s->nsp->rooms.find(room->name));
    --room_count_;
  }
}

void Index::DropEdgeSockets(Edge& edge) {
  std::vector<Socket*> doomed(edge.sockets.begin(), edge.sockets.end());
  for (Socket* s : doomed) RemoveSocket(s);
}

const std::string* Index::InternTransport(std::string_view name) {
  auto it = transports_.find(name);
  if (it == transports_.end()) it = transports_.emplace(name).first;
  return &*it;
}

}  // namespace switchboard::broker
