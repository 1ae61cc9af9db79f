#pragma once

// Client events to backends (proto/SUBJECTS.md, "Client events"): an edge
// publishes each event its namespace's policy forwards as a ForwardedEvent on
// sb.v1.forward.<ns>.<event>, where backends take it from a NATS queue group
// and brokers hand it to WatchEvents callers.
//
// An event whose client asked for an ack is sent as a bus request: the first
// ForwardReply on it answers the client; so does a ForwardAck that a broker
// sends on sb.v1.fack.<edge-id> for an API Ack(ack_ref). Whichever comes first
// wins, the other finds nothing (at most once). No answer within the
// policy's ack timeout: the client gets {"ok": false, "error": "timeout"}.
//
// Backpressure: nothing queues here. A publish the bus refuses (down) is
// dropped, an ack request is refused while max_pending_acks are waiting, and
// an ack request that no backend listens to ("no responders") fails at once;
// each counts as dropped and an ack request gets an error
// ({"ok": false, "error": "backend unavailable" | "backend busy" |
// "no backend"}). The counters go into the edge's heartbeats (ForwardStats).
//
// Thread-safety: Forward runs on the socket's shard; answers are posted back
// to that shard. Stats may be called from any thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "bus/bus.h"
#include "cluster/forward_policy.h"
#include "edge/runtime.h"
#include "edge/socketio/socket.h"

namespace switchboard::v1 {
class ForwardStats;
class Handshake;
}  // namespace switchboard::v1

namespace switchboard::cluster {

// Fills a Handshake from a socket: address, the `headers` named (lower-case
// names) but never `Authorization`, query (minus EIO, transport, sid, t and
// `hidden_query`: credentials stay on the edge), claims, time.
void FillHandshake(const sio::Socket& socket, const std::vector<std::string>& headers,
                   const std::vector<std::string>& hidden_query, v1::Handshake* out);

class Forwarder {
 public:
  struct Options {
    // This edge (bus::ValidNodeId).
    std::string edge_id;
    // Client acks waiting for a backend at once, all namespaces.
    size_t max_pending_acks = 10'000;
  };

  // Subscribes to sb.v1.fack.<edge-id>. The bus and runtime must outlive it.
  static absl::StatusOr<std::unique_ptr<Forwarder>> Start(bus::Bus& bus, edge::Runtime& runtime,
                                                          Options options);
  // Unsubscribes; acks still waiting are forgotten (their requests answer
  // nobody). Destroy after the runtime has stopped.
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // On the socket's shard: publishes the event. `ack` empty: fire and forget;
  // else the client's callback, answered once as described above.
  void Forward(sio::Socket& socket, std::string_view event, const sio::Json& args,
               const ForwardPolicy& policy, sio::Ack ack);

  // forwarded, dropped, acks_answered, acks_timed_out, acks_pending.
  void FillStats(v1::ForwardStats* out) const;
  size_t pending_acks() const;

 private:
  struct Core;
  explicit Forwarder(std::shared_ptr<Core> core);
  void OnForwardAck(const bus::Message& message);

  std::shared_ptr<Core> core_;
  bus::SubscriptionPtr ack_sub_;
};

}  // namespace switchboard::cluster
