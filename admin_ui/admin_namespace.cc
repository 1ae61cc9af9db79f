#include "admin_ui/admin_namespace.h"

#include <atomic>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "admin_ui/serialize.h"
#include "bus/routing.h"
#include "edge/socketio/broadcast.h"
#include "edge/socketio/client.h"
#include "edge/socketio/packet.h"
#include "edge/socketio/socket.h"
#include "proto/convert.h"
#include "spdlog/spdlog.h"

namespace switchboard::admin_ui {
namespace {

constexpr auto kHealthy = std::chrono::seconds(10);  // the UI's own threshold

std::string StringArg(const Json& args, size_t i) {
  return i < args.size() && args[i].is_string() ? args[i].get<std::string>() : std::string();
}

// The arguments of an EVENT packet as encoded for the wire ("42[...]", "42/chat,[...]", with an
// ack id after the namespace): its JSON array; empty for anything else (binary packets too).
std::string_view EventJson(const std::vector<eio::Frame>& frames) {
  if (frames.size() != 1 || frames[0].binary || !frames[0].bytes) return {};
  std::string_view text = *frames[0].bytes;
  if (!text.starts_with("42")) return {};
  text.remove_prefix(2);
  if (text.starts_with('/')) {
    const size_t comma = text.find(',');
    if (comma == std::string_view::npos) return {};
    text.remove_prefix(comma + 1);
  }
  while (!text.empty() && text.front() >= '0' && text.front() <= '9') text.remove_prefix(1);
  return text.starts_with('[') ? text : std::string_view();
}

constexpr size_t kMaxNamedRecipients = 100;

// The UI's `filter`: a room (a socket id is a room of its own) or nothing (the whole namespace).
v1::Selector SelectorOf(const std::string& nsp, const std::string& filter) {
  v1::Selector selector;
  selector.set_namespace_(nsp);
  if (filter.empty()) {
    selector.set_all_sockets(true);
  } else {
    selector.add_rooms(filter);
  }
  return selector;
}

}  // namespace

struct AdminNamespace::Core : std::enable_shared_from_this<Core> {
  Core(sio::Server& s, bus::Bus& b, cluster::BrokerApiClient& a, std::string id, Options o)
      : server(s),
        nsp(s.Of(o.nsp)),
        bus(b),
        api(a),
        edge_id(std::move(id)),
        options(std::move(o)),
        tokens(options.username, options.password_hash),
        event_subject(bus::AdminEventSubject(edge_id)) {}

  sio::Server& server;
  sio::Namespace& nsp;
  bus::Bus& bus;
  cluster::BrokerApiClient& api;
  const std::string edge_id;
  const Options options;
  PasswordChecker checker;
  const SessionTokens tokens;
  const std::string event_subject;

  std::mutex mu;
  size_t watchers = 0;  // admin sockets connected to this edge
  // Development mode with watchers: this edge's own changes and events are told to them.
  std::atomic<bool> watching{false};
  struct Server {
    Json stats;
    std::chrono::steady_clock::time_point heard;
    bool gone = false;
  };
  std::map<std::string, Server> servers;  // by server id (edge id)
  bus::SubscriptionPtr stats_subscription;
  bus::SubscriptionPtr membership_subscription;  // development mode, while watched
  bus::SubscriptionPtr events_subscription;      // development mode, while watched

  // To every admin socket of this edge.
  void EmitToAll(std::string_view event, Json args) {
    nsp.Deliver(std::make_shared<const sio::Delivery>(
        sio::Delivery{{}, sio::Encode(sio::MakeEvent(nsp.name(), event, std::move(args)))}));
  }
  // To one admin socket, from any thread.
  void EmitTo(const sio::SocketPtr& socket, std::string event, Json args) {
    server.runtime().Post(socket->client().shard(),
                          [socket, event = std::move(event), args = std::move(args)]() mutable {
                            if (socket->connected()) socket->Emit(event, std::move(args));
                          });
  }

