#include "services/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace switchboard::services {
namespace {

using policy::NamespacePolicy;
using policy::Rule;
using policy::RuleAction;
using policy::RuleContext;
using policy::TargetKind;
using policy::Template;
using policy::TokenSource;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

// Parses `text`, expects failure, returns the message.
std::string ErrorOf(const std::string& text) {
  auto config = ParseConfig(text);
  EXPECT_FALSE(config.ok()) << "parsed: " << text;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return Message(config.status());
}

// A config with one rule in namespace "/".
std::string WithRule(const std::string& rule) {
  return R"({"namespaces": {"/": {"rules": [)" + rule + "]}}}";
}

const Rule* FindRule(const NamespacePolicy& ns, const std::string& event) {
  for (const Rule& r : ns.rules) {
    if (r.event == event) return &r;
  }
  return nullptr;
}

TEST(ConfigTest, ExampleChatConfigParses) {
  auto config = LoadConfig(std::string(SB_SOURCE_DIR) + "/examples/chat.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->host, "127.0.0.1");
  EXPECT_EQ(config->port, 3000);
  EXPECT_EQ(config->path, "/socket.io/");
  EXPECT_EQ(config->engine.ping_interval.count(), 25000);
  EXPECT_EQ(config->engine.ping_timeout.count(), 20000);
  EXPECT_EQ(config->engine.upgrade_timeout.count(), 10000);
  EXPECT_EQ(config->engine.max_http_buffer_size, 1000000u);
  EXPECT_EQ(config->connect_timeout.count(), 45000);
  EXPECT_TRUE(config->engine.allow_polling);
  EXPECT_TRUE(config->engine.allow_websocket);
  EXPECT_EQ(config->engine.cors.origins,
            (std::vector<std::string>{"http://localhost:3000", "http://127.0.0.1:3000"}));
  EXPECT_TRUE(config->engine.cors.credentials);

  ASSERT_EQ(config->namespaces.size(), 2u);
  const NamespacePolicy& root = config->namespaces[0];
  EXPECT_EQ(root.name, "/");
  EXPECT_EQ(root.max_rooms_per_socket, 50u);
  EXPECT_TRUE(root.RoomNameAllowed("lobby"));
  EXPECT_FALSE(root.RoomNameAllowed("no spaces"));
  EXPECT_FALSE(root.RoomNameAllowed(""));
  EXPECT_FALSE(root.RoomNameAllowed(std::string(65, 'a')));

  const Rule* message = FindRule(root, "message");
  ASSERT_NE(message, nullptr);
  EXPECT_EQ(message->action, RuleAction::kRelay);
  EXPECT_EQ(message->target, TargetKind::kNamespace);
  EXPECT_FALSE(message->except_sender);

  const Rule* room_message = FindRule(root, "room-message");
  ASSERT_NE(room_message, nullptr);
  EXPECT_EQ(room_message->target, TargetKind::kRoom);
  EXPECT_TRUE(room_message->require_member);
  EXPECT_TRUE(room_message->except_sender);

  const Rule* join = FindRule(root, "join-room");
  ASSERT_NE(join, nullptr);
  EXPECT_EQ(join->action, RuleAction::kJoin);
  ASSERT_TRUE(join->notify.has_value());
  EXPECT_EQ(join->notify->event, "user-joined");

  const Rule* leave = FindRule(root, "leave-room");
  ASSERT_NE(leave, nullptr);
  EXPECT_EQ(leave->action, RuleAction::kLeave);
  EXPECT_EQ(leave->notify->event, "user-left");

  const Rule* pm = FindRule(root, "private-message");
  ASSERT_NE(pm, nullptr);
  EXPECT_EQ(pm->target, TargetKind::kSocket);

  const NamespacePolicy& chat = config->namespaces[1];
  EXPECT_EQ(chat.name, "/chat");
  const Rule* send = FindRule(chat, "send-message");
  ASSERT_NE(send, nullptr);
  EXPECT_EQ(send->emit, "new-message");
}

// The example's payloads are the seed's (/work/shared/seed-socketio-recipe.txt), field for field.
TEST(ConfigTest, ExampleChatConfigSendsTheSeedsPayloads) {
  auto config = LoadConfig(std::string(SB_SOURCE_DIR) + "/examples/chat.json");
  ASSERT_TRUE(config.ok()) << config.status();
  const NamespacePolicy& root = config->namespaces[0];
  EXPECT_EQ(root.user_id_from_auth, "username");
  Json args = Json::array({Json{{"room", "lobby"}, {"to", "s2"}, {"message", "hi"}}});
  RuleContext ctx;
  ctx.args = &args;
  ctx.socket_id = "s1";
  ctx.room = "lobby";
  ctx.now_ms = 1700000000000;
  auto eval = [&](const Template& t) {
    auto v = t.Evaluate(ctx);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : Json();
  };
  // socket.to(room).emit("user-joined" / "user-left", { id: socket.id })
  EXPECT_EQ(eval(FindRule(root, "join-room")->notify->payload).dump(), R"({"id":"s1"})");
  EXPECT_EQ(eval(FindRule(root, "leave-room")->notify->payload).dump(), R"({"id":"s1"})");
  // socket.to(room).emit("room-message", { from: socket.id, message, timestamp: Date.now() })
  EXPECT_EQ(eval(*FindRule(root, "room-message")->payload).dump(),
            R"({"from":"s1","message":"hi","timestamp":1700000000000})");
  // io.to(to).emit("private-message", { from: socket.id, fromUser: socket.username, message }):
  // fromUser is left out (undefined) when the sender's name is not known.
  const Template& pm = *FindRule(root, "private-message")->payload;
  EXPECT_EQ(eval(pm).dump(), R"({"from":"s1","message":"hi"})");
  ctx.user_id = "alice";
  EXPECT_EQ(eval(pm).dump(), R"({"from":"s1","fromUser":"alice","message":"hi"})");
  Json claims = {{"username", "Alice"}};
  ctx.claims = &claims;
  EXPECT_EQ(eval(pm).dump(), R"({"from":"s1","fromUser":"Alice","message":"hi"})");
  // io.emit("message", { ...data, timestamp: Date.now() })
  EXPECT_EQ(eval(*FindRule(root, "message")->payload).dump(),
            R"({"room":"lobby","to":"s2","message":"hi","timestamp":1700000000000})");
  // chatNamespace.emit("new-message", { from: socket.id, msg }): msg is the argument as sent.
  const Template& nm = *FindRule(config->namespaces[1], "send-message")->payload;
  EXPECT_EQ(eval(nm).dump(), R"({"from":"s1","msg":{"room":"lobby","to":"s2","message":"hi"}})");
  Json text = Json::array({"hello"});
  ctx.args = &text;
  EXPECT_EQ(eval(nm).dump(), R"({"from":"s1","msg":"hello"})");
}

TEST(ConfigTest, Defaults) {
  auto config = ParseConfig("{}");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->host, "127.0.0.1");
  EXPECT_EQ(config->port, 3000);
  EXPECT_EQ(config->threads, 0u);
  EXPECT_EQ(config->path, "/socket.io/");
  EXPECT_EQ(config->engine.ping_interval.count(), 25000);
  EXPECT_EQ(config->connect_timeout.count(), 45000);
  ASSERT_EQ(config->namespaces.size(), 1u);
  EXPECT_EQ(config->namespaces[0].name, "/");
  EXPECT_TRUE(config->namespaces[0].rules.empty());
  EXPECT_EQ(config->namespaces[0].max_rooms_per_socket, 50u);
  // No policy reads a handshake header: connections keep none.
  EXPECT_EQ(config->engine.handshake_headers, std::vector<std::string>{});
}

TEST(ConfigTest, MainNamespaceAlwaysPresent) {
  auto config = ParseConfig(R"({"namespaces": {"/chat": {"maxRoomsPerSocket": 3}}})");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->namespaces.size(), 2u);
  EXPECT_EQ(config->namespaces[0].name, "/");
  EXPECT_EQ(config->namespaces[1].name, "/chat");
  EXPECT_EQ(config->namespaces[1].max_rooms_per_socket, 3u);
}

