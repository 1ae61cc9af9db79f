#include "broker/index.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <map>
#include <new>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/packed_strings.h"

namespace switchboard::broker {

namespace {
// Strictly smaller prefixes mean strictly smaller ids (zero padding sorts a
// shorter id first, as lexicographic order does); equal prefixes fall back
// to the full comparison.
uint64_t IdPrefix(std::string_view id) {
  uint64_t prefix = 0;
  for (size_t i = 0; i < 8; ++i) {
    prefix = (prefix << 8) | (i < id.size() ? static_cast<unsigned char>(id[i]) : 0u);
  }
  return prefix;
}
}  // namespace

struct Index::Edge {
  std::string id;
  uint64_t last_seq = 0;
  bool needs_snapshot = false;
  TimePoint last_seen{};
  absl::flat_hash_set<Socket*> sockets;
  // Events received while waiting for a snapshot, by seq.
  std::map<uint64_t, Event> pending;
};

struct Index::Room {
  std::string name;
  SocketSet members;
};

struct Index::Namespace {
  std::string name;
  SocketSet sockets;
  absl::flat_hash_map<User*, uint32_t> users;  // user -> its sockets here
  absl::btree_map<std::string_view, std::unique_ptr<Room>, std::less<>> rooms;
};

struct Index::User {
  std::string id;
  SocketSet sockets;
};

// Kept for every socket of the cluster, so it is small: its id, address and
// claims follow it in its own allocation (Make), the id's prefix is recomputed
// (cheap) rather than stored.
struct Index::Socket {
  using Strings = proto::PackedStrings<3>;  // id, remote address, claims

  static std::unique_ptr<Socket> Make(const Strings::Parts& parts) {
    size_t size = Strings::Size(parts);
    std::unique_ptr<Socket> socket(new (Tail{size}) Socket());
    Strings::Write(socket->tail(), parts);
    return socket;
  }
  std::string_view id() const { return Strings::Get(tail(), 0); }
  std::string_view address() const { return Strings::Get(tail(), 1); }
  std::string_view claims() const { return Strings::Get(tail(), 2); }
  SocketRef ref() { return {IdPrefix(id()), this}; }

  // Room for the strings after the object; `delete` (unique_ptr) frees it all.
  struct Tail {
    size_t bytes;
  };
  static void* operator new(size_t size, Tail tail) { return ::operator new(size + tail.bytes); }
  static void operator delete(void* p, Tail) { ::operator delete(p); }  // a throwing constructor
  static void operator delete(void* p) { ::operator delete(p); }

  Edge* edge = nullptr;
  Namespace* nsp = nullptr;
  User* user = nullptr;                    // null: anonymous
  const std::string* transport = nullptr;  // in Index::transports_
  WallTime connected_at{};
  absl::InlinedVector<Room*, 2> rooms;  // unordered, never the own-id room

