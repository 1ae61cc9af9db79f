#pragma once

// The membership index fed from the edges' streams (sb.v1.membership.>,
// sb.v1.heartbeat.>, snapshots on request), and the queries served from it.
// One lock (mu_) guards the index and the edge table, which move in step.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "broker/counters.h"
#include "broker/edges.h"
#include "broker/index.h"
#include "bus/bus.h"
#include "switchboard/v1/bus.pb.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::broker {

// Held by shared_ptr: snapshot replies hold it weakly (they may arrive after
// the broker is gone).
class MembershipFeed : public std::enable_shared_from_this<MembershipFeed> {
 public:
  using Clock = std::chrono::steady_clock;

  // `tick_soon` (may be empty) asks for a Tick now: an edge is to be dropped.
  MembershipFeed(bus::Bus& bus, BrokerOptions options, BrokerCounters& counters,
                 std::function<void()> tick_soon = nullptr);

  // --- The streams (membership_feed.cc). Each asks the edge for a snapshot
  // when the index needs one (a gap, a new edge or incarnation, a heartbeat
  // that disagrees).

  // True when the event is new to watchers (each seq of an incarnation once).
  bool OnMembership(const v1::MembershipEvent& event) ABSL_LOCKS_EXCLUDED(mu_);
  void OnHeartbeat(const v1::Heartbeat& heartbeat) ABSL_LOCKS_EXCLUDED(mu_);
  // Each broker tick: drops edges silent for edge_timeout, or whose probe
  // found no responder (returning their sockets), probes edges whose
  // heartbeats are late, and asks again for snapshots that failed or timed
  // out.
  std::vector<SocketInfo> Tick(Clock::time_point now) ABSL_LOCKS_EXCLUDED(mu_);
  // No handler or snapshot reply acts after this returns.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // --- Queries (queries.cc).

  // Index and heartbeat figures; the broker adds its own counters.
  v1::GetStatsResponse GetStats() const ABSL_LOCKS_EXCLUDED(mu_);
  v1::ListEdgesResponse ListEdges() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListSocketsResponse> ListSockets(const v1::ListSocketsRequest& request) const
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::ListRoomsResponse> ListRooms(const v1::ListRoomsRequest& request) const
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::GetPresenceResponse> GetPresence(const v1::GetPresenceRequest& request) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // The sockets a publish's target matches (`nsp` normalized); `edges` (when
  // given) gets the edges holding at least one of them.
  uint64_t CountRecipients(const v1::Target& target, const std::string& nsp,
                           std::set<std::string>* edges) const ABSL_LOCKS_EXCLUDED(mu_);
  // At least one live edge announces connection state recovery for `nsp`
  // (normalized) in its heartbeats. Lock-free while none announces any.
  bool Recoverable(std::string_view nsp) const ABSL_LOCKS_EXCLUDED(mu_);
  // The sockets a command's selector matches.
  uint64_t CountMatched(const v1::Selector& selector, const std::string& nsp) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Ask {
    std::string edge_id;
    uint64_t request;
    // A later page of a paged snapshot (empty id: a new snapshot).
    std::string snapshot_id;
    uint32_t page = 0;
  };
  enum class PageResult { kMore, kComplete, kStartOver };
  // Adds a page of a paged snapshot to edge.paged.
  static PageResult AddPage(EdgeState& edge, uint64_t request, v1::Snapshot& page);
  // Marks a snapshot ask for the edge unless one is already in flight.
  void AskLocked(const std::string& edge_id, EdgeState& edge, Clock::time_point now,
                 std::vector<Ask>& asks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Never with mu_ held: a bus running handlers inline would re-enter.
  void SendAsks(const std::vector<Ask>& asks) ABSL_LOCKS_EXCLUDED(mu_);
  void OnSnapshotReply(const Ask& ask, const absl::StatusOr<bus::Message>& reply)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The whole snapshot (or its last page) into the index, and the
  // heartbeat's counts with it; asks again if the index still needs one.
  void ApplySnapshotLocked(EdgeState& edge, const Snapshot& state, const v1::Heartbeat* heartbeat,
                           Clock::time_point now, std::vector<Ask>& asks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // --- Probes (edge_probes.cc): a request to the edge's own subject, sent
  // when its heartbeats are late (proto/SUBJECTS.md, "liveness").
  struct Probe {
    std::string edge_id;
    uint64_t request;
    Clock::time_point sent;
  };
  // Probes the edges whose heartbeats are late, and drops those a probe found
  // gone (their sockets appended to `dropped`).
  void ProbeLocked(Clock::time_point now, WallTime wall_now, std::vector<Probe>& probes,
                   std::vector<SocketInfo>& dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendProbes(const std::vector<Probe>& probes) ABSL_LOCKS_EXCLUDED(mu_);
  void OnProbeReply(const Probe& probe, const absl::StatusOr<bus::Message>& reply)
      ABSL_LOCKS_EXCLUDED(mu_);
  // After the edge table changed: keeps any_recoverable_ in step.
  void NoteRecoverableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    any_recoverable_.store(edges_.recoverable_count() > 0, std::memory_order_release);
  }
  bool EnterCallback() ABSL_LOCKS_EXCLUDED(mu_);
  void ExitCallback() ABSL_LOCKS_EXCLUDED(mu_);

  bus::Bus& bus_;
  const BrokerOptions options_;
  BrokerCounters& counters_;
  const std::function<void()> tick_soon_;

  mutable std::mutex mu_;
  std::condition_variable callbacks_done_;  // callbacks_running_ reaching 0
  Index index_ ABSL_GUARDED_BY(mu_);
  EdgeTable edges_ ABSL_GUARDED_BY(mu_);
  uint64_t next_snapshot_request_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_probe_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int callbacks_running_ ABSL_GUARDED_BY(mu_) = 0;
  // Some live edge announces a recovery namespace (Recoverable's fast path).
  std::atomic<bool> any_recoverable_{false};
};

}  // namespace switchboard::broker