TEST(ConfigTest, EngineOptions) {
  auto config = ParseConfig(R"({
    "listen": "[::1]:0", "threads": 2,
    "engine": {"path": "/rt", "maxHttpBufferSize": 1e6, "transports": ["websocket"],
               "cors": {"origins": "*"}}})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->host, "::1");
  EXPECT_EQ(config->port, 0);
  EXPECT_EQ(config->threads, 2u);
  EXPECT_EQ(config->path, "/rt/");
  EXPECT_EQ(config->engine.max_http_buffer_size, 1000000u);
  EXPECT_FALSE(config->engine.allow_polling);
  EXPECT_TRUE(config->engine.allow_websocket);
  EXPECT_EQ(config->engine.cors.origins, std::vector<std::string>{"*"});
}

TEST(ConfigTest, UnknownKeysRejectedWithPath) {
  EXPECT_THAT(ErrorOf(R"({"lisen": "127.0.0.1:1"})"), HasSubstr("lisen: unknown key"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"pingIntervall": 1}})"),
              HasSubstr("engine.pingIntervall: unknown key"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"cors": {"origin": []}}})"),
              HasSubstr("engine.cors.origin: unknown key"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/chat": {"room_pattern": "x"}}})"),
              HasSubstr("namespaces[\"/chat\"].room_pattern: unknown key"));
  EXPECT_THAT(
      ErrorOf(WithRule(R"({"event": "a", "action": "relay", "target": {"rooom": "$.room"}})")),
      HasSubstr("namespaces[\"/\"].rules[0].target.rooom: unknown key"));
  // A key of another action.
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "join", "target": "namespace"})")),
              HasSubstr("rules[0].target: unknown key"));
}

