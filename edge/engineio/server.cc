#include "edge/engineio/server.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "base/shrink_when_sparse.h"
#include "edge/engineio/errors.h"
#include "edge/engineio/heartbeat_queue.h"
#include "edge/engineio/transports/polling.h"
#include "edge/engineio/transports/websocket.h"
#include "edge/engineio/websocket_handshake.h"
#include "edge/http/query.h"
#include "edge/http/session.h"
#include "edge/ids.h"

namespace switchboard::eio {
namespace net = boost::asio;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using HttpPtr = std::shared_ptr<edge::HttpSession>;

struct Server::ShardState {
  explicit ShardState(net::io_context& ioc) : pings(ioc), pongs(ioc) {}
  // Keyed by the session's own id string (the map holds the session).
  absl::flat_hash_map<std::string_view, SessionPtr> sessions;
  HeartbeatQueue pings;  // sessions waiting to send a ping
  HeartbeatQueue pongs;  // sessions waiting for a pong
};

struct alignas(64) Server::ShardStats {
  std::atomic<uint64_t> counters[static_cast<size_t>(Counter::kCount)] = {};
  std::atomic<uint64_t> closes[static_cast<size_t>(CloseReason::kCount)] = {};
  std::atomic<int64_t> open_polling{0};
  std::atomic<int64_t> open_websocket{0};
};

namespace {

// Whether `origin` ("scheme://host[:port]") names the very listener a request reached at `host`
// (its Host header). Either scheme: whether TLS ended before this listener is not known here.
bool SameOrigin(std::string_view origin, std::string_view host) {
  if (host.empty()) return false;
  for (std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (origin.starts_with(scheme)) {
      return boost::beast::iequals(origin.substr(scheme.size()), host);
    }
  }
  return false;
}

template <class T>
void Bump(std::atomic<T>& counter, T n) {
  // Single writer (the shard): a plain load and store, no locked instruction.
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
}  // namespace

std::string_view Server::CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kTransportClose: return "transport close";
    case CloseReason::kTransportError: return "transport error";
    case CloseReason::kPingTimeout: return "ping timeout";
    case CloseReason::kParseError: return "parse error";
    case CloseReason::kForcedClose: return "forced close";
    case CloseReason::kServerShuttingDown: return "server shutting down";
    case CloseReason::kSendQueueOverflow: return "send queue overflow";
    default: return "other";
  }
}

void Server::Count(size_t shard, Counter counter, uint64_t n) {
  Bump(stats_[shard]->counters[static_cast<size_t>(counter)], n);
}

void Server::CountClose(size_t shard, std::string_view reason) {
  size_t i = static_cast<size_t>(CloseReason::kOther);
  for (size_t r = 0; r < static_cast<size_t>(CloseReason::kOther); ++r) {
    if (CloseReasonName(static_cast<CloseReason>(r)) == reason) i = r;
  }
  Bump(stats_[shard]->closes[i], uint64_t{1});
}

void Server::CountOpen(size_t shard, std::string_view transport, int delta) {
  Bump(transport == "websocket" ? stats_[shard]->open_websocket : stats_[shard]->open_polling,
       static_cast<int64_t>(delta));
}

Server::Stats Server::stats() const {
  Stats out;
  for (const auto& shard : stats_) {
    for (size_t i = 0; i < static_cast<size_t>(Counter::kCount); ++i) {
      out.counters[i] += shard->counters[i].load(std::memory_order_relaxed);
    }
    for (size_t i = 0; i < static_cast<size_t>(CloseReason::kCount); ++i) {
      out.closes[i] += shard->closes[i].load(std::memory_order_relaxed);
    }
    out.open_polling += shard->open_polling.load(std::memory_order_relaxed);
    out.open_websocket += shard->open_websocket.load(std::memory_order_relaxed);
  }
  return out;
}

HeartbeatQueue& Server::ping_queue(size_t shard) { return shards_[shard]->pings; }
HeartbeatQueue& Server::pong_queue(size_t shard) { return shards_[shard]->pongs; }

Server::Server(edge::Runtime& runtime, Options options)
    : runtime_(runtime),
      options_(std::move(options)),
      handshake_limiter_(options_.handshake_rate.rate,
                         options_.handshake_rate.max_tracked_addresses) {
  for (size_t i = 0; i < runtime_.size(); ++i) {
    shards_.push_back(std::make_unique<ShardState>(runtime_.context(i)));
    stats_.push_back(std::make_unique<ShardStats>());
  }
}