  // The CONNECT's auth carries a session id of an earlier login.
  bool HasValidSession(const Json& auth) const {
    auto it = auth.find("sessionId");
    return it != auth.end() && it->is_string() &&
           tokens.Valid(it->get<std::string>(), std::chrono::system_clock::now());
  }

  void Authenticate(const sio::SocketPtr& socket, sio::Next next) {
    if (!options.auth) return next(std::nullopt);
    const Json& auth = socket->auth();
    if (HasValidSession(auth)) return next(std::nullopt);
    auto user = auth.find("username");
    auto password = auth.find("password");
    if (user == auth.end() || !user->is_string() || *user != options.username ||
        password == auth.end() || !password->is_string()) {
      return next(sio::ConnectError{"invalid credentials", nullptr});
    }
    const size_t shard = socket->client().shard();
    checker.Check(password->get<std::string>(), options.password_hash,
                  // Not the core: the checker is its member, and must not end it.
                  [runtime = &server.runtime(), shard, next = std::move(next)](bool ok) {
                    runtime->Post(shard, [ok, next] {
                      next(ok ? std::nullopt
                              : std::optional(sio::ConnectError{"invalid credentials", nullptr}));
                    });
                  });
  }

  void OnConnected(const sio::SocketPtr& socket) {
    // After the CONNECT reply: the UI registers its listeners in its connect handler.
    if (options.auth && !HasValidSession(socket->auth())) {  // a password login
      socket->Emit("session", Json::array({tokens.Issue(std::chrono::system_clock::now())}));
    }
    socket->Emit("config", Json::array({{{"supportedFeatures", Features(options)}}}));
    {
      std::lock_guard lock(mu);
      // The servers heard lately, so that the UI lists them at once.
      const auto now = std::chrono::steady_clock::now();
      for (const auto& [id, known] : servers) {
        if (now - known.heard < kHealthy) socket->Emit("server_stats", Json::array({known.stats}));
      }
      if (++watchers == 1 && options.development) {
        Watch();
        watching = true;
      }
    }
    if (options.development) {
      ListSockets([self = shared_from_this(), socket](Json sockets) {
        self->EmitTo(socket, "all_sockets", Json::array({std::move(sockets)}));
      });
    }
  }

  void OnDisconnected() {
    bus::SubscriptionPtr membership, events;  // unsubscribed outside the lock
    std::lock_guard lock(mu);
    if (watchers > 0 && --watchers == 0) {
      watching = false;
      membership = std::move(membership_subscription);
      events = std::move(events_subscription);
    }
  }

  // Development mode, under mu: every edge's changes, while someone watches here.
  void Watch() {
    std::weak_ptr<Core> weak = weak_from_this();
    // Other edges' (this edge's own come through OnLocalMembership and OnClientEvent; a bus
    // that echoes, the in-process one, brings them too: dropped).
    auto membership = bus.Subscribe(bus::kAllMembership, [weak](bus::Message message) {
      v1::MembershipEvent event;
      auto self = weak.lock();
      if (self && event.ParseFromString(message.payload) && event.edge_id() != self->edge_id) {
        self->OnMembership(event);
      }
    });
    auto events = bus.Subscribe(bus::kAllAdminEvents, [weak](bus::Message message) {
      v1::AdminClientEvent event;
      auto self = weak.lock();
      if (self && event.ParseFromString(message.payload) && event.edge_id() != self->edge_id) {
        self->OnClientEventMessage(event);
      }
    });
    if (!membership.ok() || !events.ok()) {
      spdlog::warn(
          "admin ui: cannot follow the cluster's changes: {}",
          std::string((!membership.ok() ? membership.status() : events.status()).message()));
    }
    if (membership.ok()) membership_subscription = std::move(*membership);
    if (events.ok()) events_subscription = std::move(*events);
  }