TEST(ConfigTest, WrongTypes) {
  EXPECT_THAT(ErrorOf(R"({"engine": {"pingInterval": "25s"}})"),
              HasSubstr("engine.pingInterval: expected an integer, got string"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"pingInterval": 0}})"),
              HasSubstr("engine.pingInterval: must be between 1"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"maxHttpBufferSize": 1.5}})"),
              HasSubstr("engine.maxHttpBufferSize: expected an integer"));
  EXPECT_THAT(ErrorOf(R"({"threads": -1})"), HasSubstr("threads: must be between 0 and 1024"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"cors": {"credentials": "yes"}}})"),
              HasSubstr("engine.cors.credentials: expected a boolean, got string"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"transports": ["polling", "carrier-pigeon"]}})"),
              HasSubstr("engine.transports[1]: unknown transport"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"transports": []}})"), HasSubstr("engine.transports"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": []})"), HasSubstr("namespaces: expected an object"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"chat": {}}})"),
              HasSubstr("namespaces.chat: a namespace name starts with '/'"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"maxRoomsPerSocket": true}}})"),
              HasSubstr("namespaces[\"/\"].maxRoomsPerSocket: expected an integer, got boolean"));
  EXPECT_THAT(ErrorOf(R"([1, 2])"), HasSubstr("config: expected a JSON object, got array"));
  EXPECT_THAT(ErrorOf(R"({"logLevel": "loud"})"), HasSubstr("logLevel: unknown level"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"cors": {"origins": ["*"], "credentials": true}}})"),
              HasSubstr("engine.cors.credentials"));
}

TEST(ConfigTest, BadListen) {
  EXPECT_THAT(ErrorOf(R"({"listen": "localhost"})"), HasSubstr("listen: invalid listen address"));
  EXPECT_THAT(ErrorOf(R"({"listen": "127.0.0.1:70000"})"), HasSubstr("port out of range"));
  EXPECT_THAT(ErrorOf(R"({"listen": 3000})"), HasSubstr("listen: expected a string"));
  EXPECT_FALSE(ParseListen("::1:80").ok());
  EXPECT_FALSE(ParseListen(":80").ok());
  EXPECT_FALSE(ParseListen("host:").ok());
  EXPECT_FALSE(ParseListen("host:8x").ok());
  auto ok = ParseListen("0.0.0.0:8080");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->first, "0.0.0.0");
  EXPECT_EQ(ok->second, 8080);
}

