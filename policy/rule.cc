#include "policy/rule.h"

#include <set>
#include <utility>

namespace switchboard::policy {

using read::Cat;
using read::CheckKeys;
using read::Child;
using read::Error;
using read::GetBool;
using read::GetString;
using read::TypeError;

namespace {

const std::set<std::string_view>& ReservedEvents() {
  static const std::set<std::string_view> k = {"connect",       "connect_error", "disconnect",
                                               "disconnecting", "newListener",   "removeListener"};
  return k;
}

}  // namespace

std::string_view ToString(RuleAction action) {
  switch (action) {
    case RuleAction::kRelay: return "relay";
    case RuleAction::kJoin: return "join";
    case RuleAction::kLeave: return "leave";
  }
  return "?";
}

std::string_view ToString(ValueType type) {
  switch (type) {
    case ValueType::kAny: return "any";
    case ValueType::kString: return "string";
    case ValueType::kNumber: return "number";
    case ValueType::kInteger: return "integer";
    case ValueType::kBoolean: return "boolean";
    case ValueType::kObject: return "object";
    case ValueType::kArray: return "array";
  }
  return "?";
}

bool Matches(const Json& v, ValueType type) {
  if (v.is_discarded() || v.is_null()) return false;
  switch (type) {
    case ValueType::kAny: return true;
    case ValueType::kString: return v.is_string();
    case ValueType::kNumber: return v.is_number();
    case ValueType::kInteger: return v.is_number_integer();
    case ValueType::kBoolean: return v.is_boolean();
    case ValueType::kObject: return v.is_object();
    case ValueType::kArray: return v.is_array();
  }
  return false;
}

absl::StatusOr<std::string> ParseEventName(const Json& v, std::string_view path) {
  SB_ASSIGN_OR_RETURN(std::string name, GetString(v, path));
  if (ReservedEvents().count(name)) {
    return Error(path, Cat("\"", name, "\" is a reserved Socket.IO event name"));
  }
  return name;
}

namespace {

absl::StatusOr<ValueType> ParseValueType(const Json& v, std::string_view path) {
  SB_ASSIGN_OR_RETURN(std::string s, GetString(v, path));
  for (ValueType t : {ValueType::kAny, ValueType::kString, ValueType::kNumber, ValueType::kInteger,
                      ValueType::kBoolean, ValueType::kObject, ValueType::kArray}) {
    if (s == ToString(t)) return t;
  }
  return Error(
      path, Cat("unknown type \"", s, "\" (any, string, number, integer, boolean, object, array)"));
}

absl::StatusOr<Template> ParseReference(const Json& v, std::string_view path, unsigned vars) {
  // A target value: a reference, or a literal string.
  if (!v.is_string())
    return TypeError(path, "a string (a reference like \"$.room\", or a name)", v);
  return Template::Parse(v, path, vars);
}

}  // namespace

absl::StatusOr<Rule> ParseRule(const Json& spec, std::string_view path) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  Rule rule;

  auto event_it = spec.find("event");
  if (event_it == spec.end()) return Error(path, "missing key \"event\"");
  SB_ASSIGN_OR_RETURN(rule.event, ParseEventName(*event_it, Child(path, "event")));

  auto action_it = spec.find("action");
  if (action_it == spec.end()) return Error(path, "missing key \"action\" (relay, join, leave)");
  {
    std::string action_path = Child(path, "action");
    SB_ASSIGN_OR_RETURN(std::string action, GetString(*action_it, action_path));
    if (action == "relay") {
      rule.action = RuleAction::kRelay;
    } else if (action == "join") {
      rule.action = RuleAction::kJoin;
    } else if (action == "leave") {
      rule.action = RuleAction::kLeave;
    } else {
      return Error(action_path, Cat("unknown action \"", action, "\" (relay, join, leave)"));
    }
  }

  const bool relay = rule.action == RuleAction::kRelay;
  if (relay) {
    SB_RETURN_IF_ERROR(
        CheckKeys(spec, path,
                  {"event", "action", "require", "target", "exceptSender", "requireMember", "emit",
                   "payload", "volatile", "ack", "errorAck"}));
  } else {
    SB_RETURN_IF_ERROR(
        CheckKeys(spec, path, {"event", "action", "require", "room", "notify", "ack", "errorAck"}));
  }
  const unsigned vars = relay ? kVarsBase : kVarRoom;

  if (auto it = spec.find("require"); it != spec.end()) {
    std::string rpath = Child(path, "require");
    if (!it->is_object()) return TypeError(rpath, "an object {\"$.field\": \"type\"}", *it);
    for (const auto& [ref, type] : it->items()) {
      std::string kpath = Child(rpath, ref);
      if (ref.empty() || ref[0] != '$' || (ref.size() > 1 && ref[1] == '$')) {
        return Error(kpath, "keys are references like \"$.room\"");
      }
      Requirement req;
      req.ref = ref;
      SB_ASSIGN_OR_RETURN(req.value, Template::Parse(Json(ref), kpath, kVarsBase));
      SB_ASSIGN_OR_RETURN(req.type, ParseValueType(type, kpath));
      rule.require.push_back(std::move(req));
    }
  }

