// The index's queries: listings with page tokens, presence, Resolve and
// Count for routing, stats.
#include <algorithm>
#include <charconv>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "broker/index_internal.h"

namespace switchboard::broker {
namespace {

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