TEST(ConfigTest, JsonSyntaxErrorsHavePosition) {
  std::string error = ErrorOf("{\n  \"listen\": \"127.0.0.1:1\",\n  \"threads\": 2,,\n}");
  EXPECT_THAT(error, HasSubstr("invalid JSON at line 3"));
  EXPECT_THAT(ErrorOf(R"({"engine": {"pingInterval": 1, "pingInterval": 2}})"),
              HasSubstr("engine.pingInterval: duplicate key"));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "event": "b", "action": "relay"})")),
              HasSubstr("namespaces[\"/\"].rules[0].event: duplicate key"));
}

TEST(ConfigTest, BadRoomPattern) {
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"roomPattern": "([a-z"}}})"),
              HasSubstr("namespaces[\"/\"].roomPattern: invalid regular expression"));
}

TEST(ConfigTest, LoadMissingFile) {
  auto config = LoadConfig("/nonexistent/switchboard.json");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
}

// ------------------------------------------------------------ rules ---

TEST(RuleValidationTest, RequiredKeys) {
  EXPECT_THAT(ErrorOf(WithRule(R"({"action": "relay"})")),
              HasSubstr("rules[0]: missing key \"event\""));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a"})")), HasSubstr("missing key \"action\""));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "teleport"})")),
              HasSubstr("rules[0].action: unknown action \"teleport\""));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "", "action": "relay"})")),
              HasSubstr("rules[0].event: must not be empty"));
  EXPECT_THAT(ErrorOf(WithRule(R"("message")")), HasSubstr("rules[0]: expected an object"));
}

TEST(RuleValidationTest, ReservedAndDuplicateEvents) {
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "disconnect", "action": "relay"})")),
              HasSubstr("rules[0].event: \"disconnect\" is a reserved"));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay", "emit": "connect"})")),
              HasSubstr("rules[0].emit: \"connect\" is a reserved"));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay"},
                                  {"event": "a", "action": "join"})")),
              HasSubstr("rules[1].event: another rule of this namespace already handles \"a\""));
}

TEST(RuleValidationTest, Targets) {
  EXPECT_THAT(ErrorOf(WithRule(
                  R"({"event": "a", "action": "relay", "target": {"room": "x", "socket": "y"}})")),
              HasSubstr("rules[0].target: exactly one of"));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay", "target": "everyone"})")),
              HasSubstr("rules[0].target: expected \"namespace\""));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay", "target": {"room": 5}})")),
              HasSubstr("rules[0].target.room: expected a string"));
  EXPECT_THAT(
      ErrorOf(WithRule(
          R"({"event": "a", "action": "relay", "target": "namespace", "requireMember": true})")),
      HasSubstr("rules[0].requireMember: only applies to a room target"));
  auto lit =
      ParseConfig(WithRule(R"({"event": "a", "action": "relay", "target": {"room": "lobby"}})"));
  ASSERT_TRUE(lit.ok()) << lit.status();
  EXPECT_EQ(lit->namespaces[0].rules[0].target, TargetKind::kRoom);
}

TEST(RuleValidationTest, References) {
  EXPECT_THAT(
      ErrorOf(WithRule(R"({"event": "a", "action": "relay", "payload": {"when": "$time"}})")),
      HasSubstr("rules[0].payload.when: unknown reference \"$time\""));
  // $room only exists for join / leave.
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay", "payload": "$room"})")),
              HasSubstr("rules[0].payload: unknown reference \"$room\""));
  EXPECT_TRUE(
      ParseConfig(WithRule(R"({"event": "a", "action": "join", "ack": {"r": "$room"}})")).ok());
  // $error only in errorAck.
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay", "ack": "$error"})")),
              HasSubstr("rules[0].ack: unknown reference \"$error\""));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay", "payload": "$.a..b"})")),
              HasSubstr("malformed reference"));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay", "payload": "$.a|b"})")),
              HasSubstr("malformed reference"));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "relay", "payload": {"...": 1}})")),
              HasSubstr("rules[0].payload[\"...\"]: \"...\" takes a reference"));
  EXPECT_THAT(
      ErrorOf(WithRule(R"({"event": "a", "action": "relay", "require": {"room": "string"}})")),
      HasSubstr("rules[0].require.room: keys are references"));
  EXPECT_THAT(
      ErrorOf(WithRule(R"({"event": "a", "action": "relay", "require": {"$.room": "text"}})")),
      HasSubstr("unknown type \"text\""));
  EXPECT_THAT(ErrorOf(WithRule(R"({"event": "a", "action": "join", "notify": {"payload": {}}})")),
              HasSubstr("rules[0].notify: missing key \"event\""));
}

