#pragma once

// The broker: keeps the cluster's membership Index up to date from the edges'
// streams on the bus, and turns API calls into bus messages
// (proto/SUBJECTS.md). Brokers are peers: each one listens to every edge and
// builds the same index; none is a leader.
//
//   sb.v1.membership.>  MembershipEvent  -> Index (gaps, new edges, new
//                                           incarnations -> SnapshotRequest)
//   sb.v1.heartbeat.>   Heartbeat        -> Index liveness + the edge's counters
//   sb.v1.snapshot.<e>  SnapshotRequest  -> Snapshot (request/reply)
//   sb.v1.ack.<broker>  AckReport        <- edges, for Publish with acks
//   Publish / Commands  EdgeMessage      -> room / ns / user / edge subjects
//
// The gRPC layer (services/) is a thin adapter over this class: requests and
// responses are the public API's proto messages, errors are absl::Status with
// the code the API documents (InvalidArgument, Unavailable...).
//
// Thread-safety: every public method may be called from any thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/event_log.h"
#include "bus/bus.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::broker {

struct BrokerOptions {
  // Used in subjects (sb.v1.ack.<id>) and delivery ids; empty: a random one.
  // Must satisfy bus::ValidNodeId.
  std::string broker_id;
  // An edge not heard from for this long is dropped with its sockets. Sooner
  // when its heartbeats are late and a probe finds nobody (its NATS
  // connection is closed); an edge that answers probes is heard from.
  std::chrono::milliseconds edge_timeout{5'000};
  // How often the broker looks for expired edges and overdue snapshots.
  std::chrono::milliseconds tick{500};
  // How long a snapshot request may take before it is asked again.
  std::chrono::milliseconds snapshot_timeout{3'000};
  // The highest PublishRequest.ack_timeout_ms accepted.
  uint32_t max_ack_timeout_ms = 60'000;
  // After ack_timeout_ms, how long to wait for the edges' reports.
  std::chrono::milliseconds ack_grace{500};
  // How long an edge may take to confirm an Ack of a forwarded event.
  std::chrono::milliseconds forward_ack_timeout{3'000};
  // An edge that timed out (and was not draining) is listed as lost by
  // ListEdges for this long, or until it comes back; at most max_lost_edges
  // of them (the oldest are forgotten first).
  std::chrono::milliseconds lost_edge_retention{600'000};
  size_t max_lost_edges = 1000;
  // Connection state recovery in a cluster: Publish writes a namespace's
  // recoverable publishes (no acks, not volatile) to its log while a live
  // edge announces recovery for it in its heartbeats. Null (no JetStream):
  // they go on the core subjects like any other. Must outlive the broker.
  EventLog* event_log = nullptr;
  // May be empty. Runs (on a bus thread, no broker lock held) when an edge
  // announces recovery for a namespace no other live edge announces.
  std::function<void(const std::string& nsp)> on_recovery_announced;
};

class Broker {
 public:
  // Subscribes to the membership streams and asks every edge it hears from
  // for a snapshot. The bus must outlive the broker.
  static absl::StatusOr<std::unique_ptr<Broker>> Start(bus::Bus& bus, BrokerOptions options = {});
  // Unsubscribes; pending Publish calls with acks complete with what arrived;
  // watchers get their `closed` callback.
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  const std::string& id() const;
  bool bus_connected() const;

  // Since the start (metrics): membership events that arrived out of order
  // (a gap in an edge's stream), snapshots asked for (resyncs), edges dropped
  // for silence; watch events dropped and the client acks failed for them
  // (GetStatsResponse.watch).
  struct Counters {
    uint64_t gaps = 0;
    uint64_t snapshot_requests = 0;
    uint64_t edges_expired = 0;
    uint64_t watch_dropped = 0;
    uint64_t watch_acks_failed = 0;
    // Probes sent to edges whose heartbeats were late.
    uint64_t edge_probes = 0;
    // Recoverable publishes: stored in their namespace's log; sent on the
    // core subjects because the log did not exist (NotFound); refused
    // because the log failed.
    uint64_t log_stored = 0;
    uint64_t log_fallback = 0;
    uint64_t log_failed = 0;
  };
  Counters counters() const;

  // Validates, builds one Delivery and publishes it on every subject its
  // target needs (InvalidArgument, naming the limit, when the encoded
  // Delivery is over the bus's max_payload). Without acks `done` runs before Publish returns; with
  // acks it runs later (on a broker thread) once every edge reported or ack_timeout_ms + ack_grace
  // passed. A recoverable publish (BrokerOptions::event_log) goes to its namespace's log instead:
  // `done` runs on the log's thread once the log stored it (Unavailable when it could not; on the
  // core subjects after all when the namespace has no log yet). `done` is called exactly once.
  using PublishDone = std::function<void(absl::StatusOr<v1::PublishResponse>)>;
  void Publish(const v1::PublishRequest& request, PublishDone done);
  // A live edge announces connection state recovery for `nsp` ("" is "/")
  // in its heartbeats: Publish writes to its log (when there is one).
  bool Recoverable(std::string_view nsp) const;

  absl::StatusOr<v1::JoinRoomsResponse> JoinRooms(const v1::JoinRoomsRequest& request);
  absl::StatusOr<v1::LeaveRoomsResponse> LeaveRooms(const v1::LeaveRoomsRequest& request);
  absl::StatusOr<v1::DisconnectSocketsResponse> DisconnectSockets(
      const v1::DisconnectSocketsRequest& request);

  // Served from the index only.
  absl::StatusOr<v1::GetStatsResponse> GetStats(const v1::GetStatsRequest& request);
  // Live edges (from their heartbeats) and lost ones, by edge id.
  absl::StatusOr<v1::ListEdgesResponse> ListEdges(const v1::ListEdgesRequest& request);
  absl::StatusOr<v1::ListSocketsResponse> ListSockets(const v1::ListSocketsRequest& request);
  absl::StatusOr<v1::ListRoomsResponse> ListRooms(const v1::ListRoomsRequest& request);
  absl::StatusOr<v1::GetPresenceResponse> GetPresence(const v1::GetPresenceRequest& request);

  // Answers the client ack of a forwarded event (ClientEvent.ack_ref): asks
  // the edge the ref names (sb.v1.fack.<edge-id>), which answers the client
  // unless the ack was answered already. `done` runs exactly once: OK;
  // NotFound (unknown, already answered, timed out, edge gone);
  // InvalidArgument (malformed ref or argument); Unavailable (bus down, or no
  // confirmation within forward_ack_timeout).
  using AckDone = std::function<void(absl::Status)>;
  void Ack(const v1::AckRequest& request, AckDone done);

  // A live feed of membership changes and forwarded client events matching
  // the filter (WatchEventsRequest: namespaces, kinds, event names, queue
  // group). `on_event` runs on a broker thread, one call
  // at a time per watcher, and must not block for long; `on_closed` runs once
  // when the broker shuts down. Destroying the handle stops the feed (no call
  // starts after the destructor returns).
  class Watch {
   public:
    virtual ~Watch() = default;
  };
  using WatchEvent = std::function<void(const v1::WatchEventsResponse&)>;
  absl::StatusOr<std::unique_ptr<Watch>> StartWatch(const v1::WatchEventsRequest& request,
                                                    WatchEvent on_event,
                                                    std::function<void()> on_closed);

  // For a watch's owner (the gRPC stream): an event `on_event` handed over
  // that the watcher will never get (its queue was full, or its stream
  // ended). Counted (GetStats, counters()); when `owns_acks` (the watcher is
  // in a queue group: the event was its alone) and the event is a client
  // event awaiting an ack, the client is answered at once with
  // {"ok": false, "error": error} rather than waiting for its ack timeout.
  void WatchDropped(const v1::WatchEventsResponse& event, bool owns_acks, std::string_view error);

 private:
  struct State;
  explicit Broker(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace switchboard::broker
