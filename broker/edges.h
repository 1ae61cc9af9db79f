#pragma once

// What the broker knows about each edge beyond the index: its incarnation,
// snapshot asks, the last heartbeat's counters and identity, and the edges
// lost (timed out without draining), kept a while for ListEdges.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/index.h"
#include "switchboard/v1/bus.pb.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::broker {

// A snapshot arriving in pages (SnapshotRequest.accepts_pages): what came so
// far, applied when the last page arrives.
struct PagedSnapshot {
  uint64_t request = 0;  // the ask it answers
  std::string id;
  uint32_t next_page = 0;
  uint32_t page_count = 0;
  uint64_t seq = 0;
  v1::Heartbeat heartbeat;  // page 0's
  std::vector<SocketInfo> sockets;
};

struct EdgeState {
  std::string incarnation;
  // Highest seq of this incarnation passed to watchers (each event once).
  uint64_t watched_seq = 0;
  bool snapshot_in_flight = false;
  uint64_t snapshot_request = 0;                           // id of the request in flight
  std::chrono::steady_clock::time_point snapshot_asked{};  // or its last page
  std::unique_ptr<PagedSnapshot> paged;                    // the request in flight's pages so far
  std::optional<WallTime> last_heartbeat;
  v1::Counts counts;                             // the last heartbeat's totals
  v1::ForwardStats forward;                      // the last heartbeat's forwarding counters
  v1::RecoveryStats recovery;                    // ... and recovery counters
  std::map<std::string, v1::Counts> nsp_counts;  // and per namespace
  // The namespaces its last heartbeat announced recovery for (normalized,
  // sorted, distinct): EdgeTable counts them.
  std::vector<std::string> recovery_namespaces;
  // From the heartbeats, for ListEdges.
  std::string version;
  std::optional<WallTime> started_at;
  bool draining = false;
  // Liveness probes (edge_probes.cc). The heartbeats' period (0: none heard
  // yet, never probed): an edge silent for 1.5 periods is probed.
  std::chrono::milliseconds interval{0};
  bool probe_in_flight = false;
  uint64_t probe_request = 0;  // id of the probe in flight
  // Set when a probe sent then found no responder (NATS closed the edge's
  // connection): the edge is dropped unless heard from since.
  std::optional<std::chrono::steady_clock::time_point> gone_as_of;

  // The heartbeat's counts (totals and per namespace).
  void KeepCounts(const v1::Heartbeat& heartbeat);
  // The heartbeat's version, start time and drain.
  void KeepIdentity(const v1::Heartbeat& heartbeat);
};

// An edge that timed out without draining first, kept for ListEdges.
struct LostEdge {
  std::string incarnation;
  std::string version;
  std::optional<WallTime> started_at;
  std::optional<WallTime> last_heartbeat;
  WallTime lost_at;
  uint64_t sockets = 0;  // held when it was lost
};

// Live and lost edges by id (an edge is never in both). Not thread-safe: the
// membership feed's lock guards it, with the index it keeps in step.
class EdgeTable {
 public:
  EdgeTable(std::chrono::milliseconds lost_retention, size_t max_lost)
      : lost_retention_(lost_retention), max_lost_(max_lost) {}

  // The edge's state, created when new (a lost edge is back); a new
  // incarnation starts it afresh and makes `index` forget the old process's
  // sockets (its seq starts again).
  EdgeState& Get(const std::string& edge_id, const std::string& incarnation, Index& index);
  EdgeState* Find(std::string_view edge_id);
  const EdgeState* Find(std::string_view edge_id) const;
  // The heartbeat's recovery namespaces become the edge's; returns those no
  // live edge announced before.
  std::vector<std::string> SetRecoveryNamespaces(EdgeState& edge, const v1::Heartbeat& heartbeat);
  // At least one live edge announces recovery for `nsp` (normalized).
  bool Recoverable(std::string_view nsp) const { return recovery_edges_.contains(nsp); }
  // Namespaces some live edge announces recovery for.
  size_t recoverable_count() const { return recovery_edges_.size(); }
  // Ids of the live edges, sorted.
  std::vector<std::string> LiveIds() const;
  // The index expired the edge (`expired` holds its sockets, maybe among
  // others'): lost unless it drained (it went away on purpose), forgotten
  // (its recovery namespaces with it).
  void Expire(const std::string& edge_id, WallTime now, const std::vector<SocketInfo>& expired);
  // Lost edges past the retention, then the oldest beyond the bound.
  void PruneLost(WallTime now);
  // Live edges (the index's, with their heartbeats' identity) and lost ones,
  // by edge id.
  void ListEdges(const Stats& index_stats, v1::ListEdgesResponse& response) const;

 private:
  const std::chrono::milliseconds lost_retention_;
  const size_t max_lost_;
  std::map<std::string, EdgeState, std::less<>> edges_;
  std::map<std::string, LostEdge> lost_;
  // Recovery namespace -> how many live edges announce it.
  std::map<std::string, int, std::less<>> recovery_edges_;

  void ReleaseRecoveryNamespaces(EdgeState& edge);
};

}  // namespace switchboard::broker