TEST(RuleValidationTest, RuleDefaults) {
  auto config = ParseConfig(WithRule(R"({"event": "ping", "action": "relay"})"));
  ASSERT_TRUE(config.ok()) << config.status();
  const Rule& r = config->namespaces[0].rules[0];
  EXPECT_EQ(r.emit, "ping");
  EXPECT_EQ(r.target, TargetKind::kNamespace);
  EXPECT_FALSE(r.except_sender);
  EXPECT_FALSE(r.payload.has_value());
  ASSERT_TRUE(r.ack.has_value());
  EXPECT_EQ(r.ack->Evaluate({}).value(), (Json{{"ok", true}}));
  RuleContext ctx;
  ctx.error = "nope";
  EXPECT_EQ(r.error_ack.Evaluate(ctx).value(), (Json{{"ok", false}, {"error", "nope"}}));

  auto no_ack = ParseConfig(WithRule(R"({"event": "ping", "action": "relay", "ack": null})"));
  ASSERT_TRUE(no_ack.ok());
  EXPECT_FALSE(no_ack->namespaces[0].rules[0].ack.has_value());
}

}  // namespace
}  // namespace switchboard::services

namespace switchboard::services {
namespace {

std::string AuthConfig(const std::string& policy) {
  return R"({"namespaces": {"/secure": )" + policy + "}}";
}

TEST(AuthConfigTest, ParsesKeysSourcesAndAuthorization) {
  auto config = ParseConfig(AuthConfig(R"({
    "auth": {
      "keys": [
        {"kid": "h", "algorithms": ["HS256", "HS512"], "secretEnv": "SECRET"},
        {"algorithms": ["RS256"], "publicKeyFile": "/keys/rsa.pem"},
        {"jwksFile": "/keys/jwks.json"}
      ],
      "issuer": "https://issuer", "audience": "sb", "leewaySeconds": 10,
      "tokenFrom": ["header", "auth"], "queryParameter": "jwt", "claims": ["name"]
    },
    "allowedEvents": ["a", "b"],
    "roomsClaim": "rooms"
  })"));
  ASSERT_TRUE(config.ok()) << config.status();
  const NamespacePolicy& policy = config->namespaces.back();
  ASSERT_TRUE(policy.auth.has_value());
  ASSERT_EQ(policy.auth->keys.size(), 3u);
  EXPECT_EQ(policy.auth->keys[0].kid, "h");
  EXPECT_EQ(policy.auth->keys[0].secret_env, "SECRET");
  EXPECT_EQ(policy.auth->keys[1].public_key_file, "/keys/rsa.pem");
  EXPECT_EQ(policy.auth->keys[2].jwks_file, "/keys/jwks.json");
  EXPECT_EQ(policy.auth->issuer, "https://issuer");
  EXPECT_EQ(policy.auth->leeway_seconds, 10u);
  // The token may come in the Authorization header: connections keep it.
  EXPECT_EQ(config->engine.handshake_headers, std::vector<std::string>{"authorization"});
  EXPECT_EQ(policy.auth->token_from,
            (std::vector<TokenSource>{TokenSource::kHeader, TokenSource::kAuth}));
  EXPECT_EQ(policy.auth->query_parameter, "jwt");
  // The rooms claim is kept on the socket so that joins can be checked.
  EXPECT_EQ(policy.auth->claims, (std::vector<std::string>{"name", "rooms"}));
  EXPECT_TRUE(policy.EventAllowed("a"));
  EXPECT_FALSE(policy.EventAllowed("c"));
  EXPECT_FALSE(config->namespaces.front().auth.has_value());  // "/" stays public
  EXPECT_TRUE(config->namespaces.front().EventAllowed("anything"));
}

TEST(AuthConfigTest, MistakesAreNamed) {
  EXPECT_THAT(ErrorOf(AuthConfig(R"({"auth": {"keys": []}})")),
              HasSubstr("auth.keys: needs a non-empty array of keys"));
  EXPECT_THAT(
      ErrorOf(AuthConfig(R"({"auth": {"keys": [{"algorithms": ["none"], "secretEnv": "S"}]}})")),
      HasSubstr("unknown algorithm \"none\""));
  EXPECT_THAT(
      ErrorOf(AuthConfig(
          R"({"auth": {"keys": [{"algorithms": ["HS256"], "secretEnv": "S", "secretFile": "f"}]}})")),
      HasSubstr("needs exactly one of"));
  EXPECT_THAT(ErrorOf(AuthConfig(R"({"auth": {"keys": [{"secretEnv": "S"}]}})")),
              HasSubstr("needs \"algorithms\""));
  EXPECT_THAT(
      ErrorOf(AuthConfig(
          R"({"auth": {"keys": [{"algorithms": ["HS256"], "secretEnv": "S"}], "tokenFrom": ["cookie"]}})")),
      HasSubstr("unknown token source \"cookie\""));
  EXPECT_THAT(ErrorOf(AuthConfig(R"({"roomsClaim": "rooms"})")), HasSubstr("needs \"auth\""));
  EXPECT_THAT(
      ErrorOf(AuthConfig(
          R"({"auth": {"keys": [{"algorithms": ["HS256"], "secretEnv": "S"}]}, "userIdFromAuth": "u"})")),
      HasSubstr("not with \"auth\""));
}

}  // namespace
}  // namespace switchboard::services

