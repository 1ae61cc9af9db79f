#pragma once

// The edge's membership journal: mirrors every membership change a
// sio::Server reports and turns it into the edge's ordered membership stream
// on the bus (proto/SUBJECTS.md, "Membership ordering, gaps and liveness"):
//
//   sb.v1.membership.<edge-id>  MembershipEvent, seq 1, 2, 3... per incarnation
//   sb.v1.heartbeat.<edge-id>   Heartbeat with the last seq (PublishHeartbeat)
//   sb.v1.snapshot.<edge-id>    SnapshotRequest -> Snapshot (ServeSnapshots)
//   sb.v1.probe.<edge-id>       Probe -> ProbeReply (ServeSnapshots too)
//
// Thread-safety: every observer call, heartbeat and snapshot runs under ONE
// mutex. An observer call updates the mirror, takes the next seq and publishes
// the event before releasing it, so the bus sees events in seq order even
// though shards call concurrently; a snapshot is the mirror plus the seq of
// the last change it includes, consistent by construction.
//
// Observer calls also keep the heartbeat's counts (sockets, distinct users
// and rooms per namespace) as they go, so a heartbeat holds the mutex only to
// copy a few numbers per namespace, not to walk every socket's rooms (which
// stalled every shard's connect/join/leave behind it).
//
// Because Publish runs with the mutex held, no bus handler that runs inline
// (InlineExecutor) inside Publish may call back into the journal.
//
// A failed publish (bus down) does not stop anything: the seq is used anyway
// and the failure counted. Brokers notice the gap from the next event or
// heartbeat and ask for a snapshot.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "bus/bus.h"
#include "cluster/snapshot_pages.h"
#include "edge/socketio/membership_observer.h"
#include "proto/packed_strings.h"

namespace switchboard::v1 {
class Heartbeat;
class MembershipEvent;
class Snapshot;
class SocketInfo;
}  // namespace switchboard::v1

namespace switchboard::cluster {

class MembershipJournal : public sio::MembershipObserver {
 public:
  struct Options {
    // Reported in heartbeats (Heartbeat.interval_ms); the caller runs the timer.
    uint32_t heartbeat_interval_ms = 1000;
    // Empty: a random one (16 hex digits) chosen at construction.
    std::string incarnation;
    // Packets in / out per namespace since the edge started, for heartbeats
    // (empty: none reported).
    std::function<std::map<std::string, std::pair<uint64_t, uint64_t>>()> message_counts = nullptr;
    // Adds more to each heartbeat (e.g. forwarding counters); called outside
    // the journal's lock. Empty: nothing.
    std::function<void(v1::Heartbeat&)> decorate_heartbeat = nullptr;
    // Reported in heartbeats (Heartbeat.version, .started_at) for ListEdges.
    std::string version = {};
    // The edge process's start; the epoch: the journal's construction.
    std::chrono::system_clock::time_point started_at = {};
    // Hears each event as it is published, in order, under the journal's lock: it must not
    // call back into the journal (post the work elsewhere). The bus does not bring an edge its
    // own events (no-echo): the Admin UI on this edge hears them here. Empty: nobody.
    std::function<void(const v1::MembershipEvent&)> on_event = nullptr;
  };

  // `edge_id` must be a valid subject token ([A-Za-z0-9_-], see SUBJECTS.md);
  // otherwise every publish fails (and is counted) and ServeSnapshots fails.
  MembershipJournal(bus::Bus& bus, std::string edge_id);
  MembershipJournal(bus::Bus& bus, std::string edge_id, Options options);
  // Stops serving snapshots (waits for a running reply to finish).
  ~MembershipJournal() override;

  MembershipJournal(const MembershipJournal&) = delete;
  MembershipJournal& operator=(const MembershipJournal&) = delete;

  // sio::MembershipObserver (called from the server's shards).
  void OnConnected(const sio::Socket& socket) override;
  void OnDisconnected(const sio::Socket& socket, std::string_view reason) override;
  void OnJoined(const sio::Socket& socket, const std::string& room) override;
  void OnLeft(const sio::Socket& socket, const std::string& room) override;
  void OnTransportChanged(const sio::Socket& socket) override;
  // A move between edges (a WebSocket upgrade landed on another edge): the
  // socket leaves or enters the mirror and the counts, and the stream says
  // moved_out / moved_in (with the socket's rooms), never disconnected /
  // connected. A moved-in socket is listed as connected when it moves in;
  // the overload keeps the time it first connected (on the edge it came from).
  void OnMovedOut(const sio::Socket& socket, std::string_view to_edge) override;
  void OnMovedIn(const sio::Socket& socket, std::string_view from_edge) override;
  void OnMovedIn(const sio::Socket& socket, std::string_view from_edge,
                 std::chrono::system_clock::time_point connected_at);

  // Publishes one Heartbeat (edge, incarnation, last seq, counters) on
  // sb.v1.heartbeat.<edge-id>. The failure, if any, is counted and returned.
  // `draining` true marks this and every later heartbeat (and snapshot)
  // draining: a drain is never undone.
  absl::Status PublishHeartbeat(bool draining = false);
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

  // Subscribes to sb.v1.snapshot.<edge-id> and answers every request (on the
  // bus default executor) with a Snapshot; and to sb.v1.probe.<edge-id>,
  // answered on the bus's delivery thread (not queued behind deliveries on
  // the default executor), so that a busy edge still proves it is alive.
  // Idempotent.
  absl::Status ServeSnapshots();

  // The state as it would be sent now (also what a snapshot request gets).
  v1::Snapshot BuildSnapshot() const;

