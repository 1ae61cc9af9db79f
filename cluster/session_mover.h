#pragma once

// Moves an Engine.IO session to the edge that holds its WebSocket
// (docs/DESIGN-NOTES.md, "Moving a session"; proto/SUBJECTS.md). A client
// behind a balancer without affinity may open its upgrade WebSocket on any
// edge; the sid names the session's owner. On that new edge:
//   1. the client's probe ("2probe") makes the new edge ask the owner to
//      prepare (MovePrepare): the owner pauses the session's polling and says
//      which sockets it holds; the new edge subscribes to every subject that
//      reaches them and keeps what arrives there from now on; then "3probe";
//   2. the upgrade packet ("5") makes it take the session (MoveTake): the
//      owner hands over the sockets (ids, rooms, user, claims, data, acks) and
//      the packets queued for the client, with the ids of the deliveries it
//      handled since shortly before step 1, and forgets the session (the membership stream
//      records a move); the new edge sets the session up on the WebSocket,
//      writes the queued packets, then what it kept minus what the owner
//      handled, then carries on (still keeping what the owner handled from
//      the moved sockets for a while: the bus may bring it here later than
//      it brought it to the owner).
// What the old edge still has to say to a moved socket (the answer to an ack
// the client asked for before the move) travels on the socket's subject; the
// client's answers to acks the old edge asked for travel back (MovedAck).
// After the move the session depends only on the new edge.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "bus/bus.h"
#include "cluster/edge_link.h"
#include "cluster/latency_histogram.h"
#include "edge/socketio/client.h"
#include "edge/socketio/moved_socket.h"
#include "edge/socketio/server.h"

namespace switchboard::edge {
class HttpSession;
}
namespace switchboard::v1 {
class MoveTake;
}

namespace switchboard::cluster {

class SessionMover : public sio::MoveRelay {
 public:
  struct Options {
    std::string edge_id;
    // How long each request to the owner may take.
    std::chrono::milliseconds request_timeout{3000};
    // How long an old edge keeps a moved socket to relay its late answers.
    std::chrono::milliseconds relay_grace{120'000};
    // The owner reports the deliveries it handled from this long before the
    // prepare step (at most handled_limit of them): the bus may bring a
    // message to the two edges at different times. The new edge keeps the
    // moved sockets out of those for `given_grace`.
    std::chrono::milliseconds handled_margin{2000};
    size_t handled_limit = 10'000;
    std::chrono::milliseconds given_grace{10'000};
  };
  // Serves moves of this edge's sessions and installs itself as the server's
  // MoveRelay. The bus, server and link must outlive it, and the server's
  // runtime must be stopped before it is destroyed.
  static absl::StatusOr<std::unique_ptr<SessionMover>> Start(bus::Bus& bus, sio::Server& server,
                                                             EdgeLink& link, Options options);
  ~SessionMover() override;

  // The Engine.IO server's hook for a WebSocket whose sid names another edge
  // (`owner`); on the request's shard.
  void ArriveFrom(const std::shared_ptr<edge::HttpSession>& http, std::string_view owner,
                  std::string_view sid);

  // sio::MoveRelay
  void SendToMoved(const sio::Socket& socket, const std::vector<eio::Frame>& frames) override;
  void AnswerElsewhere(const sio::Socket& socket, uint64_t ack_id, const sio::Json& args) override;

  struct Stats {
    uint64_t moved_in = 0;   // sessions taken over from other edges
    uint64_t moved_out = 0;  // sessions handed to other edges
    uint64_t failed = 0;     // moves given up (owner gone, session closed, timeouts)
  };
  Stats stats() const;
  // From the upgrade packet ("5") to the session running here, per move in.
  const LatencyHistogram& move_latency() const { return move_latency_; }

  // Internal (the arrival of one session).
  class Arrival;
  void Prepare(const std::shared_ptr<Arrival>& arrival);
  // `attempt`: how many times the owner asked for more subjects already.
  void Take(const std::shared_ptr<Arrival>& arrival, int attempt);
  void CountFailed() { failed_.fetch_add(1, std::memory_order_relaxed); }

 private:
  SessionMover(bus::Bus& bus, sio::Server& server, EdgeLink& link, Options options);
  void OnRequest(const bus::Message& message);
  void ServePrepare(const bus::Message& message, std::string sid);
  void ServeTake(const bus::Message& message, const v1::MoveTake& take);
  void ServeAck(const std::string& socket_id, uint64_t ack_id, std::string_view args_json);
  // Keeps a departed client, for its sockets' late answers.
  void KeepDeparted(const std::string& sid, const std::shared_ptr<sio::Client>& client,
                    const std::vector<sio::MovedSocketState>& sockets);

  bus::Bus& bus_;
  sio::Server& server_;
  EdgeLink& link_;
  const Options options_;
  bus::SubscriptionPtr requests_;

  std::mutex mu_;
  // Sessions of this edge being prepared for a move, by local id: since when.
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> preparing_;
  struct Departed {
    std::shared_ptr<sio::Client> client;
    std::string nsp;
    std::chrono::steady_clock::time_point until;
  };
  std::unordered_map<std::string, Departed> departed_;  // by socket id

  std::atomic<uint64_t> moved_in_{0};
  std::atomic<uint64_t> moved_out_{0};
  std::atomic<uint64_t> failed_{0};
  LatencyHistogram move_latency_;
};

}  // namespace switchboard::cluster
