#pragma once

// The relay rule engine: runs a namespace's declarative rules (rule.h,
// services/CONFIG.md) as Socket.IO event handlers — relay to the namespace / a room /
// a socket, client-requested room join / leave with notifications, and ack
// answers — so the chat behaviours need configuration only.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

#include "edge/socketio/namespace.h"
#include "edge/socketio/socket.h"
#include "policy/namespace_policy.h"

namespace switchboard::policy {

class RelayRules : public std::enable_shared_from_this<RelayRules> {
 public:
  // Hands a client event to backends (cluster::Forwarder::Forward with the
  // namespace's policy); `ack` empty when the backend must not answer it.
  using ForwardFn =
      std::function<void(sio::Socket&, std::string_view event, const Json& args, sio::Ack ack)>;

  // Installs `policy` on `nsp` (call before the server serves): one On()
  // handler per rule, OnAnyEvent for events no rule names (ignored and
  // counted; an ack request gets {"ok":false,"error":"unknown event"}), and
  // OnConnection / OnDisconnect to know the namespace's socket ids (so a
  // "socket" target must name a connected socket, and nobody can join a
  // room named after another socket). The handlers keep the engine alive.
  // With policy.forward and `forward`: an event no rule names that the
  // policy forwards goes to `forward` with the client's ack (the backend
  // answers it); an event a rule handles and the policy forwards goes there
  // too, without the ack (the rule answers it).
  static std::shared_ptr<RelayRules> Install(sio::Namespace& nsp, NamespacePolicy policy,
                                             ForwardFn forward = nullptr);

  const NamespacePolicy& policy() const { return policy_; }

  // Counters (all shards).
  uint64_t ignored_events() const { return ignored_.load(std::memory_order_relaxed); }
  uint64_t handled_events() const { return handled_.load(std::memory_order_relaxed); }
  uint64_t rejected_events() const { return rejected_.load(std::memory_order_relaxed); }
  // Events the namespace's allowedEvents refuses.
  uint64_t refused_events() const { return refused_.load(std::memory_order_relaxed); }
  // Events handed to backends.
  uint64_t forwarded_events() const { return forwarded_.load(std::memory_order_relaxed); }

  RelayRules(sio::Namespace& nsp, NamespacePolicy policy, ForwardFn forward);

 private:
  // What a rule's templates read, worked out once so an event whose
  // arguments no template needs is never parsed.
  struct Shortcuts {
    bool target_is_sender = false;  // target "$socket.id"
    bool ack_is_first_arg = false;  // ack "$": the first argument as received
    bool reads_clock = true;        // some template may read $now
  };
  void Handle(const Rule& rule, const Shortcuts& shortcuts, const sio::SocketPtr& socket,
              std::string_view event, sio::EventArgs& args, const sio::Ack& ack);
  void Ignore(const sio::SocketPtr& socket, std::string_view event, sio::EventArgs& args,
              sio::Ack ack);
  bool Forwards(std::string_view event) const;
  void LeaveAll(const sio::Socket& socket);
  bool IsSocketId(std::string_view id) const;
  // Whether the socket's token lists `room` in the policy's rooms claim
  // (true without one).
  bool RoomClaimed(const sio::Socket& socket, std::string_view room) const;
  bool LooksLikeClusterSocketId(std::string_view id) const;

  sio::Namespace& nsp_;
  const NamespacePolicy policy_;
  const ForwardFn forward_;

  mutable std::mutex mu_;
  // Connected sockets by a 64-bit hash of their id (with a count, for two
  // ids of one hash): 16 bytes a socket instead of a string set's ~100. A
  // room name whose hash equals a socket's is refused like a socket id
  // (a chance of 2^-64 per name).
  absl::flat_hash_map<uint64_t, uint32_t> socket_ids_;  // guarded by mu_
  static uint64_t IdHash(std::string_view id);

  std::atomic<uint64_t> ignored_{0};
  std::atomic<uint64_t> handled_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> forwarded_{0};
};

}  // namespace switchboard::policy