namespace switchboard::services {
namespace {

// Found by fuzzing (tests/fuzz/regressions/config/number_overflow.json).
TEST(ConfigTest, HugeNumbersAreAnErrorNotACrash) {
  EXPECT_THAT(ErrorOf(R"({"engine": {"pingInterval": 1e400}})"), HasSubstr("invalid JSON"));
}

}  // namespace
}  // namespace switchboard::services

namespace switchboard::services {
namespace {

TEST(ForwardConfigTest, ParsesForwardAndConnectHook) {
  auto config = ParseConfig(R"({
    "limits": {"maxPendingAcks": 50},
    "namespaces": {
      "/": {"forward": {"events": "*"}},
      "/chat": {
        "forward": {"events": ["chat message", "typing"], "ackTimeout": 1500,
                    "headers": ["User-Agent", "x-request-id"]},
        "connectHook": {"address": "127.0.0.1:50061", "timeout": 500, "onFailure": "allow",
                        "failureMessage": "try later", "headers": ["Cookie"]}
      },
      "/plain": {}
    }})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_pending_acks, 50u);
  ASSERT_EQ(config->namespaces.size(), 3u);
  const NamespacePolicy& main = config->namespaces[0];
  ASSERT_TRUE(main.forward.has_value());
  EXPECT_FALSE(main.forward->events.has_value());
  EXPECT_TRUE(main.forward->Forwards("anything"));
  EXPECT_EQ(main.forward->ack_timeout, std::chrono::milliseconds(10000));
  EXPECT_FALSE(main.connect_hook.has_value());