  // The sockets of the whole cluster from the brokers' index, page by page, at most
  // max_listed_sockets of them.
  void ListSockets(std::function<void(Json)> done) {
    auto sockets = std::make_shared<Json>(Json::array());
    NextPage(std::move(done), std::move(sockets), "");
  }
  void NextPage(std::function<void(Json)> done, std::shared_ptr<Json> sockets, std::string token) {
    const size_t wanted = options.max_listed_sockets - sockets->size();
    if (wanted == 0) return done(std::move(*sockets));
    v1::ListSocketsRequest request;
    request.set_page_size(static_cast<uint32_t>(std::min<size_t>(wanted, 1000)));
    request.set_page_token(token);
    api.ListSockets(request, [self = shared_from_this(), done = std::move(done),
                              sockets](absl::StatusOr<v1::ListSocketsResponse> page) mutable {
      if (!page.ok()) {
        spdlog::warn("admin ui: cannot list the sockets: {}", std::string(page.status().message()));
        return done(std::move(*sockets));
      }
      for (const v1::SocketInfo& socket : page->sockets()) {
        if (sockets->size() == self->options.max_listed_sockets) break;
        sockets->push_back(SerializeSocket(socket));
      }
      if (page->next_page_token().empty()) return done(std::move(*sockets));
      self->NextPage(std::move(done), std::move(sockets), page->next_page_token());
    });
  }

  void OnStats(const v1::AdminServerStats& stats) {
    Json json = ServerStatsJson(stats);
    bool relist = false;
    {
      std::lock_guard lock(mu);
      const auto now = std::chrono::steady_clock::now();
      Server& known = servers[stats.server_id()];
      known.stats = json;
      known.stats["aggregatedEvents"] = Json::array();  // counted once, when they arrive
      known.heard = now;
      known.gone = false;
      // An edge that went silent took its sockets along, and no membership event says so
      // (the brokers dropped them from the index by now): list the sockets again.
      for (auto& [id, other] : servers) {
        if (!other.gone && now - other.heard > kHealthy) {
          other.gone = true;
          relist = options.development && watchers > 0;
        }
      }
    }
    EmitToAll("server_stats", Json::array({std::move(json)}));
    if (relist) {
      ListSockets([self = shared_from_this()](Json sockets) {
        self->EmitToAll("all_sockets", Json::array({std::move(sockets)}));
      });
    }
  }

  void OnMembership(const v1::MembershipEvent& event) {
    const auto time = proto::FromTimestamp(event.time());
    const std::string when = IsoTime(event.has_time() ? time : std::chrono::system_clock::now());
    switch (event.change_case()) {
      case v1::MembershipEvent::kConnected: {
        Json socket = SerializeSocket(event.connected().socket());
        return EmitToAll("socket_connected", Json::array({std::move(socket), when}));
      }
      case v1::MembershipEvent::kDisconnected: {
        const auto& d = event.disconnected();
        return EmitToAll("socket_disconnected",
                         Json::array({d.namespace_(), d.socket_id(), d.reason(), when}));
      }
      case v1::MembershipEvent::kJoined: {
        const auto& j = event.joined();
        return EmitToAll("room_joined",
                         Json::array({j.namespace_(), j.room(), j.socket_id(), when}));
      }
      case v1::MembershipEvent::kLeft: {
        const auto& l = event.left();
        return EmitToAll("room_left", Json::array({l.namespace_(), l.room(), l.socket_id(), when}));
      }
      case v1::MembershipEvent::kTransportChanged: {
        const auto& t = event.transport_changed();
        return EmitToAll("socket_updated",
                         Json::array({{{"id", t.socket_id()},
                                       {"nsp", t.namespace_()},
                                       {"transport", TransportName(t.transport())}}}));
      }
      default: return;  // moves: the socket stays as the UI knows it
    }
  }