Server::~Server() = default;

void Server::HandleRequest(const HttpPtr& http) {
  const auto& req = http->request();
  if (!OriginAllowed(http)) {
    forbidden_origin_.fetch_add(1, std::memory_order_relaxed);
    return SendError(http, 403, kForbidden, "Forbidden");
  }
  if (req.method() == http::verb::options) return Preflight(http);

  std::string_view eio, transport, sid;
  auto query = edge::ParseQuery(req.target());
  for (const auto& [key, value] : query) {
    if (key == "EIO") eio = value;
    if (key == "transport") transport = value;
    if (key == "sid") sid = value;
  }
  bool is_upgrade = websocket::is_upgrade(req);
  bool polling = transport == "polling" && options_.allow_polling;
  bool ws = transport == "websocket" && options_.allow_websocket;
  if (!polling && !ws) return SendError(http, 400, kUnknownTransport, "Transport unknown");
  if (eio != "4") {
    return SendError(http, 400, kUnsupportedProtocolVersion, "Unsupported protocol version");
  }

  if (sid.empty()) {
    if (req.method() != http::verb::get) {
      return SendError(http, 400, kBadHandshakeMethod, "Bad handshake method");
    }
    if (ws && !is_upgrade) return SendError(http, 400, kBadRequest, "Bad request");
    if (draining_.load(std::memory_order_relaxed)) {
      draining_refused_.fetch_add(1, std::memory_order_relaxed);
      return SendError(http, 503, kRefused, "Server shutting down");
    }
    if (!handshake_limiter_.Allow(ClientKey(http->remote_address()))) {
      handshake_rate_.fetch_add(1, std::memory_order_relaxed);
      return SendError(http, 429, kRefused, "Too many requests");
    }
    if (!ReserveSession()) {
      at_capacity_.fetch_add(1, std::memory_order_relaxed);
      return SendError(http, 503, kRefused, "Server at capacity");
    }
    return Handshake(http, ws);
  }

  if (!options_.node_id.empty()) {
    // "<edge>.<local id>": another edge's session is passed on to its owner.
    std::string_view owner = edge::EdgeOfSocketId(sid);
    if (owner.empty()) return SendError(http, 400, kUnknownSid, "Session ID unknown");
    if (owner != options_.node_id) {
      bool get = req.method() == http::verb::get;
      bool post = req.method() == http::verb::post;
      if (ws && !is_upgrade) return SendError(http, 400, kBadRequest, "Bad request");
      if (!ws && !get && !post) return SendError(http, 400, kBadRequest, "Bad request");
      const ForeignHandler& handler = ws ? on_foreign_upgrade_ : on_foreign_poll_;
      if (!handler) return SendError(http, 400, kUnknownSid, "Session ID unknown");
      return handler(http, owner, sid);
    }
    sid.remove_prefix(owner.size() + 1);
  }

  int shard = edge::ShardOfId(sid);
  if (shard < 0 || static_cast<size_t>(shard) >= runtime_.size()) {
    return SendError(http, 400, kUnknownSid, "Session ID unknown");
  }
  if (static_cast<size_t>(shard) != http->shard()) return http->MigrateTo(shard);

  SessionPtr session = FindSession(shard, sid);
  if (!session) return SendError(http, 400, kUnknownSid, "Session ID unknown");

  if (ws) {
    if (!is_upgrade) return SendError(http, 400, kBadRequest, "Bad request");
    // Like the reference server: a WebSocket for a session that is already
    // upgrading or upgraded is accepted, then closed at once.
    return Upgrade(http, session);
  }
  if (req.method() != http::verb::get && req.method() != http::verb::post) {
    return SendError(http, 400, kBadRequest, "Bad request");
  }
  Poll(session, req.method() == http::verb::post, std::make_shared<HttpExchange>(*this, http));
}

SessionPtr Server::FindSession(size_t shard, std::string_view local_id) {
  auto& sessions = shards_[shard]->sessions;
  auto it = sessions.find(local_id);
  if (it == sessions.end()) return nullptr;
  SessionPtr session = it->second;
  if (!session->CheckHeartbeat()) return nullptr;
  return session;
}

void Server::Poll(const SessionPtr& session, bool post, const PollExchangePtr& request) {
  // HTTP requests of the session's own are those of its polling transport
  // (none once it has upgraded).
  auto* on_polling = dynamic_cast<PollingTransport*>(session->transport());
  if (on_polling == nullptr) return request->SendError(400, kBadRequest, "Bad request");
  if (post) return on_polling->HandlePost(request);
  on_polling->HandleGet(request);
}