  const NamespacePolicy& chat = config->namespaces[1];
  ASSERT_TRUE(chat.forward.has_value());
  EXPECT_TRUE(chat.forward->Forwards("typing"));
  EXPECT_FALSE(chat.forward->Forwards("other"));
  EXPECT_EQ(chat.forward->ack_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(chat.forward->headers, (std::vector<std::string>{"user-agent", "x-request-id"}));
  ASSERT_TRUE(chat.connect_hook.has_value());
  EXPECT_EQ(chat.connect_hook->address, "127.0.0.1:50061");
  EXPECT_EQ(chat.connect_hook->timeout, std::chrono::milliseconds(500));
  EXPECT_TRUE(chat.connect_hook->allow_on_failure);
  EXPECT_EQ(chat.connect_hook->failure_message, "try later");
  EXPECT_EQ(chat.connect_hook->headers, (std::vector<std::string>{"cookie"}));
  // A connection keeps only the handshake headers some policy reads.
  EXPECT_EQ(config->engine.handshake_headers,
            (std::vector<std::string>{"cookie", "user-agent", "x-request-id"}));

  EXPECT_FALSE(config->namespaces[2].forward.has_value());
  EXPECT_EQ(ParseConfig("{}")->max_pending_acks, 10000u);
  auto hook = ParseConfig(R"({"namespaces": {"/": {"connectHook": {"address": "h:1"}}}})");
  ASSERT_TRUE(hook.ok()) << hook.status();
  EXPECT_FALSE(hook->namespaces[0].connect_hook->allow_on_failure);
  EXPECT_EQ(hook->namespaces[0].connect_hook->timeout, std::chrono::milliseconds(2000));
}

TEST(ForwardConfigTest, MistakesAreNamed) {
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"forward": {"event": "*"}}}})"),
              HasSubstr("namespaces[\"/\"].forward.event: unknown key"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"forward": {"events": ["connect"]}}}})"),
              HasSubstr("reserved"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"forward": {"ackTimeout": 0}}}})"),
              HasSubstr("forward.ackTimeout"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"forward": true}}})"), HasSubstr("forward"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"connectHook": {}}}})"),
              HasSubstr("connectHook.address: required"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"connectHook": {"address": "nope"}}}})"),
              HasSubstr("connectHook.address"));
  EXPECT_THAT(
      ErrorOf(
          R"({"namespaces": {"/": {"connectHook": {"address": "h:1", "onFailure": "maybe"}}}})"),
      HasSubstr("expected \"allow\" or \"reject\""));
  EXPECT_THAT(ErrorOf(R"({"limits": {"maxPendingAcks": 0}})"), HasSubstr("limits.maxPendingAcks"));
}

TEST(PageConfigTest, OffByDefaultParsedWhenGiven) {
  EXPECT_FALSE(ParseConfig("{}")->page.has_value());
  auto config = ParseConfig(R"({"page": {"file": "a.html", "clientFile": "b.js"}})");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->page.has_value());
  EXPECT_EQ(config->page->path, "/");
  EXPECT_EQ(config->page->client_path, "/socket.io.min.js");
  EXPECT_EQ(config->page->file, "a.html");
  EXPECT_THAT(ErrorOf(R"({"page": {"file": "a.html"}})"), HasSubstr("page.clientFile: required"));
  EXPECT_THAT(ErrorOf(R"({"page": {"path": "x", "file": "a", "clientFile": "b"}})"),
              HasSubstr("page.path: must be a URL path"));
  EXPECT_THAT(ErrorOf(R"({"page": {"path": "/socket.io/x", "file": "a", "clientFile": "b"}})"),
              HasSubstr("engine.path"));
  EXPECT_THAT(ErrorOf(R"({"page": {"file": "a", "clientFile": "b", "dir": "/"}})"),
              HasSubstr("page.dir: unknown key"));
}

}  // namespace
}  // namespace switchboard::services

namespace switchboard::services {
namespace {

TEST(RecoveryConfigTest, OffWhenAbsentDefaultsAndValues) {
  auto plain = ParseConfig(R"({"namespaces": {"/": {}}})");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->namespaces.front().recovery.has_value()) << "off when absent";

  auto defaults = ParseConfig(R"({"namespaces": {"/": {"connectionStateRecovery": {}}}})");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  ASSERT_TRUE(defaults->namespaces.front().recovery.has_value());
  const recovery::Options& d = *defaults->namespaces.front().recovery;
  EXPECT_EQ(d.max_disconnection_duration, std::chrono::milliseconds(120'000));
  EXPECT_TRUE(d.skip_middlewares);
  EXPECT_EQ(d.max_log_bytes, size_t{64} << 20);

  auto set = ParseConfig(
      R"({"namespaces": {"/": {"connectionStateRecovery": {"maxDisconnectionDuration": 5000,
          "skipMiddlewares": false, "maxLogBytes": 1048576}}}})");
  ASSERT_TRUE(set.ok()) << set.status();
  const recovery::Options& s = *set->namespaces.front().recovery;
  EXPECT_EQ(s.max_disconnection_duration, std::chrono::milliseconds(5000));
  EXPECT_FALSE(s.skip_middlewares);
  EXPECT_EQ(s.max_log_bytes, 1048576u);
}

