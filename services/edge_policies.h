#pragma once

// Every namespace's policy installed on an edge's Socket.IO server: its
// limits, JWT authentication (first middleware, so the others see the user),
// its relay rules (forwarding through the edge's Forwarder), the connect hook
// (last middleware).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/forwarder.h"
#include "edge/recovery/recovery.h"
#include "edge/socketio/server.h"
#include "policy/client_auth.h"
#include "policy/connect_hook.h"
#include "policy/namespace_policy.h"
#include "policy/relay_rules.h"

namespace switchboard::services {

class EdgePolicies {
 public:
  // Call before the server serves. `server` and `forwarder` must outlive
  // every event (the runtime stops first). Errors name the key, e.g.
  // namespaces["/chat"].auth: ...
  // A namespace's connection state recovery; empty: in this process's
  // memory (standalone).
  using RecoveryFactory = std::function<absl::StatusOr<std::unique_ptr<recovery::Recovery>>(
      const std::string& nsp, const recovery::Options& options)>;
  static absl::StatusOr<std::unique_ptr<EdgePolicies>> Install(
      sio::Server& server, std::vector<policy::NamespacePolicy> namespaces,
      cluster::Forwarder& forwarder, const std::string& edge_id,
      const RecoveryFactory& make_recovery = nullptr);
  // Late connect hook answers are ignored from now on.
  ~EdgePolicies();
  EdgePolicies(const EdgePolicies&) = delete;
  EdgePolicies& operator=(const EdgePolicies&) = delete;

  // Client authentications, all namespaces.
  uint64_t auth_accepted() const;
  uint64_t auth_rejected() const;
  // Client events no rule handled.
  uint64_t ignored_events() const;

 private:
  EdgePolicies() = default;
  absl::Status InstallOne(sio::Server& server, policy::NamespacePolicy ns_policy,
                          cluster::Forwarder& forwarder, const std::string& edge_id,
                          const std::vector<std::string>& token_query,
                          const RecoveryFactory& make_recovery);

  std::vector<std::shared_ptr<policy::ClientAuth>> authenticators_;
  std::vector<std::shared_ptr<policy::RelayRules>> rules_;
  std::vector<std::shared_ptr<policy::ConnectHook>> hooks_;
};

}  // namespace switchboard::services
