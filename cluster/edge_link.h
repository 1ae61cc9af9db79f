#pragma once

// An edge's link to the cluster (proto/SUBJECTS.md). It
//  * keeps the edge's membership stream, heartbeats and snapshot replies
//    (MembershipJournal) going;
//  * subscribes to exactly the target subjects the edge has local interest
//    in: sb.v1.ns.<ns> while a socket is in the namespace,
//    sb.v1.room.<ns>.<room> while a local socket is in the room,
//    sb.v1.user.<ns>.<user> while a socket of the user is connected, and
//    sb.v1.sock.<edge-id>.* always (and each moved-in socket's own subject);
//  * turns each EdgeMessage it receives into local work: a Delivery is
//    encoded once and handed to every local recipient (or, with ack
//    collection, emitted with an ack request to each and reported on the
//    ack subject); a Command joins, leaves or disconnects local sockets;
//  * relays the broadcasts its own handlers emit (configured relay rules) to
//    the other edges, pre-encoded.
// A message id seen within the dedup window is handled once, so a socket in
// two targeted rooms gets an event once.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "bus/bus.h"
#include "cluster/latency_histogram.h"
#include "cluster/membership_journal.h"
#include "edge/socketio/server.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {

class EdgeLink : public sio::MembershipObserver, public sio::BroadcastRelay {
 public:
  struct Options {
    // Must satisfy bus::ValidNodeId and equal the server's socket id prefix
    // (sio::ServerOptions::edge_id).
    std::string edge_id;
    std::chrono::milliseconds heartbeat_interval{1000};
    // Send broadcasts of local handlers to the other edges. Off when this
    // is the only edge (standalone).
    bool relay_broadcasts = true;
    // How long a handled message id is remembered.
    std::chrono::milliseconds dedup_window{60'000};
    // Adds more to each heartbeat (MembershipJournal::Options).
    std::function<void(v1::Heartbeat&)> decorate_heartbeat = nullptr;
    // Reported in heartbeats (MembershipJournal::Options).
    std::string version = {};
    std::chrono::system_clock::time_point started_at = {};
    // Hears each membership event this edge publishes (MembershipJournal::Options::on_event).
    std::function<void(const v1::MembershipEvent&)> on_membership_event = nullptr;
    // Appends an EdgeMessage to a namespace's recovery log on JetStream
    // (bus::LogWriter::Append's contract): how the broadcasts of a namespace
    // whose log is shared (a cluster's) leave this edge. Empty: no such log.
    std::function<absl::Status(std::string_view nsp, std::string_view payload,
                               std::function<void(absl::StatusOr<uint64_t>)> done)>
        append_to_log = nullptr;
  };

  // Installs itself as the server's membership observer and broadcast relay.
  // Call before the server serves; the bus and server must outlive the link,
  // and the server's runtime must be stopped before the link is destroyed.
  static absl::StatusOr<std::unique_ptr<EdgeLink>> Start(bus::Bus& bus, sio::Server& server,
                                                         Options options);
  ~EdgeLink() override;
  EdgeLink(const EdgeLink&) = delete;
  EdgeLink& operator=(const EdgeLink&) = delete;

  // sio::MembershipObserver (from the server's shards).
  void OnConnected(const sio::Socket& socket) override;
  void OnDisconnected(const sio::Socket& socket, std::string_view reason) override;
  void OnJoined(const sio::Socket& socket, const std::string& room) override;
  void OnLeft(const sio::Socket& socket, const std::string& room) override;
  void OnTransportChanged(const sio::Socket& socket) override;
  void OnMovedOut(const sio::Socket& socket, std::string_view to_edge) override;
  void OnMovedIn(const sio::Socket& socket, std::string_view from_edge) override;
  // sio::BroadcastRelay: publishes before the local delivery; a broadcast
  // over the bus's max_payload is refused (nobody gets it) and counted. A
  // recoverable one of a namespace whose log is shared goes to the log: every
  // edge, this one too, delivers it from there.
  Relayed OnLocalBroadcast(sio::Namespace& nsp, const sio::Delivery& delivery) override;
  // Local broadcasts refused: too large for the bus.
  uint64_t relays_refused() const { return relays_refused_.load(std::memory_order_relaxed); }

  MembershipJournal& journal() { return journal_; }
  const std::string& edge_id() const { return options_.edge_id; }
  // Target subjects subscribed now (edge subject included).
  size_t subscription_count() const;
  // Publishes a heartbeat now (also done every heartbeat_interval).
  // `draining` true: this and every later heartbeat say so.
  void Heartbeat(bool draining = false);
  // Publish → deliver latency of the deliveries that arrived over the bus
  // with a publish time: observed once per delivery, when it is handed to
  // the local recipients.
  const LatencyHistogram& delivery_latency() const { return delivery_latency_; }

