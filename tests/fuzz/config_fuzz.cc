// links: sb_config
//
// services::ParseConfig on the input (the text of a `--config` file), then,
// when it loads, every template of every rule evaluated against a fixed rule
// context (what a client event would do with the config), and the room
// pattern tried on a few short names. Invariants: the namespace "/" always
// exists, every namespace name starts with '/' and appears once, every
// namespace has its compiled room pattern.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "services/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace services = switchboard::services;
namespace policy = switchboard::policy;

namespace {

void Evaluate(const policy::Template& t, const policy::RuleContext& ctx) {
  // Absent values, errors and any JSON are all legitimate outcomes here.
  auto value = t.Evaluate(ctx);
  if (value.ok() && !value->is_discarded()) (void)value->dump();
}

void Evaluate(const std::optional<policy::Template>& t, const policy::RuleContext& ctx) {
  if (t.has_value()) Evaluate(*t, ctx);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = services::ParseConfig(text);
  if (!config.ok()) {
    FUZZ_CHECK(!config.status().message().empty(), "error without a message");
    return 0;
  }

  std::set<std::string> names;
  for (const policy::NamespacePolicy& nsp : config->namespaces) {
    FUZZ_CHECK(!nsp.name.empty() && nsp.name[0] == '/', "namespace name without '/'");
    FUZZ_CHECK(names.insert(nsp.name).second, "namespace listed twice");
    FUZZ_CHECK(nsp.room_regex != nullptr, "namespace without a compiled room pattern");
    (void)nsp.RoomNameAllowed("lobby");
    (void)nsp.RoomNameAllowed("a");
    (void)nsp.RoomNameAllowed(std::string(300, 'a'));  // over kMaxRoomNameBytes

    const policy::Json args = policy::Json::parse(
        R"([{"room":"lobby","message":"hi","to":"x","list":[1,{"a":null}]},"two",3])");
    const policy::Json claims = policy::Json::parse(R"({"username":"u","org":{"id":7}})");
    policy::RuleContext ctx;
    ctx.args = &args;
    ctx.socket_id = "sid123";
    ctx.user_id = "user1";
    ctx.claims = &claims;
    ctx.event = "message";
    ctx.nsp = nsp.name;
    ctx.room = "lobby";
    ctx.error = "not in room";
    ctx.now_ms = 1700000000000;
    for (const policy::Rule& rule : nsp.rules) {
      FUZZ_CHECK(!rule.event.empty(), "rule without an event");
      for (const policy::Requirement& req : rule.require) Evaluate(req.value, ctx);
      Evaluate(rule.target_value, ctx);
      Evaluate(rule.payload, ctx);
      Evaluate(rule.room, ctx);
      if (rule.notify.has_value()) Evaluate(rule.notify->payload, ctx);
      Evaluate(rule.ack, ctx);
      Evaluate(rule.error_ack, ctx);
    }
  }
  FUZZ_CHECK(names.count("/") == 1, "no namespace \"/\"");
  return 0;
}
