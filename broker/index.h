#pragma once

// The broker's soft-state membership index: every edge, socket, user and
// (namespace, room) membership of the cluster, rebuilt from the edges' ordered
// change streams and snapshots (DESIGN.md, "State and who owns it").
//
// A pure library: no I/O, no clock of its own (callers pass `now`), no bus.
//
// Thread-safety: none inside. An Index is owned by one executor (strand) of
// the broker; every call, mutating or not, is made from it. Const queries may
// run concurrently with each other only while no mutating call runs.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"

namespace switchboard::broker {

// Liveness runs on a monotonic clock; handshake times are wall-clock.
using TimePoint = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

inline constexpr std::chrono::milliseconds kDefaultEdgeTimeout{5'000};
inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 1000;
// Events held per edge while it waits for a snapshot (beyond: dropped; the
// snapshot then needs to be newer, or another one is asked for).
inline constexpr size_t kMaxPendingEvents = 10'000;

// One Socket.IO socket (one namespace connection). Socket ids are unique in
// the cluster. `rooms` never lists the socket's own-id room.
struct SocketInfo {
  std::string id{};
  std::string edge_id{};
  std::string nsp{};
  std::string user_id{};  // empty: anonymous
  std::string transport{};
  std::string remote_address{};
  std::string claims{};  // JSON object text, "" for none
  WallTime connected_at{};
  std::vector<std::string> rooms{};  // sorted in query results

  bool operator==(const SocketInfo&) const = default;
};

// The changes an edge announces, each with the edge's next sequence number.
struct Connected {
  SocketInfo socket{};  // socket.edge_id is ignored: the event's edge owns it
};
struct Disconnected {
  std::string socket_id{};
};
struct Joined {
  std::string socket_id{};
  std::string room{};
};
struct Left {
  std::string socket_id{};
  std::string room{};
};
// The socket's Engine.IO session switched transport (polling -> websocket).
struct TransportChanged {
  std::string socket_id{};
  std::string transport{};
};
// The socket's session moved to this edge from `from_edge` (a WebSocket
// upgrade landed here): not a connect. The socket, with its rooms, is now this
// edge's, wherever the index had it.
struct MovedIn {
  SocketInfo socket{};  // socket.edge_id is ignored, as for Connected
  std::string from_edge{};
};
// The socket's session moved from this edge to `to_edge`: not a disconnect.
struct MovedOut {
  std::string socket_id{};
  std::string to_edge{};
};
using Event =
    std::variant<Connected, Disconnected, Joined, Left, TransportChanged, MovedIn, MovedOut>;

struct Heartbeat {
  std::string edge_id{};
  uint64_t last_seq = 0;  // the last sequence number the edge sent
  struct Counts {
    uint64_t sockets = 0;
  } counts{};
};

// Everything an edge holds, as of its event `seq` (the last one included).
struct Snapshot {
  std::string edge_id{};
  uint64_t seq = 0;
  std::vector<SocketInfo> sockets{};  // their edge_id fields are ignored
};

enum class ApplyResult {
  kApplied,    // applied (or, for a heartbeat: consistent with the index)
  kDuplicate,  // already seen (seq <= last), or a stale snapshot: ignored
  kGap,        // not applied: the edge needs a snapshot (see Index)
};
std::string_view ToString(ApplyResult result);

struct EdgeStats {
  std::string edge_id{};
  uint64_t sockets = 0;
  uint64_t last_seq = 0;
  bool needs_snapshot = false;
  bool operator==(const EdgeStats&) const = default;
};
struct NamespaceStats {
  std::string nsp{};
  uint64_t sockets = 0;
  uint64_t users = 0;
  uint64_t rooms = 0;
  bool operator==(const NamespaceStats&) const = default;
};
struct Stats {
  uint64_t edges = 0;
  uint64_t sockets = 0;
  uint64_t users = 0;                           // distinct users, all namespaces
  uint64_t rooms = 0;                           // (namespace, room) pairs
  std::vector<EdgeStats> per_edge{};            // by edge id
  std::vector<NamespaceStats> per_namespace{};  // by namespace
  bool operator==(const Stats&) const = default;
};

// Pagination: page_size 0 means kDefaultPageSize, more than kMaxPageSize is
// clamped, negative is INVALID_ARGUMENT. page_token is "" for the first page,
// then the previous page's next_page_token (opaque; a malformed one is
// INVALID_ARGUMENT). An empty next_page_token means there is no more.
// A page starts strictly after the previous page's last key, so a walk sees
// every item present for the whole walk exactly once, in order, whatever
// changes meanwhile.
struct ListSocketsRequest {
  std::string nsp{};   // "" = every namespace
  std::string room{};  // "" = any; with nsp "" the room of that name in any namespace
  std::string user{};  // "" = any
  int page_size = 0;
  std::string page_token{};
};
struct ListSocketsResponse {
  std::vector<SocketInfo> sockets{};  // by socket id
  std::string next_page_token{};
};

struct ListRoomsRequest {
  std::string nsp{};     // "" = every namespace
  std::string prefix{};  // room name prefix
  int page_size = 0;
  std::string page_token{};
};
struct RoomInfo {
  std::string nsp{};
  std::string room{};
  uint64_t members = 0;
  bool operator==(const RoomInfo&) const = default;
};
struct ListRoomsResponse {
  std::vector<RoomInfo> rooms{};  // by (namespace, room)
  std::string next_page_token{};
};

struct Presence {
  bool online = false;
  std::vector<SocketInfo> sockets{};  // every namespace and edge, by socket id
};

// Which sockets a command targets: those of namespace `nsp` that are in any
// of `rooms`, or are one of `socket_ids`, or belong to one of `user_ids`.
// All three empty: the whole namespace. A room may be a socket id (its
// own-id room).
struct Selector {
  std::string nsp{};
  std::vector<std::string> rooms{};
  std::vector<std::string> socket_ids{};
  std::vector<std::string> user_ids{};
};
struct EdgeTargets {
  std::string edge_id{};
  std::vector<std::string> socket_ids{};  // sorted, each once
  bool operator==(const EdgeTargets&) const = default;
};

// The index.
//
// Per edge it keeps the last applied sequence number. An event with
//  * seq == last + 1 is applied (kApplied);
//  * seq <= last is ignored (kDuplicate);
//  * seq  > last + 1 is a gap: not applied (kGap); the edge now needs a
//    snapshot. Until one arrives nothing more is applied for that edge: its
//    events are held (up to kMaxPendingEvents) and answered kGap, its current
//    sockets stay listed. A snapshot replaces all the edge's sockets at once,
//    then the held events that follow it directly are applied.
// An edge seen for the first time needs a snapshot, unless its first message
// is event seq 1, or a heartbeat with last_seq 0 and no sockets (an edge that
// has announced nothing yet). A heartbeat whose last_seq differs from the
// index's, or whose socket count differs at the same seq, also asks for a
// snapshot: events were lost, or the edge restarted under the same id.
// This assumes one edge's events and heartbeats reach the broker in the order
// the edge sent them (one NATS connection each way does this).
//
// Events about sockets that the sending edge does not hold are no-ops (they
// still consume their seq). Joining a socket's own-id room is a no-op.
// A socket id claimed by another edge moves to it (ids are unique in the
// cluster; this only matters if an edge misbehaves).
//
// Moves (MovedIn on the new edge, MovedOut on the old one) arrive on two
// independent streams, in either order, and end with the socket once, on the
// new edge. MovedIn takes the socket from wherever the index holds it; if
// that edge has not reported the move yet, the index remembers that it owes a
// MovedOut for it ("moved away"): until then that edge's heartbeats count the
// socket, and a snapshot of it that still lists the socket does not take it
// back. MovedOut removes the socket only if the index holds it on that edge
// (out before in), else settles the debt (in before out). A snapshot of the
// new edge listing the socket takes it from the old edge the same way. This
// assumes a socket moves once in a while (a session moves on its one
// WebSocket upgrade), not twice within a broker's lag; if it does, heartbeats
// and snapshots still converge.
//
// Sizes: a hash set of sockets by id (the key is the id inside the socket)
// and a hash map by user id; per namespace, per (namespace, room) and per
// user, B-tree sets ordered by socket id (they give pagination a stable order;
// listing every socket merges the namespaces' sets; an element carries the
// id's first 8 bytes so a search stays within the nodes; updates are O(log n)
// with a fan-out of 16, a handful of node visits at 1M sockets); per edge a
// hash set. A socket's own rooms are a small inline vector (join/leave are
// linear in the rooms of that one socket); its id, address and claims share
// its own allocation. About 180 bytes per socket in no room, glibc overhead
// included.
class Index {
 public:
  Index();
  ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  ApplyResult ApplyEvent(std::string_view edge_id, uint64_t seq, const Event& event, TimePoint now);
  // kApplied: the edge's sockets are now exactly the snapshot's (plus held
  // events after it); kDuplicate: older than what the index has and the edge
  // needed no snapshot, ignored; kGap: applied, but the held events after it
  // have a hole, so the edge needs another snapshot.
  ApplyResult ApplySnapshot(const Snapshot& snapshot, TimePoint now);
  // Marks the edge alive. kApplied when consistent, kGap when the edge needs a
  // snapshot: a new edge that has announced something, counts that disagree
  // at the same seq, or events a heartbeat announced still missing at the
  // next one with none come since. A heartbeat merely ahead of the events
  // (it may overtake them) is kApplied and awaited; one behind them (they
  // overtook it) is stale and kApplied.
  ApplyResult ApplyHeartbeat(const Heartbeat& heartbeat, TimePoint now);

  // Forgets every edge not heard from (event, snapshot or heartbeat) for more
  // than `timeout`, with all its sockets; returns their ids, sorted. When
  // `dropped` is set, the sockets forgotten are appended to it.
  std::vector<std::string> ExpireEdges(TimePoint now,
                                       std::chrono::milliseconds timeout = kDefaultEdgeTimeout,
                                       std::vector<SocketInfo>* dropped = nullptr);
  // When the edge was last heard from (event, snapshot, heartbeat or Touch);
  // nullopt when unknown.
  std::optional<TimePoint> LastSeen(std::string_view edge_id) const;
  // Marks a known edge heard from now (it answered a probe). False if unknown.
  bool Touch(std::string_view edge_id, TimePoint now);
  // Forgets the edge and its sockets. False if it was unknown.
  bool ForgetEdge(std::string_view edge_id);
  // The sockets the index holds for the edge (none if unknown), unordered.
  std::vector<SocketInfo> EdgeSockets(std::string_view edge_id) const;
  // Sorted.
  std::vector<std::string> EdgesNeedingSnapshot() const;
  bool NeedsSnapshot(std::string_view edge_id) const;

  // Queries: served from the index only, deterministic order.
  Stats GetStats() const;
  absl::StatusOr<ListSocketsResponse> ListSockets(const ListSocketsRequest& request) const;
  absl::StatusOr<ListRoomsResponse> ListRooms(const ListRoomsRequest& request) const;
  Presence GetPresence(std::string_view user_id) const;
  // By edge id. Unknown namespace: empty.
  std::vector<EdgeTargets> Resolve(const Selector& selector) const;
  // How many sockets Resolve() would give, less those whose id is in
  // `excluded`; `edges` (when given) gets the ids of the edges holding them.
  // One room or the whole namespace is counted without listing the ids.
  uint64_t Count(const Selector& selector, const absl::flat_hash_set<std::string>& excluded,
                 std::set<std::string>* edges) const;
  std::optional<SocketInfo> GetSocket(std::string_view socket_id) const;
  size_t socket_count() const { return sockets_.size(); }

 private:
  struct Edge;
  struct Namespace;
  struct Room;
  struct User;
  struct Socket;
  // A set element: the socket and the first 8 bytes of its id, so that
  // B-tree searches compare within the node instead of chasing pointers.
  struct SocketRef {
    uint64_t prefix;
    Socket* socket;
  };
  struct IdKey {
    uint64_t prefix;
    std::string_view id;
  };
  struct ById {
    using is_transparent = void;
    bool operator()(const SocketRef& a, const SocketRef& b) const;
    bool operator()(const SocketRef& a, const IdKey& b) const;
    bool operator()(const IdKey& a, const SocketRef& b) const;
  };
  using SocketSet = absl::btree_set<SocketRef, ById>;
  // sockets_ is keyed by the id inside each Socket: one 8-byte slot a socket.
  struct SocketHash {
    using is_transparent = void;
    size_t operator()(std::string_view id) const;
    size_t operator()(const std::unique_ptr<Socket>& s) const;
  };
  struct SocketEq {
    using is_transparent = void;
    static std::string_view Id(std::string_view id) { return id; }
    static std::string_view Id(const std::unique_ptr<Socket>& s);
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return Id(a) == Id(b);
    }
  };

  Edge& GetOrAddEdge(std::string_view edge_id, TimePoint now, bool& created);
  void Apply(Edge& edge, const Event& event);
  void ApplyPending(Edge& edge);
  void AddSocket(Edge& edge, const SocketInfo& info);
  // AddSocket for a socket that moved to `edge` (a MovedIn, or a snapshot
  // listing it): the edge the index had it on owes its MovedOut.
  void MoveSocketTo(Edge& edge, const SocketInfo& info);
  void RemoveSocket(Socket* socket);
  void JoinRoom(Socket* socket, std::string_view room);
  void LeaveRoom(Socket* socket, Room* room);
  void DropEdgeSockets(Edge& edge);
  void RemoveEdge(std::string_view edge_id);
  SocketInfo ToInfo(const Socket& socket) const;
  // Transport names sockets point to (a few: never erased).
  const std::string* InternTransport(std::string_view name);

  absl::btree_map<std::string_view, std::unique_ptr<Edge>, std::less<>> edges_;
  absl::btree_map<std::string_view, std::unique_ptr<Namespace>, std::less<>> namespaces_;
  absl::flat_hash_set<std::unique_ptr<Socket>, SocketHash, SocketEq> sockets_;
  absl::flat_hash_map<std::string_view, std::unique_ptr<User>> users_;
  uint64_t room_count_ = 0;
  std::set<std::string, std::less<>> transports_;
};

}  // namespace switchboard::broker
