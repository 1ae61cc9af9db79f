#pragma once

// Polling through any edge (docs/DESIGN-NOTES.md, "Polling through any
// edge"). A cluster edge's Engine.IO session ids name the edge that owns the
// session ("<edge-id>.<local id>", eio::Options::node_id). A long-polling GET
// or POST that reaches another edge is passed on to the owner as a NATS
// request on sb.v1.poll.<owner-edge-id> (PollRequest); the owner serves it on
// the session's shard through its polling transport, exactly as a request of
// its own (eio::Server::ServePoll), and replies with the HTTP answer
// (PollResponse), which the receiving edge sends with its own CORS headers.
//
// The receiving edge reads a POST's body itself (maxHttpBufferSize: the owner
// answers 413 and ends the session, as locally), and tells the owner when the
// client of a held GET goes away (a PollRequest with `abort`, on the same
// subject, so that it cannot overtake its GET). No owner (no responders, or
// no answer within the ping interval + ping timeout + 5 s): the client gets
// 400 "Session ID unknown", as for a session that died on this edge.
//
// Thread-safety: the hook runs on the connection's shard and answers there;
// the owner's side runs on the bus's delivery thread and the session's shard.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bus/bus.h"
#include "cluster/latency_histogram.h"
#include "edge/engineio/server.h"
#include "edge/runtime.h"

namespace switchboard::cluster {

class PollRelay {
 public:
  struct Options {
    // This edge (bus::ValidNodeId), as in the server's Options::node_id.
    std::string edge_id;
    // How long a passed-on request waits for the owner. 0: the server's ping
    // interval + ping timeout + 5 s, longer than any GET is held.
    std::chrono::milliseconds request_timeout{0};
  };

  // Subscribes to sb.v1.poll.<edge-id> and becomes `server`'s OnForeignPoll
  // hook. The bus, runtime and server must outlive it.
  static absl::StatusOr<std::unique_ptr<PollRelay>> Start(bus::Bus& bus, edge::Runtime& runtime,
                                                          eio::Server& server, Options options);
  // Unsubscribes; requests still passed on are forgotten (their clients get
  // no answer). Destroy after the runtime has stopped.
  ~PollRelay();
  PollRelay(const PollRelay&) = delete;
  PollRelay& operator=(const PollRelay&) = delete;

  // Requests this edge passed on to their owner, and served for another edge.
  uint64_t sent() const;
  uint64_t served() const;
  // Passed-on POSTs: from the request leaving to the owner's answer (a GET's
  // time is mostly how long the owner held it).
  const LatencyHistogram& latency() const;

  struct Core;

 private:
  explicit PollRelay(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
  bus::SubscriptionPtr sub_;
};

}  // namespace switchboard::cluster