  // Session moves (cluster/session_mover.h).
  // The subjects that reach a socket of `nsp` with this id, user and rooms.
  static std::vector<std::string> SubjectsOf(std::string_view nsp, std::string_view socket_id,
                                             std::string_view user_id,
                                             const std::vector<std::string>& rooms);
  // Subscribes to `subjects` (held until ReleaseSubjects) and keeps every
  // message that arrives on them from now on, until EndBuffer(token).
  uint64_t BeginBuffer(std::vector<std::string> subjects);
  std::vector<v1::EdgeMessage> EndBuffer(uint64_t token);
  // Adds `subjects` to a buffer begun by BeginBuffer (subscribed and held
  // the same way).
  void ExtendBuffer(uint64_t token, const std::vector<std::string>& subjects);
  void ReleaseSubjects(const std::vector<std::string>& subjects);
  // Ids of the deliveries and commands handled since `since` (within the
  // dedup window), the most recent first, at most `limit`.
  std::vector<std::string> HandledSince(std::chrono::steady_clock::time_point since, size_t limit);
  // Handles `messages` again for the sockets `only` names, skipping those
  // whose id is in `handled`; and, for `grace`, keeps those sockets out of
  // any later delivery with an id in `handled`: the old edge gave them those
  // already, and this edge may receive them later than it did. Call within
  // RunExclusive.
  void Replay(const std::vector<v1::EdgeMessage>& messages, const std::vector<std::string>& handled,
              std::shared_ptr<const std::vector<std::string>> only,
              std::chrono::milliseconds grace);
  // Runs `fn` while no bus message is being handled: a message is either
  // handled (its deliveries handed to the shards) before `fn`, or begins
  // after it.
  void RunExclusive(const std::function<void()>& fn) {
    std::lock_guard lock(handling_mu_);
    fn();
  }
  // The id for a delivery this edge sends (relays, packets for moved sockets).
  std::string NextDeliveryId();

 private:
  EdgeLink(bus::Bus& bus, sio::Server& server, Options options);
  struct Interest {
    size_t count = 0;
    bus::SubscriptionPtr subscription;  // null while the bus refused it
  };
  bool OwnSocketSubject(std::string_view subject) const;
  bool LogsHere(sio::Namespace& nsp, const sio::Delivery& delivery) const;
  // Publishes a relayed broadcast on its target subjects; false when the bus
  // refused it as too large (counted).
  bool RelayOnBus(sio::Namespace& nsp, const sio::Delivery& delivery, const std::string& payload);
  void AddInterest(const std::string& subject);
  void DropInterest(const std::string& subject);
  void RetryFailedSubscriptions();
  void OnBusMessage(const bus::Message& message);
  bool FirstTime(const std::string& id);
  void HandleDelivery(const v1::Delivery& delivery, std::shared_ptr<const void> hold,
                      std::shared_ptr<const std::vector<std::string>> only = nullptr,
                      const std::vector<std::string>* except_sockets = nullptr);
  void HandleCommand(const v1::Command& command,
                     std::shared_ptr<const std::vector<std::string>> only = nullptr);
  // Sockets a delivery must not reach again (Replay), dropped when expired.
  const std::vector<std::string>* AlreadyGiven(const std::string& id);
  void Buffer(const std::string& subject, const v1::EdgeMessage& message);
  void CollectAcks(sio::Namespace& nsp, const v1::Delivery& delivery, sio::BroadcastTarget target,
                   sio::Json args, std::shared_ptr<const void> hold);
  void HeartbeatLoop();

  bus::Bus& bus_;
  sio::Server& server_;
  const Options options_;
  const std::string own_socket_prefix_;  // "sb.v1.sock.<edge-id>."
  MembershipJournal journal_;

  mutable std::mutex interest_mu_;
  std::map<std::string, Interest> interests_;  // by subject

  std::mutex handling_mu_;  // held while a bus message is handled
  struct GivenElsewhere {
    std::chrono::steady_clock::time_point until;
    std::shared_ptr<const std::vector<std::string>> sockets;
  };
  // Delivery id -> moved-in sockets that had it on their old edge (under
  // handling_mu_).
  std::unordered_map<std::string, GivenElsewhere> already_given_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> already_given_order_;
  std::mutex dedup_mu_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> seen_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> seen_order_;

  struct MoveBuffer {
    std::vector<std::string> subjects;
    std::vector<v1::EdgeMessage> messages;
  };
  std::mutex buffers_mu_;
  std::map<uint64_t, MoveBuffer> buffers_;
  uint64_t next_buffer_ = 0;
  std::atomic<size_t> buffering_{0};

  std::atomic<uint64_t> relay_counter_{0};
  std::atomic<uint64_t> relays_refused_{0};
  LatencyHistogram delivery_latency_;

  std::mutex heartbeat_mu_;
  std::condition_variable heartbeat_cv_;
  bool stopping_ = false;
  std::thread heartbeat_thread_;
};

}  // namespace switchboard::cluster
