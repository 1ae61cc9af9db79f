#include "policy/template.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace switchboard::policy {

using read::Cat;
using read::Child;
using read::Error;
using read::Index;
using read::Split;

namespace {

struct RefAlt {
  enum Source { kArg0, kArgs, kSocketId, kUserId, kClaims, kNow, kEvent, kNsp, kRoom, kError };
  Source source = kArg0;
  std::vector<std::string> path;
};

}  // namespace

struct Template::Node {
  enum Kind { kLiteral, kRef, kObject, kArray };
  Kind kind = kLiteral;
  Json literal;
  std::vector<RefAlt> alts;       // kRef
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
        return Error(path,
                     Cat("malformed reference \"", s, "\" (each alternative starts with '$')"));
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
      const Json* root =
          (ctx.args && ctx.args->is_array() && !ctx.args->empty()) ? &(*ctx.args)[0] : nullptr;
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
    case Template::Node::kLiteral: return n.literal;
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
                Cat("expected an object to spread, got ", read::TypeName(v)));
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

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace switchboard::policy