  void OnClientEventMessage(const v1::AdminClientEvent& event) {
    Json args = Json::parse(event.args_json(), nullptr, /*allow_exceptions=*/false);
    if (!args.is_array()) return;
    const auto time = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::milliseconds(event.timestamp_ms())));
    if (event.sent_to().empty()) {
      EmitToAll("event_received", Json::array({event.namespace_(), event.socket_id(),
                                               std::move(args), IsoTime(time)}));
      return;
    }
    for (const std::string& id : event.sent_to()) {
      EmitToAll("event_sent", Json::array({event.namespace_(), id, args, IsoTime(time)}));
    }
  }

  // The UI's actions, through the brokers (the gRPC API's code).
  void InstallActions() {
    auto self = shared_from_this();
    auto report = [](std::string_view what) {
      return [what](const absl::Status& status) {
        if (!status.ok())
          spdlog::warn("admin ui: {} failed: {}", what, std::string(status.message()));
      };
    };
    nsp.On("emit", [self, report](const sio::SocketPtr&, std::string_view, Json& args, sio::Ack) {
      // emit(nsp, filter, ev, ...args)
      if (args.size() < 3 || !args[0].is_string() || !args[2].is_string()) return;
      v1::PublishRequest request;
      request.mutable_target()->set_namespace_(args[0].get<std::string>());
      if (std::string filter = StringArg(args, 1); !filter.empty()) {
        request.mutable_target()->add_rooms(filter);
      }
      request.set_event(args[2].get<std::string>());
      for (size_t i = 3; i < args.size(); ++i) request.add_args()->set_json(args[i].dump());
      self->api.Publish(request, [done = report("emit")](absl::StatusOr<v1::PublishResponse> r) {
        done(r.status());
      });
    });
    for (const char* verb : {"join", "leave"}) {
      const bool join = std::string_view(verb) == "join";
      nsp.On(verb,
             [self, report, join](const sio::SocketPtr&, std::string_view, Json& args, sio::Ack) {
               // join(nsp, room, filter) / leave(nsp, room, filter)
               const std::string room = StringArg(args, 1);
               if (args.empty() || !args[0].is_string() || room.empty()) return;
               v1::Selector selector = SelectorOf(args[0].get<std::string>(), StringArg(args, 2));
               if (join) {
                 v1::JoinRoomsRequest request;
                 *request.mutable_selector() = std::move(selector);
                 request.add_rooms(room);
                 self->api.JoinRooms(
                     request, [done = report("join")](absl::StatusOr<v1::JoinRoomsResponse> r) {
                       done(r.status());
                     });
               } else {
                 v1::LeaveRoomsRequest request;
                 *request.mutable_selector() = std::move(selector);
                 request.add_rooms(room);
                 self->api.LeaveRooms(
                     request, [done = report("leave")](absl::StatusOr<v1::LeaveRoomsResponse> r) {
                       done(r.status());
                     });
               }
             });
    }
    nsp.On("_disconnect", [self, report](const sio::SocketPtr&, std::string_view, Json& args,
                                         sio::Ack) {
      // _disconnect(nsp, close, filter)
      if (args.empty() || !args[0].is_string()) return;
      v1::DisconnectSocketsRequest request;
      *request.mutable_selector() = SelectorOf(args[0].get<std::string>(), StringArg(args, 2));
      request.set_close(args.size() > 1 && args[1].is_boolean() && args[1].get<bool>());
      self->api.DisconnectSockets(
          request, [done = report("disconnect")](absl::StatusOr<v1::DisconnectSocketsResponse> r) {
            done(r.status());
          });
    });
  }
};

std::vector<std::string> AdminNamespace::Features(const Options& options) {
  std::vector<std::string> features;
  if (!options.readonly) {
    features = {"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"};
  }
  features.push_back("AGGREGATED_EVENTS");
  if (options.development) features.push_back("ALL_EVENTS");
  return features;
}