void Server::ServePoll(std::string_view local_id, bool post, PollExchangePtr request) {
  int shard = edge::ShardOfId(local_id);
  if (shard < 0 || static_cast<size_t>(shard) >= runtime_.size()) {
    return request->SendError(400, kUnknownSid, "Session ID unknown");
  }
  auto serve = [this, shard, id = std::string(local_id), post, request = std::move(request)] {
    SessionPtr session = FindSession(shard, id);
    if (!session) return request->SendError(400, kUnknownSid, "Session ID unknown");
    Poll(session, post, request);
  };
  // Runtime::CurrentShard() would not do: the caller may be another
  // runtime's shard (edges sharing a process in tests).
  if (runtime_.context(shard).get_executor().running_in_this_thread()) return serve();
  runtime_.Post(shard, std::move(serve));
}

std::string Server::PublicSid(std::string_view local_id) const {
  if (options_.node_id.empty()) return std::string(local_id);
  return edge::MakeSocketId(options_.node_id, local_id);
}

void Server::Handshake(const HttpPtr& http, bool websocket) {
  size_t shard = http->shard();
  const auto& req = http->request();
  const auto& kept = options_.handshake_headers;
  auto keeps = [&kept](std::string_view name) {
    return !kept || std::any_of(kept->begin(), kept->end(), [name](const std::string& k) {
      return boost::beast::iequals(k, name);
    });
  };
  size_t header_bytes = 0;
  for (const auto& field : req) {
    if (keeps(field.name_string())) {
      header_bytes += field.name_string().size() + field.value().size() + 4;
    }
  }
  eio::Handshake handshake(http->remote_address(), req.target(), std::chrono::system_clock::now(),
                           header_bytes);
  for (const auto& field : req) {
    if (keeps(field.name_string())) handshake.AddHeader(field.name_string(), field.value());
  }

  std::string id = edge::NewId(shard);
  if (!websocket) {
    auto transport = std::make_shared<PollingTransport>(*this, shard);
    auto session = std::make_shared<Session>(*this, std::move(id), shard, std::move(handshake));
    shards_[shard]->sessions.emplace(session->id(), session);
    Count(shard, Counter::kHandshakesPolling);
    // The open packet answers the handshake GET.
    SendPayload(http, session->Open(std::move(transport),
                                    options_.allow_upgrades && options_.allow_websocket));
    if (on_connection_) on_connection_(session);
    return;
  }
  auto response = ws::UpgradeResponse(req);
  if (!response.ok()) {
    session_count_.fetch_sub(1, std::memory_order_relaxed);  // the reserved slot
    return SendError(http, 400, kBadRequest, "Bad request");
  }
  auto transport = std::make_shared<WebSocketTransport>(
      http->TakeStream().release_socket(), std::move(*response), options_.max_http_buffer_size,
      http->write_timeout());
  auto session = std::make_shared<Session>(*this, std::move(id), shard, std::move(handshake));
  shards_[shard]->sessions.emplace(session->id(), session);
  Count(shard, Counter::kHandshakesWebSocket);
  // The open packet is the first message after the 101.
  std::string open = session->Open(std::move(transport), false);
  session->Send(Frame{std::make_shared<const std::string>(std::move(open)), false});
  if (on_connection_) on_connection_(session);
}

void Server::Upgrade(const HttpPtr& http, const SessionPtr& session) {
  auto response = ws::UpgradeResponse(http->request());
  if (!response.ok()) return SendError(http, 400, kBadRequest, "Bad request");
  auto transport = std::make_shared<WebSocketTransport>(
      http->TakeStream().release_socket(), std::move(*response), options_.max_http_buffer_size,
      http->write_timeout());
  // Like the reference server: a WebSocket for a session that is already
  // upgrading or upgraded is accepted, then closed at once.
  if (!session->CanUpgrade(*transport)) return transport->CloseConnection();
  session->HandleUpgrade(transport);
}

void Server::CloseAll(std::function<void()> done) {
  auto remaining = std::make_shared<std::atomic<size_t>>(runtime_.size());
  for (size_t shard = 0; shard < runtime_.size(); ++shard) {
    runtime_.Post(shard, [this, shard, remaining, done] {
      // Closing unregisters, so iterate over a copy.
      std::vector<SessionPtr> sessions;
      for (auto& [id, session] : shards_[shard]->sessions) sessions.push_back(session);
      for (auto& session : sessions) session->Close("server shutting down");
      if (remaining->fetch_sub(1) == 1 && done) done();
    });
  }
}