  const std::string& edge_id() const { return edge_id_; }
  const std::string& incarnation() const { return incarnation_; }
  std::string membership_subject() const;
  std::string heartbeat_subject() const;
  std::string snapshot_subject() const;

  uint64_t last_seq() const;
  size_t socket_count() const;
  // Sockets connected now by (namespace, transport name); a pair once seen
  // stays listed (at 0), so that metric series do not vanish.
  std::map<std::pair<std::string, std::string>, uint64_t> SocketsByTransport() const;
  // Publishes (events, heartbeats, snapshot replies) the bus refused.
  uint64_t publish_failures() const;
  uint64_t snapshots_served() const;
  // Paged snapshots held for brokers fetching them.
  size_t paged_snapshots_held() const { return pages_.size(); }

 private:
  // Kept for every socket of the edge, so it is small: the namespace and
  // transport are shared names, the id, user id, address and claims share one
  // allocation, rooms a sorted vector.
  struct SocketEntry {
    std::string_view id() const { return strings.get(0); }
    std::string_view user_id() const { return strings.get(1); }  // empty: anonymous
    std::string_view address() const { return strings.get(2); }
    std::string_view claims() const { return strings.get(3); }  // JSON text, empty: none

    proto::PackedStrings<4> strings;         // id, user id, address, claims
    const std::string* nsp = nullptr;        // in nsp_names_
    const std::string* transport = nullptr;  // in transport_names_
    std::chrono::system_clock::time_point connected_at;
    std::vector<std::string> rooms;  // sorted; never the socket's own-id room
  };
  // sockets_ is keyed by the id inside each entry: one 8-byte slot a socket.
  struct EntryHash {
    using is_transparent = void;
    size_t operator()(std::string_view id) const { return absl::Hash<std::string_view>{}(id); }
    size_t operator()(const std::unique_ptr<SocketEntry>& e) const { return (*this)(e->id()); }
  };
  struct EntryEq {
    using is_transparent = void;
    static std::string_view Id(std::string_view id) { return id; }
    static std::string_view Id(const std::unique_ptr<SocketEntry>& e) { return e->id(); }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return Id(a) == Id(b);
    }
  };

  // A heartbeat's counts of one namespace, kept as sockets come and go.
  struct NspCounts {
    uint64_t sockets = 0;
    absl::flat_hash_map<std::string, uint32_t> users;  // user id -> its sockets here
    absl::flat_hash_map<std::string, uint32_t> rooms;  // room -> its members here
  };

  // All under mu_.
  void PublishEventLocked(v1::MembershipEvent& event);
  void FillHeartbeatLocked(v1::Heartbeat& heartbeat) const;
  // Puts the socket in the room and counts it; false when it was in.
  bool AddRoomLocked(SocketEntry& entry, const std::string& room);
  // AddRoomLocked, and publishes the join.
  void JoinLocked(SocketEntry& entry, const std::string& room);
  // Adds the socket to the mirror and the counts, rooms aside; null when
  // it is there already.
  SocketEntry* AddLocked(const sio::Socket& socket,
                         std::chrono::system_clock::time_point connected_at);
  // Takes the socket out of the mirror and the counts (its rooms too).
  void RemoveLocked(const SocketEntry& entry);
  // The socket as the stream and snapshots carry it (rooms only if asked).
  void FillInfoLocked(const SocketEntry& entry, bool with_rooms, v1::SocketInfo& info) const;
  void CountRoomLeftLocked(NspCounts& counts, const std::string& room);
  // Outside mu_: the per-namespace message counters (message_counts_).
  void AddMessageCounts(v1::Heartbeat& heartbeat) const;
  static const std::string* Intern(std::set<std::string, std::less<>>& names,
                                   std::string_view name);
  void CountFailure(const absl::Status& status);
  void ServeOne(const bus::Message& message);

  bus::Bus& bus_;
  const std::string edge_id_;
  const std::string incarnation_;
  const uint32_t heartbeat_interval_ms_;
  const std::function<std::map<std::string, std::pair<uint64_t, uint64_t>>()> message_counts_;
  const std::function<void(v1::Heartbeat&)> decorate_heartbeat_;
  const std::string version_;
  const std::chrono::system_clock::time_point started_at_;
  const std::function<void(const v1::MembershipEvent&)> on_event_;
  std::atomic<bool> draining_{false};

  mutable std::mutex mu_;
  // By socket id; unordered (snapshots sort).
  absl::flat_hash_set<std::unique_ptr<SocketEntry>, EntryHash, EntryEq> sockets_;
  // Names entries point to (a handful: never erased).
  std::set<std::string, std::less<>> nsp_names_;
  std::set<std::string, std::less<>> transport_names_;
  std::map<std::pair<std::string, std::string>, uint64_t> by_transport_;  // (nsp, transport)
  // By namespace name (a view of its nsp_names_ entry); an entry stays at 0
  // sockets once its last socket left (heartbeats skip it).
  std::map<std::string_view, NspCounts> counts_;
  absl::flat_hash_map<std::string, uint32_t> total_users_;  // user id -> its sockets
  uint64_t total_rooms_ = 0;  // distinct (namespace, room): sum of counts_' rooms
  uint64_t seq_ = 0;          // the last seq used

  std::atomic<uint64_t> publish_failures_{0};
  std::atomic<uint64_t> snapshots_served_{0};

  // Snapshots over the bus's max_payload, being fetched page by page.
  SnapshotPageCache pages_;
  std::atomic<uint64_t> next_snapshot_id_{0};

  std::mutex sub_mu_;
  bus::SubscriptionPtr snapshot_sub_;
  bus::SubscriptionPtr probe_sub_;
};

}  // namespace switchboard::cluster