  if (relay) {
    rule.emit = rule.event;
    if (auto it = spec.find("target"); it != spec.end()) {
      std::string tpath = Child(path, "target");
      if (it->is_string()) {
        if (*it != "namespace") {
          return Error(tpath, "expected \"namespace\" or an object {namespace|room|socket}");
        }
        rule.target = TargetKind::kNamespace;
      } else if (it->is_object()) {
        SB_RETURN_IF_ERROR(CheckKeys(*it, tpath, {"namespace", "room", "socket"}));
        size_t n = it->count("namespace") + it->count("room") + it->count("socket");
        if (n != 1) return Error(tpath, "exactly one of \"namespace\", \"room\", \"socket\"");
        if (auto ns = it->find("namespace"); ns != it->end()) {
          SB_ASSIGN_OR_RETURN(bool b, GetBool(*ns, Child(tpath, "namespace")));
          if (!b) return Error(Child(tpath, "namespace"), "must be true");
          rule.target = TargetKind::kNamespace;
        } else if (auto room = it->find("room"); room != it->end()) {
          rule.target = TargetKind::kRoom;
          SB_ASSIGN_OR_RETURN(rule.target_value,
                              ParseReference(*room, Child(tpath, "room"), kVarsBase));
        } else {
          rule.target = TargetKind::kSocket;
          SB_ASSIGN_OR_RETURN(rule.target_value,
                              ParseReference((*it)["socket"], Child(tpath, "socket"), kVarsBase));
        }
      } else {
        return TypeError(tpath, "\"namespace\" or an object {namespace|room|socket}", *it);
      }
    }
    if (auto it = spec.find("exceptSender"); it != spec.end()) {
      SB_ASSIGN_OR_RETURN(rule.except_sender, GetBool(*it, Child(path, "exceptSender")));
    }
    if (auto it = spec.find("requireMember"); it != spec.end()) {
      SB_ASSIGN_OR_RETURN(rule.require_member, GetBool(*it, Child(path, "requireMember")));
      if (rule.require_member && rule.target != TargetKind::kRoom) {
        return Error(Child(path, "requireMember"), "only applies to a room target");
      }
    }
    if (auto it = spec.find("emit"); it != spec.end()) {
      SB_ASSIGN_OR_RETURN(rule.emit, ParseEventName(*it, Child(path, "emit")));
    }
    if (auto it = spec.find("payload"); it != spec.end()) {
      SB_ASSIGN_OR_RETURN(rule.payload, Template::Parse(*it, Child(path, "payload"), kVarsBase));
    }
    if (auto it = spec.find("volatile"); it != spec.end()) {
      SB_ASSIGN_OR_RETURN(rule.is_volatile, GetBool(*it, Child(path, "volatile")));
    }
  } else {
    if (auto it = spec.find("room"); it != spec.end()) {
      SB_ASSIGN_OR_RETURN(rule.room, ParseReference(*it, Child(path, "room"), kVarsBase));
    } else {
      rule.room = *Template::Parse(Json("$.room|$"), Child(path, "room"), kVarsBase);
    }
    if (auto it = spec.find("notify"); it != spec.end()) {
      std::string npath = Child(path, "notify");
      if (!it->is_object())
        return TypeError(npath, "an object {event, payload, exceptSender}", *it);
      SB_RETURN_IF_ERROR(CheckKeys(*it, npath, {"event", "payload", "exceptSender"}));
      Notify notify;
      auto ev = it->find("event");
      if (ev == it->end()) return Error(npath, "missing key \"event\"");
      SB_ASSIGN_OR_RETURN(notify.event, ParseEventName(*ev, Child(npath, "event")));
      if (auto p = it->find("payload"); p != it->end()) {
        SB_ASSIGN_OR_RETURN(notify.payload, Template::Parse(*p, Child(npath, "payload"), kVarRoom));
      } else {
        notify.payload = *Template::Parse(Json{{"socketId", "$socket.id"}, {"room", "$room"}},
                                          Child(npath, "payload"), kVarRoom);
      }
      if (auto e = it->find("exceptSender"); e != it->end()) {
        SB_ASSIGN_OR_RETURN(notify.except_sender, GetBool(*e, Child(npath, "exceptSender")));
      }
      rule.notify = std::move(notify);
    }
  }

  if (auto it = spec.find("ack"); it != spec.end()) {
    if (!it->is_null()) {
      SB_ASSIGN_OR_RETURN(rule.ack, Template::Parse(*it, Child(path, "ack"), vars));
    }
  } else {
    rule.ack = Template::Literal(Json{{"ok", true}});
  }
  if (auto it = spec.find("errorAck"); it != spec.end()) {
    SB_ASSIGN_OR_RETURN(rule.error_ack,
                        Template::Parse(*it, Child(path, "errorAck"), vars | kVarError));
  } else {
    rule.error_ack = *Template::Parse(Json{{"ok", false}, {"error", "$error"}},
                                      Child(path, "errorAck"), kVarError);
  }
  return rule;
}

}  // namespace switchboard::policy