absl::StatusOr<std::unique_ptr<AdminNamespace>> AdminNamespace::Install(
    sio::Server& server, bus::Bus& bus, cluster::BrokerApiClient& api, std::string edge_id,
    Options options) {
  if (server.Find(options.nsp) != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("adminUi.namespace: \"", options.nsp, "\" is an application namespace"));
  }
  auto core = std::make_shared<Core>(server, bus, api, std::move(edge_id), std::move(options));
  std::weak_ptr<Core> weak = core;
  core->nsp.Use([weak](const sio::SocketPtr& socket, sio::Next next) {
    if (auto self = weak.lock()) return self->Authenticate(socket, std::move(next));
    next(sio::ConnectError{"server shutting down", nullptr});
  });
  core->nsp.OnConnection([weak](const sio::SocketPtr& socket) {
    if (auto self = weak.lock()) self->OnConnected(socket);
  });
  core->nsp.OnDisconnect([weak](const sio::SocketPtr&, std::string_view) {
    if (auto self = weak.lock()) self->OnDisconnected();
  });
  if (!core->options.readonly) core->InstallActions();
  // Other edges' stats (this edge's own come through OnLocalStats).
  auto stats = bus.Subscribe(bus::kAllAdminStats, [weak](bus::Message message) {
    v1::AdminServerStats stats;
    auto self = weak.lock();
    if (self && stats.ParseFromString(message.payload) && stats.server_id() != self->edge_id) {
      self->OnStats(stats);
    }
  });
  if (!stats.ok()) return stats.status();
  core->stats_subscription = std::move(*stats);
  std::unique_ptr<AdminNamespace> admin(new AdminNamespace(core));
  if (core->options.development) server.SetEventTap(admin.get());
  if (!core->options.auth) {
    spdlog::warn("admin ui: on {} without a login (adminUi.auth is false)", core->options.nsp);
  }
  return admin;
}

AdminNamespace::AdminNamespace(std::shared_ptr<Core> core) : core_(std::move(core)) {}

AdminNamespace::~AdminNamespace() {
  if (core_->server.event_tap() == this) core_->server.SetEventTap(nullptr);
  // Unsubscribed outside the lock: a handler still running may be waiting for it.
  bus::SubscriptionPtr subscriptions[3];
  {
    std::lock_guard lock(core_->mu);
    subscriptions[0] = std::move(core_->stats_subscription);
    subscriptions[1] = std::move(core_->membership_subscription);
    subscriptions[2] = std::move(core_->events_subscription);
  }
}

void AdminNamespace::OnLocalStats(const v1::AdminServerStats& stats) { core_->OnStats(stats); }

void AdminNamespace::OnLocalMembership(const v1::MembershipEvent& event) {
  if (!core_->watching.load(std::memory_order_relaxed)) return;
  // Under the journal's lock: delivered from a shard's queue (posted in order).
  core_->server.runtime().Post(0, [weak = std::weak_ptr<Core>(core_), event] {
    if (auto self = weak.lock()) self->OnMembership(event);
  });
}

void AdminNamespace::OnDelivered(const sio::Namespace& nsp, const sio::Delivery& delivery,
                                 const std::vector<sio::Socket*>& recipients) {
  if (&nsp == &core_->nsp) return;  // what the UIs themselves get
  const std::string_view args = EventJson(delivery.frames);
  if (args.empty()) return;
  v1::AdminClientEvent message;
  message.set_namespace_(nsp.name());
  message.set_args_json(std::string(args));
  message.set_timestamp_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
  message.set_edge_id(core_->edge_id);
  for (size_t i = 0; i < recipients.size() && i < kMaxNamedRecipients; ++i) {
    message.add_sent_to(recipients[i]->id());
  }
  (void)core_->bus.Publish(core_->event_subject, message.SerializeAsString());
  if (core_->watching.load(std::memory_order_relaxed)) core_->OnClientEventMessage(message);
}

void AdminNamespace::OnClientEvent(const sio::Namespace& nsp, const sio::Socket& socket,
                                   std::string_view event, sio::EventArgs& args) {
  if (&nsp == &core_->nsp) return;
  std::string json = Json(std::string(event)).dump();
  if (args.has_text()) {
    if (!args.text().empty()) json.append(",").append(args.text());
  } else {
    for (const Json& arg : args.json()) json.append(",").append(arg.dump());
  }
  v1::AdminClientEvent message;
  message.set_namespace_(nsp.name());
  message.set_socket_id(socket.id());
  message.set_args_json("[" + json + "]");
  message.set_timestamp_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
  message.set_edge_id(core_->edge_id);
  (void)core_->bus.Publish(core_->event_subject, message.SerializeAsString());
  if (core_->watching.load(std::memory_order_relaxed)) core_->OnClientEventMessage(message);
}

}  // namespace switchboard::admin_ui
