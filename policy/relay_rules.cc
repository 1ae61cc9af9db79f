#include "policy/relay_rules.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bus/routing.h"
#include "edge/socketio/broadcast.h"
#include "edge/socketio/server.h"

namespace switchboard::policy {
namespace {

// Sends the evaluated template as the single ack argument (no argument when
// the template evaluates to nothing).
void Answer(const sio::Ack& ack, const Template& tmpl, const RuleContext& ctx) {
  if (!ack) return;
  auto value = tmpl.Evaluate(ctx);
  Json args = Json::array();
  if (value.ok() && !value->is_discarded()) args.push_back(std::move(*value));
  ack(std::move(args));
}

// Whether the template is exactly the reference `ref` (no alternatives, no
// path).
bool IsReference(const Template& tmpl, std::string_view ref) {
  const Json& spec = tmpl.spec();
  return spec.is_string() && spec.get_ref<const std::string&>() == ref;
}

// Whether any of the rule's templates may read $now (a literal that merely
// contains the text counts too: the clock is read for nothing, no harm).
bool ReadsClock(const Rule& rule) {
  std::vector<const Template*> templates = {&rule.error_ack};
  for (const Requirement& req : rule.require) templates.push_back(&req.value);
  for (const std::optional<Template>* t :
       {&rule.target_value, &rule.payload, &rule.room, &rule.ack}) {
    if (t->has_value()) templates.push_back(&**t);
  }
  if (rule.notify) templates.push_back(&rule.notify->payload);
  for (const Template* t : templates) {
    if (t->spec().dump().find("$now") != std::string::npos) return true;
  }
  return false;
}

std::string FieldName(const std::string& ref) {
  if (ref == "$") return "argument";
  // (Built with append: GCC 12 -O3 warns falsely on "\"" + s + "\"".)
  std::string_view name = ref;
  if (name.substr(0, 2) == "$.") name.remove_prefix(2);
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  out.append(name);
  out.push_back('"');
  return out;
}

}  // namespace

RelayRules::RelayRules(sio::Namespace& nsp, NamespacePolicy policy, ForwardFn forward)
    : nsp_(nsp), policy_(std::move(policy)), forward_(std::move(forward)) {}

std::shared_ptr<RelayRules> RelayRules::Install(sio::Namespace& nsp, NamespacePolicy policy,
                                                ForwardFn forward) {
  auto self = std::make_shared<RelayRules>(nsp, std::move(policy), std::move(forward));
  if (!self->policy_.user_id_from_auth.empty()) {
    nsp.Use([self](const sio::SocketPtr& socket, sio::Next next) {
      const Json& auth = socket->auth();
      auto it = auth.is_object() ? auth.find(self->policy_.user_id_from_auth) : auth.end();
      if (it != auth.end() && it->is_string()) socket->SetUserId(it->get<std::string>());
      next(std::nullopt);
    });
  }
  nsp.OnConnection([self](const sio::SocketPtr& socket) {
    std::lock_guard lock(self->mu_);
    ++self->socket_ids_[IdHash(socket->id())];
  });
  nsp.OnDisconnect([self](const sio::SocketPtr& socket, std::string_view) {
    {
      std::lock_guard lock(self->mu_);
      auto it = self->socket_ids_.find(IdHash(socket->id()));
      if (it != self->socket_ids_.end() && --it->second == 0) self->socket_ids_.erase(it);
    }
    self->LeaveAll(*socket);
  });
  for (const Rule& rule : self->policy_.rules) {
    const Rule* r = &rule;  // policy_ is const: the address is stable
    Shortcuts shortcuts;
    shortcuts.target_is_sender = rule.target_value && IsReference(*rule.target_value, "$socket.id");
    shortcuts.ack_is_first_arg = rule.ack && IsReference(*rule.ack, "$");
    shortcuts.reads_clock = ReadsClock(rule);
    nsp.OnLazy(rule.event,
               [self, r, shortcuts](const sio::SocketPtr& socket, std::string_view event,
                                    sio::EventArgs& args, sio::Ack ack) {
                 self->Handle(*r, shortcuts, socket, event, args, ack);
               });
  }
  nsp.OnAnyEventLazy([self](const sio::SocketPtr& socket, std::string_view event,
                            sio::EventArgs& args,
                            sio::Ack ack) { self->Ignore(socket, event, args, std::move(ack)); });
  return self;
}

uint64_t RelayRules::IdHash(std::string_view id) { return absl::HashOf(id); }

bool RelayRules::RoomClaimed(const sio::Socket& socket, std::string_view room) const {
  if (policy_.rooms_claim.empty()) return true;
  const Json& claims = socket.claims();
  auto allowed = claims.is_object() ? claims.find(policy_.rooms_claim) : claims.end();
  if (allowed == claims.end() || !allowed->is_array()) return false;
  return std::any_of(allowed->begin(), allowed->end(), [room](const Json& listed) {
    return listed.is_string() && listed.get_ref<const std::string&>() == room;
  });
}

bool RelayRules::LooksLikeClusterSocketId(std::string_view id) const {
  // A socket of any edge ("<edge-id>.<random>"), when this edge is in a cluster.
  return !nsp_.server().options().edge_id.empty() && !bus::EdgeOfSocketId(id).empty();
}

bool RelayRules::IsSocketId(std::string_view id) const {
  std::lock_guard lock(mu_);
  return socket_ids_.contains(IdHash(id));
}

void RelayRules::LeaveAll(const sio::Socket& socket) {
  // A socket that disconnects leaves its rooms: the leave rule tells the
  // remaining members, as if the client had asked to leave.
  static const Json kNoArgs = Json::array();
  for (const Rule& rule : policy_.rules) {
    if (rule.action != RuleAction::kLeave || !rule.notify) continue;
    for (const std::string& room : socket.rooms()) {
      if (room == socket.id()) continue;
      RuleContext ctx;
      ctx.args = &kNoArgs;
      ctx.socket_id = socket.id();
      ctx.user_id = socket.user_id();
      ctx.claims = &socket.claims();
      ctx.event = rule.event;
      ctx.nsp = nsp_.name();
      ctx.room = room;
      ctx.now_ms = NowMs();
      auto payload = rule.notify->payload.Evaluate(ctx);
      if (!payload.ok()) continue;
      Json out = Json::array();
      if (!payload->is_discarded()) out.push_back(std::move(*payload));
      nsp_.To(room).Emit(rule.notify->event, std::move(out));
    }
  }
}

bool RelayRules::Forwards(std::string_view event) const {
  return forward_ && policy_.forward && policy_.forward->Forwards(event);
}

void RelayRules::Ignore(const sio::SocketPtr& socket, std::string_view event, sio::EventArgs& args,
                        sio::Ack ack) {
  if (Forwards(event)) {
    if (!policy_.EventAllowed(event)) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      if (ack) ack(Json::array({Json{{"ok", false}, {"error", "event not allowed"}}}));
      return;
    }
    forwarded_.fetch_add(1, std::memory_order_relaxed);
    forward_(*socket, event, args.json(), std::move(ack));
    return;
  }
  ignored_.fetch_add(1, std::memory_order_relaxed);
  spdlog::debug("{} {}: no rule for event \"{}\", ignored", nsp_.name(), socket->id(), event);
  if (ack) ack(Json::array({Json{{"ok", false}, {"error", "unknown event"}}}));
}