 private:
  Socket() = default;
  char* tail() { return reinterpret_cast<char*>(this + 1); }
  const char* tail() const { return reinterpret_cast<const char*>(this + 1); }
};

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

absl::StatusOr<size_t> PageSize(int requested) {
  if (requested < 0) return absl::InvalidArgumentError("page_size must not be negative");
  if (requested == 0) return static_cast<size_t>(kDefaultPageSize);
  return static_cast<size_t>(std::min(requested, kMaxPageSize));
}

// Page tokens. Sockets: "s" + last socket id. Rooms: "r" + length of the
// namespace + ":" + namespace + room (names may hold any byte).
std::string SocketToken(std::string_view id) {
  std::string token(1, 's');
  token.append(id);
  return token;
}

absl::StatusOr<std::string_view> ParseSocketToken(std::string_view token) {
  if (token.size() < 2 || token[0] != 's') return absl::InvalidArgumentError("bad page_token");
  return token.substr(1);
}

std::string RoomToken(std::string_view nsp, std::string_view room) {
  std::string token(1, 'r');
  token.append(std::to_string(nsp.size()));
  token.push_back(':');
  token.append(nsp);
  token.append(room);
  return token;
}

absl::StatusOr<std::pair<std::string_view, std::string_view>> ParseRoomToken(
    std::string_view token) {
  auto bad = absl::InvalidArgumentError("bad page_token");
  if (token.size() < 3 || token[0] != 'r') return bad;
  size_t colon = token.find(':');
  if (colon == std::string_view::npos || colon < 2) return bad;
  size_t length = 0;
  auto [end, ec] = std::from_chars(token.data() + 1, token.data() + colon, length);
  if (ec != std::errc() || end != token.data() + colon) return bad;
  std::string_view rest = token.substr(colon + 1);
  if (length > rest.size()) return bad;
  return std::pair{rest.substr(0, length), rest.substr(length)};
}

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
  for (const SocketInfo& info : snapshot.sockets) AddSocket(edge, info);
  edge.last_seq = snapshot.seq;
  edge.needs_snapshot = false;
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
  if (created || edge.needs_snapshot || heartbeat.last_seq != edge.last_seq ||
      heartbeat.counts.sockets != edge.sockets.size()) {
    // Lost events (last_seq ahead), a restart under the same id (behind), or
    // an index that disagrees with the edge: only a snapshot settles it.
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
  ns->sockets.erase(ref);
  if (ns->sockets.empty()) namespaces_.erase(namespaces_.find(ns->name));
  sockets_.erase(sockets_.find(s->id()));  // destroys s: last
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

// ---------------------------------------------------------------------------
// Queries.

const std::string* Index::InternTransport(std::string_view name) {
  auto it = transports_.find(name);
  if (it == transports_.end()) it = transports_.emplace(name).first;
  return &*it;
}

SocketInfo Index::ToInfo(const Socket& s) const {
  SocketInfo info;
  info.id = s.id();
  info.edge_id = s.edge->id;
  info.nsp = s.nsp->name;
  if (s.user != nullptr) info.user_id = s.user->id;
  info.transport = *s.transport;
  info.remote_address = s.address();
  info.claims = s.claims();
  info.connected_at = s.connected_at;
  info.rooms.reserve(s.rooms.size());
  for (const Room* room : s.rooms) info.rooms.push_back(room->name);
  std::sort(info.rooms.begin(), info.rooms.end());
  return info;
}

std::optional<SocketInfo> Index::GetSocket(std::string_view socket_id) const {
  auto it = sockets_.find(socket_id);
  if (it == sockets_.end()) return std::nullopt;
  return ToInfo(**it);
}

Stats Index::GetStats() const {
  Stats stats;
  stats.edges = edges_.size();
  stats.sockets = sockets_.size();
  stats.users = users_.size();
  stats.rooms = room_count_;
  stats.per_edge.reserve(edges_.size());
  for (const auto& [id, edge] : edges_) {
    stats.per_edge.push_back(
        {std::string(id), edge->sockets.size(), edge->last_seq, edge->needs_snapshot});
  }
  stats.per_namespace.reserve(namespaces_.size());
  for (const auto& [name, ns] : namespaces_) {
    stats.per_namespace.push_back(
        {std::string(name), ns->sockets.size(), ns->users.size(), ns->rooms.size()});
  }
  return stats;
}

absl::StatusOr<ListSocketsResponse> Index::ListSockets(const ListSocketsRequest& request) const {
  auto page_size = PageSize(request.page_size);
  if (!page_size.ok()) return page_size.status();
  const size_t n = *page_size;
  std::string_view after;
  if (!request.page_token.empty()) {
    auto parsed = ParseSocketToken(request.page_token);
    if (!parsed.ok()) return parsed.status();
    after = *parsed;
  }

  // The smallest ordered set that holds every match, then filters.
  std::vector<const SocketSet*> sets;
  if (!request.user.empty()) {
    auto it = users_.find(request.user);
    if (it != users_.end()) sets.push_back(&it->second->sockets);
  } else if (!request.room.empty()) {
    auto add_room = [&](const Namespace& ns) {
      auto it = ns.rooms.find(request.room);
      if (it != ns.rooms.end()) sets.push_back(&it->second->members);
    };
    if (!request.nsp.empty()) {
      if (auto it = namespaces_.find(request.nsp); it != namespaces_.end()) add_room(*it->second);
    } else {
      for (const auto& [name, ns] : namespaces_) add_room(*ns);
    }
  } else if (!request.nsp.empty()) {
    if (auto it = namespaces_.find(request.nsp); it != namespaces_.end()) {
      sets.push_back(&it->second->sockets);
    }
  } else {
    // Every namespace's set: a handful, and no set of all sockets to keep.
    for (const auto& [name, ns] : namespaces_) sets.push_back(&ns->sockets);
  }

  auto matches = [&](const Socket* s) {
    if (!request.nsp.empty() && s->nsp->name != request.nsp) return false;
    if (!request.user.empty() && (s->user == nullptr || s->user->id != request.user)) {
      return false;
    }
    if (!request.room.empty()) {
      return std::any_of(s->rooms.begin(), s->rooms.end(),
                         [&](const Room* r) { return r->name == request.room; });
    }
    return true;
  };

  // The sets are disjoint: take up to n + 1 from each, merge, keep n + 1.
  std::vector<const Socket*> found;
  for (const SocketSet* set : sets) {
    size_t taken = 0;
    for (auto it = after.empty() ? set->begin() : set->upper_bound(IdKey{IdPrefix(after), after});
         it != set->end() && taken <= n; ++it) {
      if (matches(it->socket)) {
        found.push_back(it->socket);
        ++taken;
      }
    }
  }
  std::sort(found.begin(), found.end(),
            [](const Socket* a, const Socket* b) { return a->id() < b->id(); });

  ListSocketsResponse response;
  if (found.size() > n) {
    found.resize(n);
    response.next_page_token = SocketToken(found.back()->id());
  }
  response.sockets.reserve(found.size());
  for (const Socket* s : found) response.sockets.push_back(ToInfo(*s));
  return response;
}

absl::StatusOr<ListRoomsResponse> Index::ListRooms(const ListRoomsRequest& request) const {
  auto page_size = PageSize(request.page_size);
  if (!page_size.ok()) return page_size.status();
  const size_t n = *page_size;
  bool has_token = !request.page_token.empty();
  std::string_view after_nsp, after_room;
  if (has_token) {
    auto parsed = ParseRoomToken(request.page_token);
    if (!parsed.ok()) return parsed.status();
    std::tie(after_nsp, after_room) = *parsed;
  }

  std::vector<std::pair<const Namespace*, const Room*>> found;
  auto scan = [&](const Namespace& ns) {
    if (has_token && ns.name < after_nsp) return;
    auto it = ns.rooms.lower_bound(request.prefix);
    if (has_token && ns.name == after_nsp && after_room >= request.prefix) {
      it = ns.rooms.upper_bound(after_room);
    }
    for (; it != ns.rooms.end() && found.size() <= n; ++it) {
      if (!it->first.starts_with(request.prefix)) break;
      found.emplace_back(&ns, it->second.get());
    }
  };
  if (!request.nsp.empty()) {
    if (auto it = namespaces_.find(request.nsp); it != namespaces_.end()) scan(*it->second);
  } else {
    for (auto it = has_token ? namespaces_.lower_bound(after_nsp) : namespaces_.begin();
         it != namespaces_.end() && found.size() <= n; ++it) {
      scan(*it->second);
    }
  }

  ListRoomsResponse response;
  if (found.size() > n) {
    found.resize(n);
    response.next_page_token = RoomToken(found.back().first->name, found.back().second->name);
  }
  response.rooms.reserve(found.size());
  for (const auto& [ns, room] : found) {
    response.rooms.push_back({ns->name, room->name, room->members.size()});
  }
  return response;
}

Presence Index::GetPresence(std::string_view user_id) const {
  Presence presence;
  auto it = users_.find(user_id);
  if (it == users_.end()) return presence;
  presence.online = true;
  presence.sockets.reserve(it->second->sockets.size());
  for (const SocketRef& ref : it->second->sockets) presence.sockets.push_back(ToInfo(*ref.socket));
  return presence;
}

std::vector<EdgeTargets> Index::Resolve(const Selector& selector) const {
  auto ns_it = namespaces_.find(selector.nsp);
  if (ns_it == namespaces_.end()) return {};
  const Namespace& ns = *ns_it->second;

  std::vector<const Socket*> hits;
  if (selector.rooms.empty() && selector.socket_ids.empty() && selector.user_ids.empty()) {
    hits.reserve(ns.sockets.size());
    for (const SocketRef& ref : ns.sockets) hits.push_back(ref.socket);
  }
  auto add_socket = [&](std::string_view id) {
    auto it = sockets_.find(id);
    if (it != sockets_.end() && (*it)->nsp == &ns) hits.push_back(it->get());
  };
  for (const std::string& room : selector.rooms) {
    if (auto it = ns.rooms.find(room); it != ns.rooms.end()) {
      for (const SocketRef& ref : it->second->members) hits.push_back(ref.socket);
    }
    add_socket(room);  // the own-id room
  }
  for (const std::string& id : selector.socket_ids) add_socket(id);
  for (const std::string& user_id : selector.user_ids) {
    auto it = users_.find(user_id);
    if (it == users_.end()) continue;
    for (const SocketRef& ref : it->second->sockets) {
      if (ref.socket->nsp == &ns) hits.push_back(ref.socket);
    }
  }

  std::sort(hits.begin(), hits.end(), [](const Socket* a, const Socket* b) {
    if (a->edge != b->edge) return a->edge->id < b->edge->id;
    return a->id() < b->id();
  });
  hits.erase(std::unique(hits.begin(), hits.end()), hits.end());

  std::vector<EdgeTargets> out;
  for (const Socket* s : hits) {
    if (out.empty() || out.back().edge_id != s->edge->id) out.push_back({s->edge->id, {}});
    out.back().socket_ids.emplace_back(s->id());
  }
  return out;
}

uint64_t Index::Count(const Selector& selector, const absl::flat_hash_set<std::string>& excluded,
                      std::set<std::string>* edges) const {
  auto ns_it = namespaces_.find(selector.nsp);
  if (ns_it == namespaces_.end()) return 0;
  const Namespace& ns = *ns_it->second;
  const SocketSet* set = nullptr;
  const Socket* own = nullptr;  // the socket whose own-id room is the room
  if (selector.socket_ids.empty() && selector.user_ids.empty()) {
    if (selector.rooms.empty()) {
      set = &ns.sockets;
    } else if (selector.rooms.size() == 1) {
      static const SocketSet kNoMembers;
      const std::string& room = selector.rooms.front();
      auto it = ns.rooms.find(room);
      set = it != ns.rooms.end() ? &it->second->members : &kNoMembers;
      auto s = sockets_.find(room);
      if (s != sockets_.end() && (*s)->nsp == &ns && !set->contains(IdKey{IdPrefix(room), room})) {
        own = s->get();
      }
    }
  }
  uint64_t total = 0;
  if (set == nullptr) {  // a union: Resolve() counts each socket once
    for (const EdgeTargets& hit : Resolve(selector)) {
      uint64_t on_edge = 0;
      for (const std::string& id : hit.socket_ids) on_edge += excluded.contains(id) ? 0 : 1;
      if (on_edge > 0 && edges != nullptr) edges->insert(hit.edge_id);
      total += on_edge;
    }
    return total;
  }
  if (excluded.empty() && edges == nullptr) return set->size() + (own != nullptr ? 1 : 0);
  const Edge* last = nullptr;
  auto visit = [&](const Socket* socket) {
    std::string_view id = socket->id();
    // Debian's absl::string_view is not std::string_view.
    if (!excluded.empty() && excluded.contains(absl::string_view(id.data(), id.size()))) return;
    ++total;
    if (edges != nullptr && socket->edge != last) {
      last = socket->edge;
      edges->insert(last->id);
    }
  };
  for (const SocketRef& ref : *set) visit(ref.socket);
  if (own != nullptr) visit(own);
  return total;
}

}  // namespace switchboard::broker