void Server::CloseSpread(std::chrono::milliseconds window) {
  draining_.store(true, std::memory_order_relaxed);
  for (size_t shard = 0; shard < runtime_.size(); ++shard) {
    runtime_.Post(shard, [this, shard, window] {
      auto order = std::make_shared<std::vector<std::weak_ptr<Session>>>();
      for (auto& [id, session] : shards_[shard]->sessions) order->push_back(session);
      std::shuffle(order->begin(), order->end(), std::mt19937(std::random_device{}()));
      const auto start = std::chrono::steady_clock::now();
      const auto end = start + window;
      auto timer = std::make_shared<boost::asio::steady_timer>(runtime_.context(shard));
      auto next = std::make_shared<size_t>(0);
      // Each tick closes the sessions whose turn has come: session i at
      // start + window * (i + 1) / n.
      // Only the pending wait holds the tick (it refers to itself weakly), so
      // nothing leaks when the runtime stops first.
      auto tick = std::make_shared<std::function<void()>>();
      std::weak_ptr<std::function<void()>> weak_tick = tick;
      *tick = [this, shard, order, start, end, window, timer, next, weak_tick] {
        const auto now = std::chrono::steady_clock::now();
        const size_t n = order->size();
        // Session i's turn: start + window * (i + 1) / n.
        auto turn = [&](size_t i) {
          return start + window * static_cast<int64_t>(i + 1) / static_cast<int64_t>(n);
        };
        while (*next < n && (now >= end || turn(*next) <= now)) {
          if (auto session = (*order)[(*next)++].lock()) session->Close("server shutting down");
        }
        if (now >= end) {
          std::vector<SessionPtr> rest;
          for (auto& [id, session] : shards_[shard]->sessions) rest.push_back(session);
          for (auto& session : rest) session->Close("server shutting down");
          return;
        }
        timer->expires_at(
            *next < n ? std::min<std::chrono::steady_clock::time_point>(turn(*next), end) : end);
        timer->async_wait([self = weak_tick.lock()](boost::system::error_code ec) {
          if (!ec) (*self)();
        });
      };
      (*tick)();
    });
  }
}

void Server::Unregister(const Session& session) {
  // By the session's shard, not its id's: a session that moved here keeps
  // the id its first edge made.
  auto& sessions = shards_[session.shard()]->sessions;
  auto it = sessions.find(session.id());
  if (it == sessions.end() || it->second.get() != &session) return;
  sessions.erase(it);
  base::ShrinkWhenSparse(sessions);
  session_count_.fetch_sub(1, std::memory_order_relaxed);
}

std::shared_ptr<Transport> Server::AcceptWebSocket(const HttpPtr& http) {
  auto response = ws::UpgradeResponse(http->request());
  if (!response.ok()) {
    SendError(http, 400, kBadRequest, "Bad request");
    return nullptr;
  }
  return std::make_shared<WebSocketTransport>(http->TakeStream().release_socket(),
                                              std::move(*response), options_.max_http_buffer_size,
                                              http->write_timeout());
}

void Server::WithSession(std::string_view local_id, std::function<void(const SessionPtr&)> visit) {
  int shard = edge::ShardOfId(local_id);
  if (shard < 0 || static_cast<size_t>(shard) >= runtime_.size()) return visit(nullptr);
  runtime_.Post(shard, [this, shard, id = std::string(local_id), visit = std::move(visit)] {
    auto& sessions = shards_[shard]->sessions;
    auto it = sessions.find(id);
    visit(it == sessions.end() ? nullptr : it->second);
  });
}

SessionPtr Server::AdoptSession(std::string_view local_id, eio::Handshake handshake,
                                std::shared_ptr<Transport> transport,
                                const std::vector<Frame>& queued) {
  int current = edge::Runtime::CurrentShard();
  size_t shard = current < 0 ? 0 : static_cast<size_t>(current);
  session_count_.fetch_add(1, std::memory_order_relaxed);
  auto session = std::make_shared<Session>(*this, local_id, shard, std::move(handshake));
  auto [it, inserted] = shards_[shard]->sessions.emplace(session->id(), session);
  if (!inserted) {  // an id made twice: 114 random bits say never; refuse it all the same
    session_count_.fetch_sub(1, std::memory_order_relaxed);
    transport->Close(Transport::CloseMode::kFlush);
    return nullptr;
  }
  Count(shard, Counter::kMovesIn);
  (void)session->Open(std::move(transport), false);  // the client has its open packet
  for (const Frame& frame : queued) session->Send(frame);
  return session;
}

