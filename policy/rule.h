#pragma once

// A relay rule (services/CONFIG.md, "Rules"): which client event it handles,
// what it does (relay to the namespace / a room / a socket, join or leave a
// room) and how it answers the client's ack, its values written as templates
// (policy/template.h). ParseRule reads one from its JSON form.

#include <absl/status/statusor.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/json_reader.h"
#include "policy/template.h"

namespace switchboard::policy {

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
  bool require_member = false;      // kRoom: the sender must be in that room
  std::string emit;                 // event name sent out (default: `event`)
  std::optional<Template> payload;  // nullopt: forward the arguments as-is
  bool is_volatile = false;

  // join / leave
  std::optional<Template> room;
  std::optional<Notify> notify;

  // Answer to a client ack request. nullopt: never answered.
  std::optional<Template> ack;
  Template error_ack;
};
// One rule object; `path` prefixes error messages.
absl::StatusOr<Rule> ParseRule(const Json& spec, std::string_view path);

// A client event name a rule or a policy may use: a non-empty string that is
// not one of Socket.IO's reserved names (connect, disconnect, ...).
absl::StatusOr<std::string> ParseEventName(const Json& v, std::string_view path);

// Type check used by "require".
bool Matches(const Json& value, ValueType type);

}  // namespace switchboard::policy
