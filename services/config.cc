#include "services/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <type_traits>

namespace switchboard::services {
namespace {

// Debian's abseil has its own absl::string_view, so absl::StrCat does not take
// std::string_view: a small local one instead.
inline void Append(std::string& out, std::string_view s) { out.append(s); }
inline void Append(std::string& out, const char* s) { out.append(s); }
inline void Append(std::string& out, const std::string& s) { out.append(s); }
inline void Append(std::string& out, absl::string_view s) { out.append(s.data(), s.size()); }
template <typename T>
  requires std::is_integral_v<T>
inline void Append(std::string& out, T n) {
  out.append(std::to_string(n));
}
template <typename... A>
std::string Cat(const A&... a) {
  std::string out;
  (Append(out, a), ...);
  return out;
}

std::string Join(std::initializer_list<std::string_view> items, std::string_view sep) {
  std::string out;
  for (std::string_view i : items) {
    if (!out.empty()) out.append(sep);
    out.append(i);
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// ---------------------------------------------------------------- paths ---

bool IsIdentifier(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::string Child(std::string_view path, std::string_view key) {
  if (IsIdentifier(key)) {
    return path.empty() ? std::string(key) : Cat(path, ".", key);
  }
  return Cat(path, "[", Json(std::string(key)).dump(), "]");
}

std::string Index(std::string_view path, size_t i) {
  return Cat(path, "[", i, "]");
}

std::string Where(std::string_view path) {
  return path.empty() ? std::string("config") : std::string(path);
}

absl::Status Error(std::string_view path, std::string_view message) {
  return absl::InvalidArgumentError(Cat(Where(path), ": ", message));
}

std::string TypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "integer";
    case Json::value_t::number_float: return "number";
    case Json::value_t::binary: return "binary";
    default: return "invalid";
  }
}

absl::Status TypeError(std::string_view path, std::string_view expected, const Json& got) {
  return Error(path, Cat("expected ", expected, ", got ", TypeName(got)));
}

// Rejects keys outside `allowed` ("comment" is always allowed, as a string).
absl::Status CheckKeys(const Json& obj, std::string_view path,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : obj.items()) {
    if (key == "comment") {
      if (!value.is_string()) return TypeError(Child(path, key), "a string", value);
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Error(Child(path, key),
                   Cat("unknown key (allowed: ", Join(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetString(const Json& v, std::string_view path, bool non_empty = true) {
  if (!v.is_string()) return TypeError(path, "a string", v);
  std::string s = v.get<std::string>();
  if (non_empty && s.empty()) return Error(path, "must not be empty");
  return s;
}

absl::StatusOr<bool> GetBool(const Json& v, std::string_view path) {
  if (!v.is_boolean()) return TypeError(path, "a boolean", v);
  return v.get<bool>();
}

// Integers; a float with an integral value (1e6) is accepted too.
absl::StatusOr<uint64_t> GetUint(const Json& v, std::string_view path, uint64_t min, uint64_t max) {
  uint64_t n = 0;
  if (v.is_number_unsigned()) {
    n = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return Error(path, Cat("must be between ", min, " and ", max, ", got ", i));
    n = static_cast<uint64_t>(i);
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > 1.8e19) {
      return Error(path, Cat("expected an integer, got ", v.dump()));
    }
    n = static_cast<uint64_t>(d);
  } else {
    return TypeError(path, "an integer", v);
  }
  if (n < min || n > max) {
    return Error(path, Cat("must be between ", min, " and ", max, ", got ", n));
  }
  return n;
}

absl::StatusOr<std::chrono::milliseconds> GetMs(const Json& v, std::string_view path) {
  auto n = GetUint(v, path, 1, 24ull * 3600 * 1000);
  if (!n.ok()) return n.status();
  return std::chrono::milliseconds(static_cast<int64_t>(*n));
}

#define SB_ASSIGN_OR_RETURN(lhs, expr)      \
  auto SB_CONCAT(_sb_r_, __LINE__) = (expr);  \
  if (!SB_CONCAT(_sb_r_, __LINE__).ok())      \
    return SB_CONCAT(_sb_r_, __LINE__).status(); \
  lhs = std::move(*SB_CONCAT(_sb_r_, __LINE__))
#define SB_CONCAT_INNER(a, b) a##b
#define SB_CONCAT(a, b) SB_CONCAT_INNER(a, b)
#define SB_RETURN_IF_ERROR(expr)        \
  do {                                  \
    absl::Status _sb_s = (expr);        \
    if (!_sb_s.ok()) return _sb_s;      \
  } while (0)

// ------------------------------------------------------------ templates ---

struct RefAlt {
  enum Source { kArg0, kArgs, kSocketId, kUserId, kClaims, kNow, kEvent, kNsp, kRoom, kError };
  Source source = kArg0;
  std::vector<std::string> path;
};

const std::set<std::string_view>& ReservedEvents() {
  static const std::set<std::string_view> k = {"connect",       "connect_error",
                                                "disconnect",    "disconnecting",
                                                "newListener",   "removeListener"};
  return k;
}

}  // namespace

struct Template::Node {
  enum Kind { kLiteral, kRef, kObject, kArray };
  Kind kind = kLiteral;
  Json literal;
  std::vector<RefAlt> alts;     // kRef
  std::vector<std::string> keys;  // kObject ("..." = spread)
  std::vector<Node> children;     // kObject, kArray
};

namespace {

absl::StatusOr<std::vector<std::string>> ParsePath(std::string_view text, std::string_view ref,
                                                   std::string_view path) {
  std::vector<std::string> out;
  for (std::string_view seg : Split(text, '.')) {
    if (seg.empty()) {
      return Error(path, Cat("malformed reference \"", ref, "\" (empty field name)"));
    }
    out.emplace_back(seg);
  }
  return out;
}

absl::StatusOr<RefAlt> ParseAlt(std::string_view alt, unsigned vars, std::string_view ref,
                                std::string_view path) {
  RefAlt r;
  auto unknown = [&]() {
    return Error(
        path, Cat("unknown reference \"", alt,
                  "\" (known: $, $.field, $args, $socket.id, $socket.userId, "
                  "$socket.claims.name, $now, $event, $nsp",
                  (vars & kVarRoom) ? ", $room" : "", (vars & kVarError) ? ", $error" : "", ")"));
  };
  if (alt == "$") {
    r.source = RefAlt::kArg0;
  } else if (alt.substr(0, 2) == "$.") {
    r.source = RefAlt::kArg0;
    SB_ASSIGN_OR_RETURN(r.path, ParsePath(alt.substr(2), ref, path));
  } else if (alt == "$args") {
    r.source = RefAlt::kArgs;
  } else if (alt.substr(0, 6) == "$args.") {
    r.source = RefAlt::kArgs;
    SB_ASSIGN_OR_RETURN(r.path, ParsePath(alt.substr(6), ref, path));
  } else if (alt == "$socket.id") {
    r.source = RefAlt::kSocketId;
  } else if (alt == "$socket.userId") {
    r.source = RefAlt::kUserId;
  } else if (alt.substr(0, 15) == "$socket.claims.") {
    r.source = RefAlt::kClaims;
    SB_ASSIGN_OR_RETURN(r.path, ParsePath(alt.substr(15), ref, path));
  } else if (alt == "$now") {
    r.source = RefAlt::kNow;
  } else if (alt == "$event") {
    r.source = RefAlt::kEvent;
  } else if (alt == "$nsp") {
    r.source = RefAlt::kNsp;
  } else if (alt == "$room" && (vars & kVarRoom)) {
    r.source = RefAlt::kRoom;
  } else if (alt == "$error" && (vars & kVarError)) {
    r.source = RefAlt::kError;
  } else {
    return unknown();
  }
  return r;
}

absl::StatusOr<Template::Node> ParseNode(const Json& spec, std::string_view path, unsigned vars) {
  Template::Node node;
  if (spec.is_string()) {
    const std::string& s = spec.get_ref<const std::string&>();
    if (s.empty() || s[0] != '$') {
      node.literal = spec;
      return node;
    }
    if (s.size() >= 2 && s[1] == '$') {
      node.literal = s.substr(1);
      return node;
    }
    node.kind = Template::Node::kRef;
    for (std::string_view alt : Split(s, '|')) {
      if (alt.empty() || alt[0] != '$') {
        return Error(path, Cat("malformed reference \"", s,
                                        "\" (each alternative starts with '$')"));
      }
      SB_ASSIGN_OR_RETURN(RefAlt a, ParseAlt(alt, vars, s, path));
      node.alts.push_back(std::move(a));
    }
    return node;
  }
  if (spec.is_object()) {
    node.kind = Template::Node::kObject;
    bool all_literal = true;
    for (const auto& [key, value] : spec.items()) {
      std::string child_path = Child(path, key);
      SB_ASSIGN_OR_RETURN(Template::Node child, ParseNode(value, child_path, vars));
      if (key == "..." && child.kind != Template::Node::kRef) {
        return Error(child_path, "\"...\" takes a reference (e.g. \"$\")");
      }
      all_literal = all_literal && key != "..." && child.kind == Template::Node::kLiteral;
      node.keys.push_back(key);
      node.children.push_back(std::move(child));
    }
    if (all_literal) {
      Template::Node lit;
      lit.literal = Json::object();
      for (size_t i = 0; i < node.keys.size(); ++i) {
        lit.literal[node.keys[i]] = std::move(node.children[i].literal);
      }
      return lit;
    }
    return node;
  }
  if (spec.is_array()) {
    node.kind = Template::Node::kArray;
    bool all_literal = true;
    for (size_t i = 0; i < spec.size(); ++i) {
      SB_ASSIGN_OR_RETURN(Template::Node child, ParseNode(spec[i], Index(path, i), vars));
      all_literal = all_literal && child.kind == Template::Node::kLiteral;
      node.children.push_back(std::move(child));
    }
    if (all_literal) {
      Template::Node lit;
      lit.literal = Json::array();
      for (auto& c : node.children) lit.literal.push_back(std::move(c.literal));
      return lit;
    }
    return node;
  }
  node.literal = spec;
  return node;
}

const Json* Walk(const Json* v, const std::vector<std::string>& path) {
  for (const std::string& seg : path) {
    if (v == nullptr) return nullptr;
    if (v->is_object()) {
      auto it = v->find(seg);
      if (it == v->end()) return nullptr;
      v = &*it;
    } else if (v->is_array()) {
      if (seg.empty() || seg.size() > 9 ||
          !std::all_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return nullptr;
      }
      size_t i = std::stoul(seg);
      if (i >= v->size()) return nullptr;
      v = &(*v)[i];
    } else {
      return nullptr;
    }
  }
  return v;
}

Json Discarded() { return Json(Json::value_t::discarded); }

Json EvalAlt(const RefAlt& a, const RuleContext& ctx) {
  switch (a.source) {
    case RefAlt::kArg0: {
      const Json* root = (ctx.args && ctx.args->is_array() && !ctx.args->empty())
                             ? &(*ctx.args)[0]
                             : nullptr;
      const Json* v = Walk(root, a.path);
      return v ? *v : Discarded();
    }
    case RefAlt::kArgs: {
      const Json* v = Walk(ctx.args, a.path);
      return v ? *v : Discarded();
    }
    case RefAlt::kSocketId: return std::string(ctx.socket_id);
    case RefAlt::kUserId: return ctx.user_id.empty() ? Discarded() : Json(std::string(ctx.user_id));
    case RefAlt::kClaims: {
      const Json* v = Walk(ctx.claims, a.path);
      return v ? *v : Discarded();
    }
    case RefAlt::kNow: return ctx.now_ms;
    case RefAlt::kEvent: return std::string(ctx.event);
    case RefAlt::kNsp: return std::string(ctx.nsp);
    case RefAlt::kRoom: return std::string(ctx.room);
    case RefAlt::kError: return std::string(ctx.error);
  }
  return Discarded();
}

absl::StatusOr<Json> EvalNode(const Template::Node& n, const RuleContext& ctx) {
  switch (n.kind) {
    case Template::Node::kLiteral:
      return n.literal;
    case Template::Node::kRef: {
      Json last = Discarded();
      for (const RefAlt& a : n.alts) {
        last = EvalAlt(a, ctx);
        if (!last.is_discarded() && !last.is_null()) return last;
      }
      return last;
    }
    case Template::Node::kObject: {
      Json out = Json::object();
      for (size_t i = 0; i < n.keys.size(); ++i) {
        SB_ASSIGN_OR_RETURN(Json v, EvalNode(n.children[i], ctx));
        if (v.is_discarded()) continue;
        if (n.keys[i] == "...") {
          if (v.is_null()) continue;
          if (!v.is_object()) {
            return absl::InvalidArgumentError(
                Cat("expected an object to spread, got ", TypeName(v)));
          }
          for (auto& [k, member] : v.items()) out[k] = std::move(member);
        } else {
          out[n.keys[i]] = std::move(v);
        }
      }
      return out;
    }
    case Template::Node::kArray: {
      Json out = Json::array();
      for (const auto& c : n.children) {
        SB_ASSIGN_OR_RETURN(Json v, EvalNode(c, ctx));
        out.push_back(v.is_discarded() ? Json(nullptr) : std::move(v));
      }
      return out;
    }
  }
  return Discarded();
}

}  // namespace

absl::StatusOr<Template> Template::Parse(const Json& spec, std::string_view path, unsigned vars) {
  SB_ASSIGN_OR_RETURN(Node node, ParseNode(spec, path, vars));
  Template t;
  t.root_ = std::make_shared<const Node>(std::move(node));
  t.spec_ = spec;
  return t;
}

Template Template::Literal(Json value) {
  Template t;
  auto node = std::make_shared<Node>();
  node->literal = value;
  t.root_ = std::move(node);
  t.spec_ = std::move(value);
  return t;
}

absl::StatusOr<Json> Template::Evaluate(const RuleContext& ctx) const {
  if (!root_) return Discarded();
  return EvalNode(*root_, ctx);
}

// ---------------------------------------------------------------- rules ---

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

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

absl::StatusOr<std::string> GetEventName(const Json& v, std::string_view path) {
  SB_ASSIGN_OR_RETURN(std::string name, GetString(v, path));
  if (ReservedEvents().count(name)) {
    return Error(path, Cat("\"", name, "\" is a reserved Socket.IO event name"));
  }
  return name;
}

absl::StatusOr<ValueType> ParseValueType(const Json& v, std::string_view path) {
  SB_ASSIGN_OR_RETURN(std::string s, GetString(v, path));
  for (ValueType t : {ValueType::kAny, ValueType::kString, ValueType::kNumber, ValueType::kInteger,
                      ValueType::kBoolean, ValueType::kObject, ValueType::kArray}) {
    if (s == ToString(t)) return t;
  }
  return Error(path, Cat("unknown type \"", s,
                                  "\" (any, string, number, integer, boolean, object, array)"));
}

absl::StatusOr<Template> ParseReference(const Json& v, std::string_view path, unsigned vars) {
  // A target value: a reference, or a literal string.
  if (!v.is_string()) return TypeError(path, "a string (a reference like \"$.room\", or a name)", v);
  return Template::Parse(v, path, vars);
}

}  // namespace

absl::StatusOr<Rule> ParseRule(const Json& spec, std::string_view path) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  Rule rule;

  auto event_it = spec.find("event");
  if (event_it == spec.end()) return Error(path, "missing key \"event\"");
  SB_ASSIGN_OR_RETURN(rule.event, GetEventName(*event_it, Child(path, "event")));

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
      return Error(action_path,
                   Cat("unknown action \"", action, "\" (relay, join, leave)"));
    }
  }

  const bool relay = rule.action == RuleAction::kRelay;
  if (relay) {
    SB_RETURN_IF_ERROR(CheckKeys(spec, path,
                                 {"event", "action", "require", "target", "exceptSender",
                                  "requireMember", "emit", "payload", "volatile", "ack",
                                  "errorAck"}));
  } else {
    SB_RETURN_IF_ERROR(CheckKeys(spec, path,
                                 {"event", "action", "require", "room", "notify", "ack",
                                  "errorAck"}));
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
      SB_ASSIGN_OR_RETURN(rule.emit, GetEventName(*it, Child(path, "emit")));
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
      if (!it->is_object()) return TypeError(npath, "an object {event, payload, exceptSender}", *it);
      SB_RETURN_IF_ERROR(CheckKeys(*it, npath, {"event", "payload", "exceptSender"}));
      Notify notify;
      auto ev = it->find("event");
      if (ev == it->end()) return Error(npath, "missing key \"event\"");
      SB_ASSIGN_OR_RETURN(notify.event, GetEventName(*ev, Child(npath, "event")));
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

// --------------------------------------------------------------- limits ---

namespace {

// A number (rates may be fractional) in [min, max].
absl::StatusOr<double> GetNumber(const Json& v, std::string_view path, uint64_t min,
                                 uint64_t max) {
  if (!v.is_number()) return TypeError(path, "a number", v);
  double d = v.get<double>();
  if (!std::isfinite(d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    return Error(path, Cat("must be between ", min, " and ", max, ", got ", v.dump()));
  }
  return d;
}

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
    SB_RETURN_IF_ERROR(
        CheckKeys(*it, rpath, {"perSecond", "burst", "floodDrops", "floodWindow"}));
    sio::EventRateLimits& rate = limits.event_rate;
    SB_RETURN_IF_ERROR(ParseRate(*it, rpath, rate.rate));
    // Default: ten bursts' worth of dropped events.
    rate.flood_drops = static_cast<uint64_t>(std::ceil(rate.rate.burst * 10));
    if (auto f = it->find("floodDrops"); f != it->end()) {
      SB_ASSIGN_OR_RETURN(rate.flood_drops,
                          GetUint(*f, Child(rpath, "floodDrops"), 0, 1000000000));
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

bool NamespacePolicy::EventAllowed(std::string_view event) const {
  if (!allowed_events) return true;
  return std::find(allowed_events->begin(), allowed_events->end(), event) !=
         allowed_events->end();
}

bool ForwardSpec::Forwards(std::string_view event) const {
  if (!events) return true;
  return std::find(events->begin(), events->end(), event) != events->end();
}

absl::StatusOr<std::vector<std::string>> GetStringList(const Json& v, std::string_view path) {
  if (!v.is_array()) return TypeError(path, "an array of strings", v);
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    SB_ASSIGN_OR_RETURN(std::string s, GetString(v[i], Index(path, i)));
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<AuthKeySpec> ParseAuthKey(const Json& spec, std::string_view path) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(CheckKeys(spec, path, {"kid", "algorithms", "secretEnv", "secretFile",
                                            "publicKeyFile", "jwksFile"}));
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
  SB_RETURN_IF_ERROR(CheckKeys(spec, path, {"keys", "issuer", "audience", "leewaySeconds",
                                            "tokenFrom", "queryParameter", "claims"}));
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

bool NamespacePolicy::RoomNameAllowed(std::string_view room) const {
  if (room.empty() || room.size() > kMaxRoomNameBytes) return false;
  if (!room_regex) return true;
  return std::regex_match(room.begin(), room.end(), *room_regex);
}

namespace {

absl::StatusOr<std::vector<std::string>> GetHeaderNames(const Json& v, std::string_view path) {
  SB_ASSIGN_OR_RETURN(std::vector<std::string> names, GetStringList(v, path));
  for (std::string& name : names) {
    if (name.empty()) return Error(path, "a header name must not be empty");
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return names;
}

absl::StatusOr<ForwardSpec> ParseForward(const Json& spec, std::string_view path) {
  if (!spec.is_object()) return TypeError(path, "an object {events, ackTimeout, headers}", spec);
  SB_RETURN_IF_ERROR(CheckKeys(spec, path, {"events", "ackTimeout", "headers"}));
  ForwardSpec forward;
  if (auto it = spec.find("events"); it != spec.end()) {
    std::string epath = Child(path, "events");
    if (it->is_string() && *it == "*") {
      forward.events.reset();
    } else {
      SB_ASSIGN_OR_RETURN(forward.events, GetStringList(*it, epath));
      for (size_t i = 0; i < forward.events->size(); ++i) {
        SB_ASSIGN_OR_RETURN(std::string checked,
                            GetEventName(Json((*forward.events)[i]), Index(epath, i)));
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
  SB_RETURN_IF_ERROR(CheckKeys(
      spec, path,
      {"rules", "roomPattern", "maxRoomsPerSocket", "userIdFromAuth", "auth", "allowedEvents",
       "roomsClaim", "maxSocketsPerUser", "eventRate", "forward", "connectHook"}));
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
                 Cat("invalid regular expression \"", policy.room_pattern,
                              "\": ", e.what()));
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
                     Cat("another rule of this namespace already handles \"",
                                  rule.event, "\""));
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

absl::Status ParseEngine(const Json& spec, std::string_view path, Config& config) {
  if (!spec.is_object()) return TypeError(path, "an object", spec);
  SB_RETURN_IF_ERROR(CheckKeys(spec, path,
                               {"path", "pingInterval", "pingTimeout", "upgradeTimeout",
                                "maxHttpBufferSize", "connectTimeout", "transports",
                                "allowUpgrades", "cors", "maxSendQueueBytes",
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
      case Json::parse_event_t::object_start:
        stack_.push_back(Frame{true, {}, {}, 0});
        break;
      case Json::parse_event_t::array_start:
        stack_.push_back(Frame{false, {}, {}, 0});
        break;
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
      case Json::parse_event_t::value:
        ElementDone();
        break;
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

// The handshake headers some policy reads later (token from the
// Authorization header, headers passed to hooks and backends): the only ones
// a connection keeps.
std::vector<std::string> HeadersRead(const std::vector<NamespacePolicy>& namespaces) {
  std::set<std::string> names;
  for (const NamespacePolicy& p : namespaces) {
    if (p.auth && std::count(p.auth->token_from.begin(), p.auth->token_from.end(),
                             TokenSource::kHeader) > 0) {
      names.insert("authorization");
    }
    if (p.forward) names.insert(p.forward->headers.begin(), p.forward->headers.end());
    if (p.connect_hook) {
      names.insert(p.connect_hook->headers.begin(), p.connect_hook->headers.end());
    }
  }
  return {names.begin(), names.end()};
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
  SB_RETURN_IF_ERROR(CheckKeys(root, "", {"listen", "threads", "logLevel", "engine", "limits",
                                          "namespaces", "page"}));

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
    static const std::set<std::string> kLevels = {"trace", "debug", "info",    "warn",
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
  config.engine.handshake_headers = HeadersRead(config.namespaces);
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
    return absl::Status(config.status().code(),
                        Cat(file, ": ", config.status().message()));
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
