#pragma once

// The `switchboard` JSON configuration: listener, engine options and, per
// namespace, the room policy and the declarative relay rules (see CONFIG.md).
// Everything here is pure: parsing and template evaluation need no I/O and no
// edge library, so tests link it alone.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "edge/engineio/options.h"
#include "edge/http/options.h"
#include "edge/socketio/limits.h"

namespace switchboard::services {

using Json = nlohmann::ordered_json;

// Everything a template or a reference can read while a rule runs.
struct RuleContext {
  const Json* args = nullptr;     // the event's arguments (a JSON array)
  std::string_view socket_id;     // $socket.id
  std::string_view user_id;       // $socket.userId ("" = anonymous: absent)
  const Json* claims = nullptr;   // $socket.claims.NAME (the claims kept on the socket)
  std::string_view event;         // $event
  std::string_view nsp;           // $nsp
  std::string_view room;          // $room   (join / leave rules)
  std::string_view error;         // $error  (errorAck)
  int64_t now_ms = 0;             // $now    (ms since the Unix epoch)
};

// Which variables a template may use; checked at load time.
enum TemplateVars : unsigned {
  kVarsBase = 0,        // $, $.path, $args, $socket.id/.userId/.claims, $now, $event, $nsp
  kVarRoom = 1u << 0,   // $room
  kVarError = 1u << 1,  // $error
};

// A JSON value in which strings starting with '$' are references:
//   "$"            the first argument          "$.a.b" / "$.list.0"  a field of it
//   "$args"        all arguments (array)       "$args.1.name"        a field of one
//   "$socket.id"   the sender's socket id      "$now"  server time, ms since epoch
//   "$socket.userId"  its user id              "$socket.claims.name"  a claim kept on it
//   "$event" "$nsp" "$room" "$error"           "$$x"   the literal string "$x"
//   "$.room|$"     alternatives: the first that is present and not null
// In an object the key "..." spreads an object value into the result (later
// keys override). A reference to something absent is dropped from objects,
// becomes null in arrays, and leaves the whole value absent at top level.
class Template {
 public:
  // `path` names the spec in error messages.
  static absl::StatusOr<Template> Parse(const Json& spec, std::string_view path,
                                        unsigned vars = kVarsBase);
  // The literal `value` (no references).
  static Template Literal(Json value);

  // The evaluated value, or a discarded Json (is_discarded()) when absent.
  // InvalidArgument when "..." meets a value that is not an object.
  absl::StatusOr<Json> Evaluate(const RuleContext& ctx) const;
  // Copy of the spec as written.
  const Json& spec() const { return spec_; }

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  Json spec_;
};

enum class RuleAction { kRelay, kJoin, kLeave };
enum class TargetKind { kNamespace, kRoom, kSocket };
enum class ValueType { kAny, kString, kNumber, kInteger, kBoolean, kObject, kArray };

std::string_view ToString(RuleAction action);
std::string_view ToString(ValueType type);

// "require": {"$.room": "string"} — the reference must be present, non-null,
// and of that type, or the rule answers with an error.
struct Requirement {
  std::string ref;  // as written, e.g. "$.room"
  Template value;
  ValueType type = ValueType::kAny;
};

struct Notify {
  std::string event;
  Template payload;           // one argument
  bool except_sender = true;  // the other members only
};

struct Rule {
  std::string event;  // client event name this rule handles
  RuleAction action = RuleAction::kRelay;
  std::vector<Requirement> require;

  // relay
  TargetKind target = TargetKind::kNamespace;
  std::optional<Template> target_value;  // room / socket id (kRoom, kSocket)
  bool except_sender = false;
  bool require_member = false;  // kRoom: the sender must be in that room
  std::string emit;             // event name sent out (default: `event`)
  std::optional<Template> payload;  // nullopt: forward the arguments as-is
  bool is_volatile = false;

  // join / leave
  std::optional<Template> room;
  std::optional<Notify> notify;

  // Answer to a client ack request. nullopt: never answered.
  std::optional<Template> ack;
  Template error_ack;
};

// Client authentication of a namespace: JWT from the CONNECT auth payload
// (`auth.token`) and, when enabled, the handshake's `Authorization: Bearer`
// header or a query parameter. The config only names the keys; loading them
// (files, environment) is services/client_auth's job.
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

// "forward": client events to backends (cluster::Forwarder).
struct ForwardSpec {
  // nullopt ("*"): every client event; else these names.
  std::optional<std::vector<std::string>> events;
  // How long a client's ack waits for a backend's answer.
  std::chrono::milliseconds ack_timeout{10'000};
  // Handshake headers passed to backends, lower-case.
  std::vector<std::string> headers;

  bool Forwards(std::string_view event) const;
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
  std::optional<ForwardSpec> forward;
  // Set: the backend decides at every CONNECT.
  std::optional<ConnectHookSpec> connect_hook;

  bool EventAllowed(std::string_view event) const;

  // Room name check against room_regex (and a hard length bound).
  bool RoomNameAllowed(std::string_view room) const;
};

// Room names longer than this are rejected before the pattern is tried.
inline constexpr size_t kMaxRoomNameBytes = 256;

// "page": a web page (and the socket.io-client browser bundle it loads) served by the edge's
// HTTP server at fixed paths. Off unless configured.
struct PageConfig {
  std::string path = "/";                          // URL path of the page
  std::string file;                                // the page's HTML file
  std::string client_path = "/socket.io.min.js";   // URL path of the bundle
  std::string client_file;                         // the bundle (socket.io.min.js)
};

struct Config {
  std::string host = "127.0.0.1";
  uint16_t port = 3000;
  unsigned threads = 0;  // 0: one per core
  std::string log_level = "info";
  std::string path = "/socket.io/";
  eio::Options engine;
  std::chrono::milliseconds connect_timeout{45000};
  // "limits" (also engine.max_connections / handshake_rate above).
  sio::ServerLimits socket_limits;
  sio::DecoderLimits decoder;   // max_attachment_bytes 0: maxHttpBufferSize
  edge::HttpOptions http;       // its host / port unused: `host` / `port` above
  // limits.maxPendingAcks: client acks of forwarded events waiting for a
  // backend at once on this edge.
  size_t max_pending_acks = 10'000;
  std::vector<NamespacePolicy> namespaces;  // in file order
  // Relative files are relative to the config file's folder (LoadConfig resolves them).
  std::optional<PageConfig> page;
};

// "HOST:PORT", "[v6addr]:PORT"; port 0..65535.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseListen(std::string_view text);

// One rule object; `path` prefixes error messages.
absl::StatusOr<Rule> ParseRule(const Json& spec, std::string_view path);

// A namespace policy object (the value in "namespaces").
absl::StatusOr<NamespacePolicy> ParseNamespacePolicy(std::string_view name,
                                                     const Json& spec,
                                                     std::string_view path);

// The whole file. Errors are InvalidArgument with the key path, e.g.
//   namespaces["/chat"].rules[1].target.room: unknown reference "$roomz"
// The namespace "/" is always in `namespaces` (first, with the default policy
// and no rules, when the file does not list it).
absl::StatusOr<Config> ParseConfig(std::string_view text);
absl::StatusOr<Config> LoadConfig(const std::string& file);

// Type check used by "require".
bool Matches(const Json& value, ValueType type);

int64_t NowMs();

}  // namespace switchboard::services