bool Server::ReserveSession() {
  size_t before = session_count_.fetch_add(1, std::memory_order_relaxed);
  if (options_.max_connections == 0 || before < options_.max_connections) return true;
  session_count_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

Server::LimitCounters Server::limit_counters() const {
  LimitCounters c;
  c.at_capacity = at_capacity_.load(std::memory_order_relaxed);
  c.handshake_rate = handshake_rate_.load(std::memory_order_relaxed);
  c.forbidden_origin = forbidden_origin_.load(std::memory_order_relaxed);
  c.payload_too_large = payload_too_large_.load(std::memory_order_relaxed);
  c.draining = draining_refused_.load(std::memory_order_relaxed);
  return c;
}

bool Server::OriginAllowed(const HttpPtr& http) const {
  const auto& origins = options_.cors.origins;
  if (origins.empty()) return true;
  if (std::find(origins.begin(), origins.end(), "*") != origins.end()) return true;
  const auto& req = http->request();
  auto it = req.find(http::field::origin);
  // Non-browser clients send no Origin: CORS is a browser matter.
  if (it == req.end()) return true;
  const std::string_view origin = it->value();
  if (std::find(origins.begin(), origins.end(), origin) != origins.end()) return true;
  // A page this listener served (the Admin UI) is same-origin.
  if (!options_.cors.allow_same_origin) return false;
  auto host = req.find(http::field::host);
  return host != req.end() && SameOrigin(origin, host->value());
}

template <class Message>
void Server::AddCors(const HttpPtr& http, Message& res) const {
  const auto& cors = options_.cors;
  if (cors.origins.empty()) return;
  const auto& req = http->request();
  auto origin_it = req.find(http::field::origin);
  std::string_view origin =
      origin_it == req.end() ? std::string_view() : std::string_view(origin_it->value());
  bool any = std::find(cors.origins.begin(), cors.origins.end(), "*") != cors.origins.end();
  bool listed = !origin.empty() &&
                std::find(cors.origins.begin(), cors.origins.end(), origin) != cors.origins.end();
  if (any && !cors.credentials) {
    res.set(http::field::access_control_allow_origin, "*");
  } else if (listed || (any && !origin.empty())) {
    res.set(http::field::access_control_allow_origin, origin);
    res.set(http::field::vary, "Origin");
  } else {
    return;
  }
  if (cors.credentials) res.set(http::field::access_control_allow_credentials, "true");
}

void Server::Preflight(const HttpPtr& http) {
  edge::Response res{http::status::no_content, 11};
  AddCors(http, res);
  res.set(http::field::access_control_allow_methods, "GET,HEAD,PUT,PATCH,POST,DELETE");
  const auto& req = http->request();
  auto headers = req.find(http::field::access_control_request_headers);
  if (headers != req.end()) {
    res.set(http::field::access_control_allow_headers, headers->value());
  }
  http->Send(std::move(res));
}

void Server::SendError(const HttpPtr& http, int status, int code, std::string_view message) {
  edge::Response res{static_cast<http::status>(status), 11};
  AddCors(http, res);
  if (code >= 0) {
    res.set(http::field::content_type, "application/json");
    res.body() =
        "{\"code\":" + std::to_string(code) + ",\"message\":\"" + std::string(message) + "\"}";
  } else {
    res.set(http::field::content_type, "text/plain; charset=UTF-8");
    res.body() = std::string(message);
  }
  // After an error we cannot trust the rest of the stream (e.g. an unread body).
  res.keep_alive(false);
  http->Send(std::move(res));
}

void Server::SendOk(const HttpPtr& http) {
  edge::Response res{http::status::ok, 11};
  AddCors(http, res);
  res.set(http::field::content_type, "text/html");
  res.body() = "ok";
  http->Send(std::move(res));
}

void Server::SendPayload(const HttpPtr& http, std::string body) {
  edge::Response res{http::status::ok, 11};
  AddCors(http, res);
  res.set(http::field::content_type, "text/plain; charset=UTF-8");
  res.body() = std::move(body);
  http->Send(std::move(res));
}

}  // namespace switchboard::eio
