#include "services/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "policy/json_reader.h"
#include "policy/rule.h"

namespace switchboard::services {

using policy::AuthKeySpec;
using policy::AuthPolicy;
using policy::ConnectHookSpec;
using policy::HandshakeHeadersRead;
using policy::NamespacePolicy;
using policy::ParseEventName;
using policy::ParseRule;
using policy::Rule;
using policy::TokenQueryParameters;
using policy::TokenSource;
using policy::read::Cat;
using policy::read::CheckKeys;
using policy::read::Child;
using policy::read::Error;
using policy::read::GetBool;
using policy::read::GetMs;
using policy::read::GetNumber;
using policy::read::GetString;
using policy::read::GetStringList;
using policy::read::GetUint;
using policy::read::Index;
using policy::read::TypeError;

// --------------------------------------------------------------- limits ---

namespace {

// "perSecond" (0: no limit) and "burst" of a token bucket.
absl::Status ParseRate(const Json& spec, std::string_view path, eio::RateOptions& rate) {
  if (auto it = spec.find("perSecond"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(rate.per_second, GetNumber(*it, Child(path, "perSecond"), 0, 1000000));
  }
  if (auto it = spec.find("burst"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(rate.burst, GetNumber(*it, Child(path, "burst"), 1, 10000000));
  }
  return absl::OkStatus();
}

// The namespace policy's connectionStateRecovery (the reference server's
// option, plus maxLogBytes).
absl::StatusOr<recovery::Options> ParseRecovery(const Json& spec, std::string_view path) {
  if (!spec.is_object()) {
    return TypeError(path, "an object {maxDisconnectionDuration, skipMiddlewares, maxLogBytes}",
                     spec);
  }
  SB_RETURN_IF_ERROR(
      CheckKeys(spec, path, {"maxDisconnectionDuration", "skipMiddlewares", "maxLogBytes"}));
  recovery::Options options;
  if (auto it = spec.find("maxDisconnectionDuration"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(options.max_disconnection_duration,
                        GetMs(*it, Child(path, "maxDisconnectionDuration")));
    if (options.max_disconnection_duration.count() <= 0) {
      return Error(Child(path, "maxDisconnectionDuration"), "must be more than 0");
    }
  }
  if (auto it = spec.find("skipMiddlewares"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(options.skip_middlewares, GetBool(*it, Child(path, "skipMiddlewares")));
  }
  if (auto it = spec.find("maxLogBytes"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(options.max_log_bytes,
                        GetUint(*it, Child(path, "maxLogBytes"), 1024, uint64_t{1} << 40));
  }
  return options;
}

// The namespace policy's maxSocketsPerUser and eventRate.
absl::Status ParseNamespaceLimits(const Json& spec, std::string_view path,
                                  sio::NamespaceLimits& limits) {
  if (auto it = spec.find("maxSocketsPerUser"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(limits.max_sockets_per_user,
                        GetUint(*it, Child(path, "maxSocketsPerUser"), 0, 1000000));
  }
  if (auto it = spec.find("eventRate"); it != spec.end()) {
    std::string rpath = Child(path, "eventRate");
    if (!it->is_object()) return TypeError(rpath, "an object {perSecond, burst, ...}", *it);
    SB_RETURN_IF_ERROR(CheckKeys(*it, rpath, {"perSecond", "burst", "floodDrops", "floodWindow"}));
    sio::EventRateLimits& rate = limits.event_rate;
    SB_RETURN_IF_ERROR(ParseRate(*it, rpath, rate.rate));
    // Default: ten bursts' worth of dropped events.
    rate.flood_drops = static_cast<uint64_t>(std::ceil(rate.rate.burst * 10));
    if (auto f = it->find("floodDrops"); f != it->end()) {
      SB_ASSIGN_OR_RETURN(rate.flood_drops, GetUint(*f, Child(rpath, "floodDrops"), 0, 1000000000));
    }
    if (auto f = it->find("floodWindow"); f != it->end()) {
      SB_ASSIGN_OR_RETURN(rate.flood_window, GetMs(*f, Child(rpath, "floodWindow")));
    }
  }
  return absl::OkStatus();
}

// The top-level "limits" object.
absl::Status ParseLimits(const Json& spec, std::string_view path, Config& config) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(CheckKeys(spec, path,
                               {"maxConnections", "maxSockets", "maxNamespacesPerConnection",
                                "maxRoomsPerSocket", "handshakeRate", "connectRate", "maxJsonDepth",
                                "maxAttachments", "maxAttachmentBytes", "http", "maxPendingAcks"}));
  for (const auto& [key, value] : spec.items()) {
    std::string kpath = Child(path, key);
    if (key == "maxConnections") {
      SB_ASSIGN_OR_RETURN(config.engine.max_connections, GetUint(value, kpath, 0, 100000000));
    } else if (key == "maxSockets") {
      SB_ASSIGN_OR_RETURN(config.socket_limits.max_sockets, GetUint(value, kpath, 0, 100000000));
    } else if (key == "maxNamespacesPerConnection") {
      SB_ASSIGN_OR_RETURN(config.socket_limits.max_namespaces_per_connection,
                          GetUint(value, kpath, 0, 10000));
    } else if (key == "maxRoomsPerSocket") {
      SB_ASSIGN_OR_RETURN(config.socket_limits.max_rooms_per_socket,
                          GetUint(value, kpath, 0, 1000000));
    } else if (key == "maxJsonDepth") {
      SB_ASSIGN_OR_RETURN(config.decoder.max_json_depth, GetUint(value, kpath, 1, 256));
    } else if (key == "maxAttachments") {
      SB_ASSIGN_OR_RETURN(config.decoder.max_attachments, GetUint(value, kpath, 0, 10000));
    } else if (key == "maxAttachmentBytes") {
      SB_ASSIGN_OR_RETURN(config.decoder.max_attachment_bytes,
                          GetUint(value, kpath, 0, 1ull << 32));
    } else if (key == "maxPendingAcks") {
      SB_ASSIGN_OR_RETURN(config.max_pending_acks, GetUint(value, kpath, 1, 10000000));
    } else if (key == "handshakeRate") {
      if (!value.is_object()) return TypeError(kpath, "an object {perSecond, burst, ...}", value);
      SB_RETURN_IF_ERROR(CheckKeys(value, kpath, {"perSecond", "burst", "maxTrackedAddresses"}));
      auto& handshake = config.engine.handshake_rate;
      SB_RETURN_IF_ERROR(ParseRate(value, kpath, handshake.rate));
      if (auto it = value.find("maxTrackedAddresses"); it != value.end()) {
        SB_ASSIGN_OR_RETURN(handshake.max_tracked_addresses,
                            GetUint(*it, Child(kpath, "maxTrackedAddresses"), 1, 10000000));
      }
    } else if (key == "connectRate") {
      if (!value.is_object()) return TypeError(kpath, "an object {perSecond, burst}", value);
      SB_RETURN_IF_ERROR(CheckKeys(value, kpath, {"perSecond", "burst"}));
      SB_RETURN_IF_ERROR(ParseRate(value, kpath, config.socket_limits.connect_rate));
    } else if (key == "http") {
      if (!value.is_object()) return TypeError(kpath, "an object", value);
      SB_RETURN_IF_ERROR(CheckKeys(value, kpath,
                                   {"maxHeaderBytes", "headersTimeout", "bodyTimeout",
                                    "idleTimeout", "writeTimeout", "maxPendingConnections"}));
      edge::HttpOptions& http = config.http;
      for (const auto& [hkey, hvalue] : value.items()) {
        std::string hpath = Child(kpath, hkey);
        if (hkey == "maxHeaderBytes") {
          SB_ASSIGN_OR_RETURN(http.max_header_bytes, GetUint(hvalue, hpath, 1024, 1u << 20));
        } else if (hkey == "headersTimeout") {
          SB_ASSIGN_OR_RETURN(http.headers_timeout, GetMs(hvalue, hpath));
        } else if (hkey == "bodyTimeout") {
          SB_ASSIGN_OR_RETURN(http.body_timeout, GetMs(hvalue, hpath));
        } else if (hkey == "idleTimeout") {
          SB_ASSIGN_OR_RETURN(http.idle_timeout, GetMs(hvalue, hpath));
        } else if (hkey == "writeTimeout") {
          SB_ASSIGN_OR_RETURN(http.write_timeout, GetMs(hvalue, hpath));
        } else if (hkey == "maxPendingConnections") {
          SB_ASSIGN_OR_RETURN(http.max_pending_connections, GetUint(hvalue, hpath, 0, 100000000));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ----------------------------------------------------------- namespaces ---

namespace {

absl::StatusOr<AuthKeySpec> ParseAuthKey(const Json& spec, std::string_view path) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(CheckKeys(
      spec, path, {"kid", "algorithms", "secretEnv", "secretFile", "publicKeyFile", "jwksFile"}));
  AuthKeySpec key;
  if (auto it = spec.find("kid"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(key.kid, GetString(*it, Child(path, "kid")));
  }
  if (auto it = spec.find("algorithms"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(key.algorithms, GetStringList(*it, Child(path, "algorithms")));
  }
  for (const auto& alg : key.algorithms) {
    static constexpr std::string_view kKnown[] = {"HS256", "HS384", "HS512", "RS256", "ES256"};
    if (std::find(std::begin(kKnown), std::end(kKnown), alg) == std::end(kKnown)) {
      return Error(Child(path, "algorithms"),
                   Cat("unknown algorithm \"", alg, "\" (HS256, HS384, HS512, RS256, ES256)"));
    }
  }
  int sources = 0;
  auto take = [&](const char* name, std::string& out) -> absl::Status {
    auto it = spec.find(name);
    if (it == spec.end()) return absl::OkStatus();
    ++sources;
    auto value = GetString(*it, Child(path, name));
    if (!value.ok()) return value.status();
    out = std::move(*value);
    return absl::OkStatus();
  };
  SB_RETURN_IF_ERROR(take("secretEnv", key.secret_env));
  SB_RETURN_IF_ERROR(take("secretFile", key.secret_file));
  SB_RETURN_IF_ERROR(take("publicKeyFile", key.public_key_file));
  SB_RETURN_IF_ERROR(take("jwksFile", key.jwks_file));
  if (sources != 1) {
    return Error(path, "needs exactly one of secretEnv, secretFile, publicKeyFile, jwksFile");
  }
  if (key.algorithms.empty() && key.jwks_file.empty()) {
    return Error(path, "needs \"algorithms\" (an allow-list, e.g. [\"HS256\"])");
  }
  return key;
}

absl::StatusOr<AuthPolicy> ParseAuthPolicy(const Json& spec, std::string_view path) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(CheckKeys(
      spec, path,
      {"keys", "issuer", "audience", "leewaySeconds", "tokenFrom", "queryParameter", "claims"}));
  AuthPolicy auth;
  auto keys = spec.find("keys");
  if (keys == spec.end() || !keys->is_array() || keys->empty()) {
    return Error(Child(path, "keys"), "needs a non-empty array of keys");
  }
  for (size_t i = 0; i < keys->size(); ++i) {
    SB_ASSIGN_OR_RETURN(AuthKeySpec key, ParseAuthKey((*keys)[i], Index(Child(path, "keys"), i)));
    auth.keys.push_back(std::move(key));
  }
  if (auto it = spec.find("issuer"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(auth.issuer, GetString(*it, Child(path, "issuer")));
  }
  if (auto it = spec.find("audience"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(auth.audience, GetString(*it, Child(path, "audience")));
  }
  if (auto it = spec.find("leewaySeconds"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(auth.leeway_seconds, GetUint(*it, Child(path, "leewaySeconds"), 0, 600));
  }
  if (auto it = spec.find("tokenFrom"); it != spec.end()) {
    std::string tpath = Child(path, "tokenFrom");
    SB_ASSIGN_OR_RETURN(std::vector<std::string> names, GetStringList(*it, tpath));
    if (names.empty()) return Error(tpath, "needs at least one of auth, header, query");
    auth.token_from.clear();
    for (const auto& name : names) {
      if (name == "auth") {
        auth.token_from.push_back(TokenSource::kAuth);
      } else if (name == "header") {
        auth.token_from.push_back(TokenSource::kHeader);
      } else if (name == "query") {
        auth.token_from.push_back(TokenSource::kQuery);
      } else {
        return Error(tpath, Cat("unknown token source \"", name, "\" (auth, header, query)"));
      }
    }
  }
  if (auto it = spec.find("queryParameter"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(auth.query_parameter, GetString(*it, Child(path, "queryParameter")));
  }
  if (auto it = spec.find("claims"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(auth.claims, GetStringList(*it, Child(path, "claims")));
  }
  return auth;
}

absl::StatusOr<std::vector<std::string>> GetHeaderNames(const Json& v, std::string_view path) {
  SB_ASSIGN_OR_RETURN(std::vector<std::string> names, GetStringList(v, path));
  for (std::string& name : names) {
    if (name.empty()) return Error(path, "a header name must not be empty");
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return names;
}

absl::StatusOr<cluster::ForwardPolicy> ParseForward(const Json& spec, std::string_view path) {
  if (!spec.is_object()) return TypeError(path, "an object {events, ackTimeout, headers}", spec);
  SB_RETURN_IF_ERROR(CheckKeys(spec, path, {"events", "ackTimeout", "headers"}));
  cluster::ForwardPolicy forward;
  if (auto it = spec.find("events"); it != spec.end()) {
    std::string epath = Child(path, "events");
    if (it->is_string() && *it == "*") {
      forward.events.reset();
    } else {
      SB_ASSIGN_OR_RETURN(forward.events, GetStringList(*it, epath));
      for (size_t i = 0; i < forward.events->size(); ++i) {
        SB_ASSIGN_OR_RETURN(std::string checked,
                            ParseEventName(Json((*forward.events)[i]), Index(epath, i)));
        (void)checked;
      }
    }
  }
  if (auto it = spec.find("ackTimeout"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(forward.ack_timeout, GetMs(*it, Child(path, "ackTimeout")));
  }
  if (auto it = spec.find("headers"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(forward.headers, GetHeaderNames(*it, Child(path, "headers")));
  }
  return forward;
}

absl::StatusOr<ConnectHookSpec> ParseConnectHook(const Json& spec, std::string_view path) {
  if (!spec.is_object()) return TypeError(path, "an object {address, timeout, ...}", spec);
  SB_RETURN_IF_ERROR(
      CheckKeys(spec, path, {"address", "timeout", "onFailure", "failureMessage", "headers"}));
  ConnectHookSpec hook;
  auto address = spec.find("address");
  if (address == spec.end()) return Error(Child(path, "address"), "required");
  SB_ASSIGN_OR_RETURN(hook.address, GetString(*address, Child(path, "address")));
  if (auto listen = ParseListen(hook.address); !listen.ok()) {
    return Error(Child(path, "address"), std::string(listen.status().message()));
  }
  if (auto it = spec.find("timeout"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(hook.timeout, GetMs(*it, Child(path, "timeout")));
  }
  if (auto it = spec.find("onFailure"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(std::string verdict, GetString(*it, Child(path, "onFailure")));
    if (verdict != "allow" && verdict != "reject") {
      return Error(Child(path, "onFailure"),
                   Cat("expected \"allow\" or \"reject\", got \"", verdict, "\""));
    }
    hook.allow_on_failure = verdict == "allow";
  }
  if (auto it = spec.find("failureMessage"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(hook.failure_message, GetString(*it, Child(path, "failureMessage")));
  }
  if (auto it = spec.find("headers"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(hook.headers, GetHeaderNames(*it, Child(path, "headers")));
  }
  return hook;
}

}  // namespace

absl::StatusOr<NamespacePolicy> ParseNamespacePolicy(std::string_view name, const Json& spec,
                                                     std::string_view path) {
  NamespacePolicy policy;
  policy.name = std::string(name);
  if (name.empty() || name[0] != '/') return Error(path, "a namespace name starts with '/'");
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(CheckKeys(spec, path,
                               {"rules", "roomPattern", "maxRoomsPerSocket", "userIdFromAuth",
                                "auth", "allowedEvents", "roomsClaim", "maxSocketsPerUser",
                                "eventRate", "forward", "connectHook", "connectionStateRecovery"}));
  if (auto it = spec.find("connectionStateRecovery"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(policy.recovery,
                        ParseRecovery(*it, Child(path, "connectionStateRecovery")));
  }
  if (auto it = spec.find("forward"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(policy.forward, ParseForward(*it, Child(path, "forward")));
  }
  if (auto it = spec.find("connectHook"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(policy.connect_hook, ParseConnectHook(*it, Child(path, "connectHook")));
  }
  if (auto it = spec.find("auth"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(policy.auth, ParseAuthPolicy(*it, Child(path, "auth")));
  }
  if (auto it = spec.find("allowedEvents"); it != spec.end()) {
    std::string epath = Child(path, "allowedEvents");
    if (it->is_string() && *it == "*") {
      policy.allowed_events.reset();
    } else {
      SB_ASSIGN_OR_RETURN(policy.allowed_events, GetStringList(*it, epath));
    }
  }
  if (auto it = spec.find("roomsClaim"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(policy.rooms_claim, GetString(*it, Child(path, "roomsClaim")));
    if (!policy.auth) {
      return Error(Child(path, "roomsClaim"), "needs \"auth\": the claim comes from the token");
    }
    auto& kept = policy.auth->claims;  // the check reads it from the socket
    if (std::find(kept.begin(), kept.end(), policy.rooms_claim) == kept.end()) {
      kept.push_back(policy.rooms_claim);
    }
  }
  if (auto it = spec.find("userIdFromAuth"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(policy.user_id_from_auth, GetString(*it, Child(path, "userIdFromAuth")));
    if (policy.auth) {
      return Error(Child(path, "userIdFromAuth"),
                   "not with \"auth\": the token's sub is the user id");
    }
  }

  if (auto it = spec.find("roomPattern"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(policy.room_pattern, GetString(*it, Child(path, "roomPattern")));
  }
  try {
    policy.room_regex = std::make_shared<const std::regex>(
        policy.room_pattern, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error& e) {
    return Error(Child(path, "roomPattern"),
                 Cat("invalid regular expression \"", policy.room_pattern, "\": ", e.what()));
  }
  if (auto it = spec.find("maxRoomsPerSocket"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(policy.max_rooms_per_socket,
                        GetUint(*it, Child(path, "maxRoomsPerSocket"), 0, 100000));
  }
  SB_RETURN_IF_ERROR(ParseNamespaceLimits(spec, path, policy.limits));
  if (auto it = spec.find("rules"); it != spec.end()) {
    std::string rpath = Child(path, "rules");
    if (!it->is_array()) return TypeError(rpath, "an array of rules", *it);
    std::set<std::string> seen;
    for (size_t i = 0; i < it->size(); ++i) {
      std::string ipath = Index(rpath, i);
      SB_ASSIGN_OR_RETURN(Rule rule, ParseRule((*it)[i], ipath));
      if (!seen.insert(rule.event).second) {
        return Error(Child(ipath, "event"),
                     Cat("another rule of this namespace already handles \"", rule.event, "\""));
      }
      policy.rules.push_back(std::move(rule));
    }
  }
  return policy;
}

// -------------------------------------------------------------- listen ---

absl::StatusOr<std::pair<std::string, uint16_t>> ParseListen(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        Cat("invalid listen address \"", text, "\": ", why, " (expected HOST:PORT)"));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad("unbalanced brackets");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("an IPv6 address goes in brackets, [::1]:3000");
  }
  if (host.empty()) return bad("empty host");
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("port is not a number");
  }
  unsigned long p = std::stoul(std::string(port));
  if (p > 65535) return bad("port out of range");
  return std::make_pair(std::string(host), static_cast<uint16_t>(p));
}

// ---------------------------------------------------------------- file ---

namespace {

// The top-level "page" object.
absl::Status ParsePage(const Json& spec, std::string_view path, Config& config) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(CheckKeys(spec, path, {"path", "file", "clientPath", "clientFile"}));
  PageConfig page;
  auto url_path = [&](const char* key, std::string& out) -> absl::Status {
    auto it = spec.find(key);
    if (it == spec.end()) return absl::OkStatus();
    std::string where = Cat(path, ".", key);
    SB_ASSIGN_OR_RETURN(out, GetString(*it, where));
    if (out[0] != '/' || out.find_first_of("?#") != std::string::npos) {
      return Error(where, "must be a URL path starting with / (no query)");
    }
    return absl::OkStatus();
  };
  SB_RETURN_IF_ERROR(url_path("path", page.path));
  SB_RETURN_IF_ERROR(url_path("clientPath", page.client_path));
  for (auto [key, out] : {std::pair{"file", &page.file}, {"clientFile", &page.client_file}}) {
    auto it = spec.find(key);
    if (it == spec.end()) return Error(Cat(path, ".", key), "required");
    SB_ASSIGN_OR_RETURN(*out, GetString(*it, Cat(path, ".", key)));
  }
  if (page.path == page.client_path) return Error(Cat(path, ".clientPath"), "same as path");
  if (page.path.starts_with(config.path) || page.client_path.starts_with(config.path)) {
    return Error(path, Cat("paths must not be under engine.path ", config.path));
  }
  config.page = std::move(page);
  return absl::OkStatus();
}

// The top-level "adminUi" object (after "namespaces": its namespace must not be one of them).
absl::Status ParseAdminUi(const Json& spec, std::string_view path, Config& config) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(
      CheckKeys(spec, path,
                {"namespace", "auth", "mode", "readonly", "maxListedSockets", "uiPath", "uiDir"}));
  AdminUiConfig ui;
  if (auto it = spec.find("namespace"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(ui.nsp, GetString(*it, Cat(path, ".namespace")));
    if (ui.nsp.empty() || ui.nsp[0] != '/') {
      return Error(Cat(path, ".namespace"), "must start with /");
    }
  }
  for (const NamespacePolicy& p : config.namespaces) {
    if (p.name == ui.nsp) {
      return Error(Cat(path, ".namespace"), Cat("\"", ui.nsp, "\" is also namespaces[\"", p.name,
                                                "\"]: the Admin UI needs a namespace of its own"));
    }
  }
  auto auth = spec.find("auth");
  if (auth == spec.end()) {
    return Error(Cat(path, ".auth"),
                 "required: {\"username\", \"passwordHash\"} or false (no login)");
  }
  if (auth->is_boolean() && !auth->get<bool>()) {
    ui.auth = false;
  } else {
    const std::string where = Cat(path, ".auth");
    if (!auth->is_object()) return TypeError(where, "an object or false", *auth);
    SB_RETURN_IF_ERROR(CheckKeys(*auth, where, {"username", "passwordHash"}));
    for (auto [key, out] :
         {std::pair{"username", &ui.username}, {"passwordHash", &ui.password_hash}}) {
      auto it = auth->find(key);
      if (it == auth->end()) return Error(Cat(where, ".", key), "required");
      SB_ASSIGN_OR_RETURN(*out, GetString(*it, Cat(where, ".", key)));
    }
    // "$2b$10$" + 22 characters of salt + 31 of hash, bcrypt's own base64.
    static const std::regex kBcrypt(R"(^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$)");
    if (!std::regex_match(ui.password_hash, kBcrypt)) {
      return Error(Cat(where, ".passwordHash"),
                   "must be a bcrypt hash ($2b$10$ and 53 characters): make one with "
                   "`switchboard hash-password` (reads the password on stdin)");
    }
  }
  if (auto it = spec.find("mode"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(std::string mode, GetString(*it, Cat(path, ".mode")));
    if (mode != "development" && mode != "production") {
      return Error(Cat(path, ".mode"),
                   Cat("unknown mode \"", mode, "\" (development, production)"));
    }
    ui.development = mode == "development";
  }
  if (auto it = spec.find("readonly"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(ui.readonly, GetBool(*it, Cat(path, ".readonly")));
  }
  if (auto it = spec.find("maxListedSockets"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(ui.max_listed_sockets,
                        GetUint(*it, Cat(path, ".maxListedSockets"), 0, 100'000));
  }
  if (auto it = spec.find("uiPath"); it != spec.end()) {
    const std::string where = Cat(path, ".uiPath");
    if (it->is_boolean() && !it->get<bool>()) {
      ui.ui_path.clear();
    } else {
      SB_ASSIGN_OR_RETURN(ui.ui_path, GetString(*it, where));
      if (ui.ui_path.size() < 2 || ui.ui_path.front() != '/' || ui.ui_path.back() != '/' ||
          ui.ui_path.find_first_of("?#") != std::string::npos) {
        return Error(where, "must be a URL path that starts and ends with / (no query), or false");
      }
      if (ui.ui_path.starts_with(config.path)) {
        return Error(where, Cat("must not be under engine.path ", config.path));
      }
    }
  }
  if (auto it = spec.find("uiDir"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(ui.ui_dir, GetString(*it, Cat(path, ".uiDir")));
  }
  config.admin_ui = std::move(ui);
  return absl::OkStatus();
}

absl::Status ParseEngine(const Json& spec, std::string_view path, Config& config) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(
      CheckKeys(spec, path,
                {"path", "pingInterval", "pingTimeout", "upgradeTimeout", "maxHttpBufferSize",
                 "connectTimeout", "transports", "allowUpgrades", "cors", "maxSendQueueBytes",
                 "volatileDropBytes"}));
  eio::Options& e = config.engine;
  for (const auto& [key, value] : spec.items()) {
    std::string kpath = Child(path, key);
    if (key == "path") {
      SB_ASSIGN_OR_RETURN(config.path, GetString(value, kpath));
      if (config.path[0] != '/') return Error(kpath, "must start with '/'");
      if (config.path.back() != '/') config.path += '/';
    } else if (key == "pingInterval") {
      SB_ASSIGN_OR_RETURN(e.ping_interval, GetMs(value, kpath));
    } else if (key == "pingTimeout") {
      SB_ASSIGN_OR_RETURN(e.ping_timeout, GetMs(value, kpath));
    } else if (key == "upgradeTimeout") {
      SB_ASSIGN_OR_RETURN(e.upgrade_timeout, GetMs(value, kpath));
    } else if (key == "connectTimeout") {
      SB_ASSIGN_OR_RETURN(config.connect_timeout, GetMs(value, kpath));
    } else if (key == "maxHttpBufferSize") {
      SB_ASSIGN_OR_RETURN(e.max_http_buffer_size, GetUint(value, kpath, 1, 1ull << 32));
    } else if (key == "maxSendQueueBytes") {
      SB_ASSIGN_OR_RETURN(e.max_send_queue_bytes, GetUint(value, kpath, 1024, 1ull << 34));
    } else if (key == "volatileDropBytes") {
      SB_ASSIGN_OR_RETURN(e.volatile_drop_bytes, GetUint(value, kpath, 0, 1ull << 34));
    } else if (key == "allowUpgrades") {
      SB_ASSIGN_OR_RETURN(e.allow_upgrades, GetBool(value, kpath));
    } else if (key == "transports") {
      if (!value.is_array() || value.empty()) {
        return TypeError(kpath, "a non-empty array of \"polling\" / \"websocket\"", value);
      }
      e.allow_polling = false;
      e.allow_websocket = false;
      for (size_t i = 0; i < value.size(); ++i) {
        std::string ipath = Index(kpath, i);
        SB_ASSIGN_OR_RETURN(std::string t, GetString(value[i], ipath));
        bool& flag = t == "polling" ? e.allow_polling : e.allow_websocket;
        if (t != "polling" && t != "websocket") {
          return Error(ipath, Cat("unknown transport \"", t, "\" (polling, websocket)"));
        }
        if (flag) return Error(ipath, Cat("duplicate transport \"", t, "\""));
        flag = true;
      }
    } else if (key == "cors") {
      if (!value.is_object()) return TypeError(kpath, "an object {origins, credentials}", value);
      SB_RETURN_IF_ERROR(CheckKeys(value, kpath, {"origins", "credentials"}));
      if (auto o = value.find("origins"); o != value.end()) {
        std::string opath = Child(kpath, "origins");
        e.cors.origins.clear();
        if (o->is_string()) {
          SB_ASSIGN_OR_RETURN(std::string s, GetString(*o, opath));
          e.cors.origins.push_back(std::move(s));
        } else if (o->is_array()) {
          for (size_t i = 0; i < o->size(); ++i) {
            SB_ASSIGN_OR_RETURN(std::string s, GetString((*o)[i], Index(opath, i)));
            e.cors.origins.push_back(std::move(s));
          }
        } else {
          return TypeError(opath, "an array of origins (or \"*\")", *o);
        }
      }
      if (auto c = value.find("credentials"); c != value.end()) {
        SB_ASSIGN_OR_RETURN(e.cors.credentials, GetBool(*c, Child(kpath, "credentials")));
      }
      if (e.cors.credentials &&
          std::find(e.cors.origins.begin(), e.cors.origins.end(), "*") != e.cors.origins.end()) {
        return Error(Child(kpath, "credentials"),
                     "cannot be true with origin \"*\" (browsers refuse it); list the origins");
      }
    }
  }
  if (!e.allow_websocket) e.allow_upgrades = false;
  return absl::OkStatus();
}

// Finds duplicate object keys while parsing (nlohmann keeps the last one
// silently), with the path where it happens.
class DuplicateKeyFinder {
 public:
  bool operator()(int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: stack_.push_back(Frame{true, {}, {}, 0}); break;
      case Json::parse_event_t::array_start: stack_.push_back(Frame{false, {}, {}, 0}); break;
      case Json::parse_event_t::key: {
        Frame& top = stack_.back();
        std::string key = parsed.get<std::string>();
        if (!top.keys.insert(key).second && error_.empty()) {
          top.key = key;
          error_ = Cat(PathHere(), ": duplicate key");
        }
        top.key = std::move(key);
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        stack_.pop_back();
        ElementDone();
        break;
      case Json::parse_event_t::value: ElementDone(); break;
    }
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  struct Frame {
    bool object;
    std::set<std::string> keys;
    std::string key;
    size_t index;
  };
  void ElementDone() {
    if (!stack_.empty() && !stack_.back().object) stack_.back().index++;
  }
  std::string PathHere() const {
    std::string path;
    for (const Frame& f : stack_) {
      path = f.object ? Child(path, f.key) : Index(path, f.index);
    }
    return path;
  }
  std::vector<Frame> stack_;
  std::string error_;
};

std::string LineColumn(std::string_view text, size_t byte) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return Cat("line ", line, ", column ", col);
}

}  // namespace

absl::StatusOr<Config> ParseConfig(std::string_view text) {
  Json root;
  DuplicateKeyFinder dups;
  try {
    root = Json::parse(text.begin(), text.end(), std::ref(dups), /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Json::parse_error& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    size_t colon = what.find(": ");
    std::string detail = colon == std::string::npos ? what : what.substr(colon + 2);
    return absl::InvalidArgumentError(
        Cat("config: invalid JSON at ", LineColumn(text, e.byte), ": ", detail));
  } catch (const Json::exception& e) {
    // E.g. out_of_range "number overflow" (1e400): no position to give.
    return absl::InvalidArgumentError(Cat("config: invalid JSON: ", e.what()));
  }
  if (!dups.error().empty()) return absl::InvalidArgumentError(dups.error());
  if (!root.is_object()) return TypeError("", "a JSON object", root);
  SB_RETURN_IF_ERROR(CheckKeys(
      root, "",
      {"listen", "threads", "logLevel", "engine", "limits", "namespaces", "page", "adminUi"}));

  Config config;
  if (auto it = root.find("listen"); it != root.end()) {
    SB_ASSIGN_OR_RETURN(std::string listen, GetString(*it, "listen"));
    auto hp = ParseListen(listen);
    if (!hp.ok()) return Error("listen", std::string(hp.status().message()));
    config.host = hp->first;
    config.port = hp->second;
  }
  if (auto it = root.find("threads"); it != root.end()) {
    SB_ASSIGN_OR_RETURN(config.threads, GetUint(*it, "threads", 0, 1024));
  }
  if (auto it = root.find("logLevel"); it != root.end()) {
    SB_ASSIGN_OR_RETURN(config.log_level, GetString(*it, "logLevel"));
    static const std::set<std::string> kLevels = {"trace", "debug",    "info", "warn",
                                                  "error", "critical", "off"};
    if (!kLevels.count(config.log_level)) {
      return Error("logLevel", Cat("unknown level \"", config.log_level,
                                   "\" (trace, debug, info, warn, error, critical, off)"));
    }
  }
  if (auto it = root.find("engine"); it != root.end()) {
    SB_RETURN_IF_ERROR(ParseEngine(*it, "engine", config));
  }
  if (auto it = root.find("limits"); it != root.end()) {
    SB_RETURN_IF_ERROR(ParseLimits(*it, "limits", config));
  }
  if (auto it = root.find("page"); it != root.end()) {
    SB_RETURN_IF_ERROR(ParsePage(*it, "page", config));
  }
  if (auto it = root.find("namespaces"); it != root.end()) {
    if (!it->is_object()) return TypeError("namespaces", "an object {\"/name\": policy}", *it);
    for (const auto& [name, spec] : it->items()) {
      SB_ASSIGN_OR_RETURN(NamespacePolicy policy,
                          ParseNamespacePolicy(name, spec, Child("namespaces", name)));
      config.namespaces.push_back(std::move(policy));
    }
  }
  // The main namespace always exists (Socket.IO serves it whatever the
  // configuration says); unlisted, it has the default policy and no rules.
  if (std::none_of(config.namespaces.begin(), config.namespaces.end(),
                   [](const NamespacePolicy& p) { return p.name == "/"; })) {
    config.namespaces.insert(config.namespaces.begin(),
                             *ParseNamespacePolicy("/", Json::object(), "namespaces[\"/\"]"));
  }
  if (auto it = root.find("adminUi"); it != root.end()) {
    SB_RETURN_IF_ERROR(ParseAdminUi(*it, "adminUi", config));
    // The UI the edge serves connects from the edge's own origin, whatever engine.cors lists.
    config.engine.cors.allow_same_origin = !config.admin_ui->ui_path.empty();
  }
  config.engine.handshake_headers = HandshakeHeadersRead(config.namespaces);
  const std::vector<std::string> token_query = TokenQueryParameters(config.namespaces);
  for (NamespacePolicy& p : config.namespaces) {
    if (p.forward) p.forward->hidden_query = token_query;
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("cannot read config file ", file));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::DataLossError(Cat("error reading config file ", file));
  auto config = ParseConfig(buf.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(), Cat(file, ": ", config.status().message()));
  }
  if (config->admin_ui && !config->admin_ui->ui_dir.empty() &&
      std::filesystem::path(config->admin_ui->ui_dir).is_relative()) {
    config->admin_ui->ui_dir =
        (std::filesystem::path(file).parent_path() / config->admin_ui->ui_dir).string();
  }
  if (config->page) {
    const std::filesystem::path dir = std::filesystem::path(file).parent_path();
    for (std::string* f : {&config->page->file, &config->page->client_file}) {
      if (std::filesystem::path(*f).is_relative()) *f = (dir / *f).string();
    }
  }
  return config;
}

}  // namespace switchboard::services