TEST(RecoveryConfigTest, MistakesAreNamed) {
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"connectionStateRecovery": true}}})"),
              HasSubstr("connectionStateRecovery"));
  EXPECT_THAT(
      ErrorOf(
          R"({"namespaces": {"/": {"connectionStateRecovery": {"maxDisconnectionDuration": 0}}}})"),
      HasSubstr("maxDisconnectionDuration"));
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/": {"connectionStateRecovery": {"maxLogBytes": 10}}}})"),
              HasSubstr("maxLogBytes"));
  EXPECT_THAT(
      ErrorOf(R"({"namespaces": {"/": {"connectionStateRecovery": {"skipMiddleware": true}}}})"),
      HasSubstr("skipMiddleware"));
}


// ---------------------------------------------------------------- adminUi ---

constexpr char kHash[] = "$2b$10$OjkEInL2tbJNY5yNnQp7u.8oPuM20OyWvJxCPbvYw19DMKEwO3yPS";

TEST(ConfigTest, AdminUiDefaults) {
  auto config = ParseConfig(absl::StrCat(
      R"({"adminUi": {"auth": {"username": "admin", "passwordHash": ")", kHash, R"("}}})"));
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->admin_ui.has_value());
  EXPECT_EQ(config->admin_ui->nsp, "/admin");
  EXPECT_TRUE(config->admin_ui->auth);
  EXPECT_EQ(config->admin_ui->username, "admin");
  EXPECT_EQ(config->admin_ui->password_hash, kHash);
  EXPECT_TRUE(config->admin_ui->development);  // the reference's default mode
  EXPECT_FALSE(config->admin_ui->readonly);
  EXPECT_EQ(config->admin_ui->max_listed_sockets, 1000u);
  EXPECT_EQ(config->admin_ui->ui_path, "/admin-ui/");
  EXPECT_TRUE(config->engine.cors.allow_same_origin);  // the UI it serves may connect
  EXPECT_FALSE(ParseConfig("{}")->admin_ui.has_value());
  EXPECT_FALSE(ParseConfig("{}")->engine.cors.allow_same_origin);
}

TEST(ConfigTest, AdminUiOptions) {
  auto config = ParseConfig(R"({"adminUi": {"namespace": "/ops", "auth": false,
      "mode": "production", "readonly": true, "maxListedSockets": 50, "uiPath": false}})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->admin_ui->nsp, "/ops");
  EXPECT_FALSE(config->admin_ui->auth);
  EXPECT_FALSE(config->admin_ui->development);
  EXPECT_TRUE(config->admin_ui->readonly);
  EXPECT_EQ(config->admin_ui->max_listed_sockets, 50u);
  EXPECT_EQ(config->admin_ui->ui_path, "");
  EXPECT_FALSE(config->engine.cors.allow_same_origin);
}

TEST(ConfigTest, AdminUiErrors) {
  EXPECT_THAT(ErrorOf(R"({"adminUi": {}})"), HasSubstr("adminUi.auth: required"));
  EXPECT_THAT(ErrorOf(R"({"adminUi": {"auth": {"username": "a", "passwordHash": "secret"}}})"),
              HasSubstr("adminUi.auth.passwordHash: must be a bcrypt hash"));
  EXPECT_THAT(ErrorOf(R"({"adminUi": {"auth": false, "mode": "debug"}})"),
              HasSubstr("adminUi.mode: unknown mode \"debug\""));
  EXPECT_THAT(ErrorOf(R"({"adminUi": {"auth": false, "uiPath": "/ui"}})"),
              HasSubstr("adminUi.uiPath: must be a URL path that starts and ends with /"));
  EXPECT_THAT(ErrorOf(R"({"adminUi": {"auth": false, "uiPath": "/socket.io/ui/"}})"),
              HasSubstr("must not be under engine.path"));
  EXPECT_THAT(ErrorOf(R"({"adminUi": {"auth": false, "colour": 1}})"), HasSubstr("colour"));
  // A clash with an application namespace names both.
  EXPECT_THAT(ErrorOf(R"({"namespaces": {"/admin": {}}, "adminUi": {"auth": false}})"),
              HasSubstr("adminUi.namespace: \"/admin\" is also namespaces[\"/admin\"]"));
  EXPECT_THAT(ErrorOf(R"({"adminUi": {"namespace": "/", "auth": false}})"),
              HasSubstr("is also namespaces[\"/\"]"));
}

}  // namespace
}  // namespace switchboard::services