void RelayRules::Handle(const Rule& rule, const Shortcuts& shortcuts, const sio::SocketPtr& socket,
                        std::string_view event, sio::EventArgs& args, const sio::Ack& ack) {
  if (!policy_.EventAllowed(event)) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("{} {}: event \"{}\" not allowed", nsp_.name(), socket->id(), event);
    if (ack) ack(Json::array({Json{{"ok", false}, {"error", "event not allowed"}}}));
    return;
  }
  if (Forwards(event)) {  // the backend sees it; the rule answers the ack
    forwarded_.fetch_add(1, std::memory_order_relaxed);
    forward_(*socket, event, args.json(), nullptr);
  }
  RuleContext ctx;
  ctx.socket_id = socket->id();
  ctx.user_id = socket->user_id();
  ctx.claims = &socket->claims();
  ctx.event = event;
  ctx.nsp = nsp_.name();
  if (shortcuts.reads_clock) ctx.now_ms = NowMs();
  // The arguments are parsed only for a template that reads them.
  auto with_args = [&]() {
    if (ctx.args == nullptr) ctx.args = &args.json();
  };

  auto fail = [&](std::string_view error) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("{} {}: \"{}\" rejected: {}", nsp_.name(), socket->id(), event, error);
    ctx.error = error;
    with_args();
    Answer(ack, rule.error_ack, ctx);
  };

  if (!rule.require.empty()) with_args();
  for (const Requirement& req : rule.require) {
    auto v = req.value.Evaluate(ctx);
    if (!v.ok() || !Matches(*v, req.type)) {
      std::string what = req.type == ValueType::kAny
                             ? FieldName(req.ref) + " is required"
                             : FieldName(req.ref) + " must be " +
                                   (req.type == ValueType::kArray || req.type == ValueType::kObject ||
                                            req.type == ValueType::kInteger
                                        ? "an "
                                        : "a ") +
                                   std::string(ToString(req.type));
      return fail(what);
    }
  }

  if (rule.action == RuleAction::kRelay) {
    std::string evaluated;
    std::string_view target;
    // The sender's own socket, which is connected (it is sending).
    bool to_sender = false;
    if (rule.target != TargetKind::kNamespace) {
      if (shortcuts.target_is_sender) {
        target = socket->id();
      } else {
        with_args();
        auto v = rule.target_value->Evaluate(ctx);
        if (!v.ok() || !v->is_string() || v->get_ref<const std::string&>().empty()) {
          return fail(rule.target == TargetKind::kRoom ? "invalid room name" : "invalid socket id");
        }
        evaluated = v->get<std::string>();
        target = evaluated;
      }
      to_sender = target == socket->id();
      if (rule.target == TargetKind::kRoom) {
        // A room target must be a room clients may use, never a socket's own
        // room (that is what a "socket" target is for).
        if (!policy_.RoomNameAllowed(target) || IsSocketId(target) ||
            LooksLikeClusterSocketId(target)) {
          return fail("invalid room name");
        }
        if (rule.require_member) {
          if (!socket->InRoom(target)) return fail("not in room");
        } else if (!RoomClaimed(*socket, target)) {
          // The claim bounds where a client may post, not only what it joins.
          return fail("room not allowed");
        }
      } else if (!to_sender && !IsSocketId(target) && !LooksLikeClusterSocketId(target)) {
        // A socket of another edge is reached through the cluster.
        return fail("unknown socket");
      }
    }

    // The sender's own socket without the sender: nobody, here or on another
    // edge, so nothing is encoded or delivered.
    const bool to_nobody = rule.target == TargetKind::kSocket && to_sender && rule.except_sender;
    Json out;
    if (rule.payload) {
      with_args();
      auto v = rule.payload->Evaluate(ctx);
      if (!v.ok()) return fail("invalid payload");
      out = Json::array();
      if (!v->is_discarded()) out.push_back(std::move(*v));
    } else if (!to_nobody) {
      with_args();
      out = ctx.args->is_array() ? *ctx.args : Json::array({*ctx.args});
    }

    if (!to_nobody) {
      sio::Broadcast b(nsp_);
      if (!target.empty()) b.To(target);
      if (rule.except_sender) b.Except(socket->id());
      if (rule.is_volatile) b.Volatile();
      // Refused (too large for the cluster's bus): delivered to nobody.
      if (!b.Emit(rule.emit, std::move(out))) return fail("message too large");
    }
    handled_.fetch_add(1, std::memory_order_relaxed);
    if (!rule.ack || !ack) return;
    if (shortcuts.ack_is_first_arg && ctx.args == nullptr && args.has_text()) {
      // "$" is the first argument, or no argument when there is none.
      ack.AnswerText(args.first_text());
      return;
    }
    with_args();
    Answer(ack, *rule.ack, ctx);
    return;
  }

  // join / leave
  with_args();
  auto v = rule.room->Evaluate(ctx);
  if (!v.ok() || !v->is_string()) return fail("invalid room name");
  const std::string room = v->get<std::string>();
  ctx.room = room;
  if (!policy_.RoomNameAllowed(room) || room == socket->id() || IsSocketId(room) ||
      LooksLikeClusterSocketId(room)) {
    return fail("invalid room name");
  }
  if (rule.action == RuleAction::kJoin && !RoomClaimed(*socket, room)) {
    return fail("room not allowed");
  }

  // Tells the room's members (the others, by default).
  auto notify = [&]() {
    if (!rule.notify) return;
    auto payload = rule.notify->payload.Evaluate(ctx);
    if (!payload.ok()) return;
    Json out = Json::array();
    if (!payload->is_discarded()) out.push_back(std::move(*payload));
    sio::Broadcast b = nsp_.To(room);
    if (rule.notify->except_sender) b.Except(socket->id());
    b.Emit(rule.notify->event, std::move(out));
  };

  if (rule.action == RuleAction::kJoin) {
    // Joining a room twice is a no-op (acked, nobody notified).
    if (!socket->InRoom(room)) {
      size_t joined = socket->rooms().size() - (socket->InRoom(socket->id()) ? 1 : 0);
      if (joined >= policy_.max_rooms_per_socket) return fail("too many rooms");
      // The edge's hard cap (limits.maxRoomsPerSocket) counts every join.
      if (!socket->Join(room)) return fail("too many rooms");
      notify();
    }
  } else {
    if (!socket->InRoom(room)) return fail("not in room");
    socket->Leave(room);
    notify();
  }
  handled_.fetch_add(1, std::memory_order_relaxed);
  if (rule.ack) Answer(ack, *rule.ack, ctx);
}

}  // namespace switchboard::policy
