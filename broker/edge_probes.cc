// The membership feed's liveness probes (membership_feed.h): an edge whose
// heartbeats are late gets a Probe on sb.v1.probe.<edge-id>. NATS answers
// "no responders" when nobody subscribes there, which for a known edge means
// its connection is closed (killed, crashed, its host's TCP reset): the edge
// is dropped at once rather than after edge_timeout. An answer counts as
// hearing from the edge, so a busy edge whose heartbeats lag is kept; a
// timeout says nothing (the edge_timeout still applies).

#include <iterator>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "broker/membership_feed.h"
#include "bus/routing.h"

namespace switchboard::broker {

void MembershipFeed::ProbeLocked(Clock::time_point now, WallTime wall_now,
                                 std::vector<Probe>& probes, std::vector<SocketInfo>& dropped) {
  for (const std::string& id : edges_.LiveIds()) {
    EdgeState* edge = edges_.Find(id);
    const std::optional<Clock::time_point> last_seen = index_.LastSeen(id);
    if (edge == nullptr || !last_seen) continue;
    if (edge->gone_as_of) {
      // Heard from after the probe left: it reconnected, it is not gone.
      if (*last_seen <= *edge->gone_as_of) {
        std::vector<SocketInfo> sockets = index_.EdgeSockets(id);
        index_.ForgetEdge(id);
        counters_.edges_expired.fetch_add(1, std::memory_order_relaxed);
        edges_.Expire(id, wall_now, sockets);
        std::move(sockets.begin(), sockets.end(), std::back_inserter(dropped));
        continue;
      }
      edge->gone_as_of.reset();
    }
    // Half a period of slack: a heartbeat is never exactly on time.
    if (edge->interval <= std::chrono::milliseconds::zero() || edge->probe_in_flight ||
        now - *last_seen < edge->interval * 3 / 2) {
      continue;
    }
    edge->probe_in_flight = true;
    edge->probe_request = ++next_probe_;
    counters_.edge_probes.fetch_add(1, std::memory_order_relaxed);
    probes.push_back({id, edge->probe_request, now});
  }
}

void MembershipFeed::SendProbes(const std::vector<Probe>& probes) {
  if (probes.empty()) return;
  v1::Probe request;
  request.set_broker_id(options_.broker_id);
  const std::string payload = request.SerializeAsString();
  std::weak_ptr<MembershipFeed> weak = weak_from_this();
  for (const Probe& probe : probes) {
    // Answered within edge_timeout or not at all: the edge is dropped by
    // then anyway. The reply is handled where it arrives, not behind the
    // membership streams on the default executor.
    bus_.Request(
        bus::ProbeSubject(probe.edge_id), payload, options_.edge_timeout,
        [weak, probe](absl::StatusOr<bus::Message> reply) {
          std::shared_ptr<MembershipFeed> feed = weak.lock();
          if (feed == nullptr || !feed->EnterCallback()) return;
          feed->OnProbeReply(probe, reply);
          feed->ExitCallback();
        },
        bus::InlineExecutor);
  }
}

void MembershipFeed::OnProbeReply(const Probe& probe, const absl::StatusOr<bus::Message>& reply) {
  bool gone = false;
  {
    std::lock_guard lock(mu_);
    EdgeState* edge = edges_.Find(probe.edge_id);
    // Expired meanwhile, or a new incarnation started the state afresh.
    if (edge == nullptr || edge->probe_request != probe.request) return;
    edge->probe_in_flight = false;
    if (reply.ok()) {
      v1::ProbeReply answer;
      if (answer.ParseFromString(reply->payload) && answer.edge_id() == probe.edge_id &&
          answer.incarnation() == edge->incarnation) {
        index_.Touch(probe.edge_id, Clock::now());
      }
    } else if (absl::IsNotFound(reply.status())) {
      edge->gone_as_of = probe.sent;
      gone = true;
    }
  }
  if (gone && tick_soon_) tick_soon_();
}

}  // namespace switchboard::broker
