#include "services/edge_policies.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace switchboard::services {

absl::StatusOr<std::unique_ptr<EdgePolicies>> EdgePolicies::Install(
    sio::Server& server, std::vector<policy::NamespacePolicy> namespaces,
    cluster::Forwarder& forwarder, const std::string& edge_id,
    const RecoveryFactory& make_recovery) {
  std::unique_ptr<EdgePolicies> policies(new EdgePolicies());
  // Token query parameters: hooks never see them (backends neither: the
  // configuration put them in every forward policy).
  const std::vector<std::string> token_query = policy::TokenQueryParameters(namespaces);
  for (policy::NamespacePolicy& ns_policy : namespaces) {
    absl::Status installed = policies->InstallOne(server, std::move(ns_policy), forwarder, edge_id,
                                                  token_query, make_recovery);
    if (!installed.ok()) return installed;
  }
  return policies;
}

EdgePolicies::~EdgePolicies() {
  for (const auto& hook : hooks_) hook->Stop();
}

absl::Status EdgePolicies::InstallOne(sio::Server& server, policy::NamespacePolicy ns_policy,
                                      cluster::Forwarder& forwarder, const std::string& edge_id,
                                      const std::vector<std::string>& token_query,
                                      const RecoveryFactory& make_recovery) {
  spdlog::info("namespace {}: {} rule(s), rooms {} (max {} per socket), {}", ns_policy.name,
               ns_policy.rules.size(), ns_policy.room_pattern, ns_policy.max_rooms_per_socket,
               ns_policy.auth ? "JWT authentication" : "public");
  sio::Namespace& nsp = server.Of(ns_policy.name);  // before `ns_policy` is moved from
  nsp.SetLimits(ns_policy.limits);
  // Standalone: the log and the session records in this process's memory;
  // a cluster's on JetStream (make_recovery).
  if (ns_policy.recovery) {
    spdlog::info("namespace {}: connection state recovery (window {} ms, log cap {} bytes{}{})",
                 ns_policy.name, ns_policy.recovery->max_disconnection_duration.count(),
                 ns_policy.recovery->max_log_bytes,
                 ns_policy.recovery->skip_middlewares ? ", middlewares skipped" : "",
                 make_recovery ? ", on JetStream" : "");
    if (!make_recovery) {
      nsp.EnableRecovery(recovery::Recovery::InMemory(*ns_policy.recovery));
    } else {
      auto made = make_recovery(ns_policy.name, *ns_policy.recovery);
      if (!made.ok()) return made.status();
      nsp.EnableRecovery(std::move(*made));
    }
  }
  if (ns_policy.auth) {
    auto authenticator = policy::ClientAuth::Create(
        *ns_policy.auth, absl::StrCat("namespaces[\"", ns_policy.name, "\"].auth"));
    if (!authenticator.ok()) return authenticator.status();
    (*authenticator)->Install(nsp);  // first: the other middlewares see the user
    authenticators_.push_back(std::move(*authenticator));
  }
  policy::RelayRules::ForwardFn forward;
  if (ns_policy.forward) {
    spdlog::info("namespace {}: forwards {} to backends", ns_policy.name,
                 ns_policy.forward->events
                     ? absl::StrCat(ns_policy.forward->events->size(), " event(s)")
                     : std::string("every event"));
    forward = [&forwarder, forward_policy = *ns_policy.forward](
                  sio::Socket& socket, std::string_view event, const policy::Json& args,
                  sio::Ack ack) {
      forwarder.Forward(socket, event, args, forward_policy, std::move(ack));
    };
  }
  std::optional<policy::ConnectHookSpec> hook_spec = ns_policy.connect_hook;
  rules_.push_back(policy::RelayRules::Install(nsp, std::move(ns_policy), std::move(forward)));
  if (!hook_spec) return absl::OkStatus();
  // After authentication and userIdFromAuth: the hook sees (and may replace)
  // the user id.
  spdlog::info("namespace {}: connect hook {} (timeout {} ms, on failure {})", nsp.name(),
               hook_spec->address, hook_spec->timeout.count(),
               hook_spec->allow_on_failure ? "allow" : "reject");
  auto hook = policy::ConnectHook::Create(*hook_spec, edge_id, token_query);
  if (!hook.ok()) {
    return absl::Status(
        hook.status().code(),
        absl::StrCat("namespaces[\"", nsp.name(), "\"].connectHook: ", hook.status().message()));
  }
  (*hook)->Install(nsp);
  hooks_.push_back(std::move(*hook));
  return absl::OkStatus();
}

uint64_t EdgePolicies::auth_accepted() const {
  uint64_t n = 0;
  for (const auto& a : authenticators_) n += a->accepted();
  return n;
}

uint64_t EdgePolicies::auth_rejected() const {
  uint64_t n = 0;
  for (const auto& a : authenticators_) n += a->rejected();
  return n;
}

uint64_t EdgePolicies::ignored_events() const {
  uint64_t n = 0;
  for (const auto& r : rules_) n += r->ignored_events();
  return n;
}

}  // namespace switchboard::services
