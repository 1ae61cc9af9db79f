#pragma once

// A namespace's policy (services/CONFIG.md, "namespaces"): who may connect
// (JWT authentication, the connect hook), which events and rooms its clients
// may use, its relay rules and what goes to backends. Plain values: the
// configuration (services/config.h) fills them, the edge's middlewares and
// handlers (policy/client_auth.h, policy/connect_hook.h, policy/relay_rules.h)
// follow them.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/forward_policy.h"
#include "edge/recovery/options.h"
#include "edge/socketio/limits.h"
#include "policy/rule.h"

namespace switchboard::policy {

// Client authentication of a namespace: JWT from the CONNECT auth payload
// (`auth.token`) and, when enabled, the handshake's `Authorization: Bearer`
// header or a query parameter. The config only names the keys; loading them
// (files, environment) is policy/client_auth's job.
struct AuthKeySpec {
  std::string kid;                      // "" = any token without a kid may use it
  std::vector<std::string> algorithms;  // e.g. {"HS256"}; required
  // Exactly one of:
  std::string secret_env;       // HMAC secret from this environment variable
  std::string secret_file;      // HMAC secret: the file's bytes (trailing newline dropped)
  std::string public_key_file;  // RSA / EC P-256 public key, PEM
  std::string jwks_file;        // JSON Web Key Set
};
enum class TokenSource { kAuth, kHeader, kQuery };
struct AuthPolicy {
  std::vector<AuthKeySpec> keys;
  std::string issuer;    // "" = not checked
  std::string audience;  // "" = not checked
  uint64_t leeway_seconds = 30;
  std::vector<TokenSource> token_from = {TokenSource::kAuth};
  std::string query_parameter = "token";
  std::vector<std::string> claims;  // kept on the socket and listed by ListSockets
};

// "connectHook": the backend gRPC service (switchboard.v1.ConnectHook) asked
// at every CONNECT.
struct ConnectHookSpec {
  std::string address;  // HOST:PORT of the backend
  std::chrono::milliseconds timeout{2'000};
  // Verdict when the backend times out, is unreachable or fails.
  bool allow_on_failure = false;
  // CONNECT_ERROR message of that failure verdict.
  std::string failure_message = "Connection hook unavailable";
  // Handshake headers passed to the hook, lower-case.
  std::vector<std::string> headers;
};

struct NamespacePolicy {
  std::string name = "/";
  std::string room_pattern = "^[A-Za-z0-9_-]{1,64}$";
  std::shared_ptr<const std::regex> room_regex;  // compiled room_pattern
  size_t max_rooms_per_socket = 50;
  // maxSocketsPerUser, eventRate.
  sio::NamespaceLimits limits;
  // Non-empty: the socket's user id is this string field of the CONNECT auth
  // payload, as the client claims it (trusted clients only; token-based
  // identity is the authentication layer's).
  std::string user_id_from_auth;
  // Set: clients need a valid token (its `sub` is the user id). Unset: the
  // namespace is public.
  std::optional<AuthPolicy> auth;
  // Client events the namespace takes at all; nullopt = every event.
  std::optional<std::vector<std::string>> allowed_events;
  // Non-empty: a room a client joins itself must be listed in this claim
  // (an array of strings) of its token.
  std::string rooms_claim;
  std::vector<Rule> rules;
  // Set: client events it names go to backends (an event a rule handles is
  // forwarded too, without its ack, which the rule answers).
  std::optional<cluster::ForwardPolicy> forward;
  // Set: the backend decides at every CONNECT.
  std::optional<ConnectHookSpec> connect_hook;
  // The reference server's connectionStateRecovery (edge/recovery);
  // nullopt: off.
  std::optional<recovery::Options> recovery;

  bool EventAllowed(std::string_view event) const;

  // Room name check against room_regex (and a hard length bound).
  bool RoomNameAllowed(std::string_view room) const;
};

// Room names longer than this are rejected before the pattern is tried.
inline constexpr size_t kMaxRoomNameBytes = 256;

// Token query parameters of every namespace that reads one: backends and
// hooks never see them (a connection's query is shared by every namespace it
// connects to).
std::vector<std::string> TokenQueryParameters(const std::vector<NamespacePolicy>& namespaces);

// The handshake headers some policy reads later (token from the Authorization
// header, headers passed to hooks and backends): the only ones a connection
// keeps.
std::vector<std::string> HandshakeHeadersRead(const std::vector<NamespacePolicy>& namespaces);

}  // namespace switchboard::policy
