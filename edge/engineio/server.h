#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "edge/engineio/options.h"
#include "edge/engineio/poll_exchange.h"
#include "edge/engineio/rate_limit.h"
#include "edge/engineio/session.h"
#include "edge/http/handler.h"
#include "edge/runtime.h"

namespace switchboard::eio {

class HeartbeatQueue;

// An Engine.IO v4 endpoint: handshakes, HTTP long-polling, WebSocket and the
// upgrade between them. Sessions live on the shard that accepted their
// handshake; requests for a session are moved to that shard.
class Server final : public edge::HttpHandler {
 public:
  using ConnectionHandler = std::function<void(const SessionPtr&)>;

  Server(edge::Runtime& runtime, Options options);
  ~Server();

  const Options& options() const { return options_; }
  edge::Runtime& runtime() { return runtime_; }
  // Runs on the session's shard for every new session, before any message.
  void OnConnection(ConnectionHandler handler) { on_connection_ = std::move(handler); }

  // The session id clients see for the local id `local_id` (Session::id()):
  // "<node_id>.<local id>" with Options::node_id set, else the local id.
  std::string PublicSid(std::string_view local_id) const;

  // With Options::node_id set, a request whose sid names another edge (after
  // the origin, EIO and transport checks) goes to one of these, on the
  // connection's shard: `owner_edge` is the sid's edge part, `sid` the whole
  // sid. Unset: the client gets 400 "Session ID unknown".
  using ForeignHandler = std::function<void(const std::shared_ptr<edge::HttpSession>& http,
                                            std::string_view owner_edge, std::string_view sid)>;
  // A WebSocket (transport=websocket, an upgrade request).
  void OnForeignUpgrade(ForeignHandler handler) { on_foreign_upgrade_ = std::move(handler); }
  // A polling GET or POST.
  void OnForeignPoll(ForeignHandler handler) { on_foreign_poll_ = std::move(handler); }

  // A polling GET (`post` false) or POST for the session with local id
  // `local_id`, that another edge passed on (cluster/poll_relay.h): served on
  // the session's shard exactly as one of this edge's own requests. Any thread.
  void ServePoll(std::string_view local_id, bool post, PollExchangePtr request);

  // Closes every session on every shard ("server shutting down"), flushing
  // what is queued; runs `done` once each shard has started its closes.
  void CloseAll(std::function<void()> done = nullptr);
  // The same, spread over `window` (a drain): from now on new sessions are
  // refused (HTTP 503, connection closed, so that the client reconnects over
  // a new connection, to another edge), and each shard closes its sessions in
  // a random order at an even pace, so that clients do not all reconnect at
  // once. Sessions whose handshake was under way are closed at the end of the
  // window.
  void CloseSpread(std::chrono::milliseconds window);

  // Sessions open now (all shards), with WebSocket handshakes in progress.
  size_t SessionCount() const { return session_count_.load(std::memory_order_relaxed); }

  // Requests refused by a limit since the start (all shards).
  struct LimitCounters {
    uint64_t at_capacity = 0;        // handshakes past maxConnections: HTTP 503
    uint64_t handshake_rate = 0;     // handshakes past the per-address rate: HTTP 429
    uint64_t forbidden_origin = 0;   // Origin not in the CORS allow-list: HTTP 403
    uint64_t payload_too_large = 0;  // polling body (HTTP 413) or WebSocket message
                                     // over maxHttpBufferSize (connection closed)
    uint64_t draining = 0;           // handshakes refused during a drain: HTTP 503
  };
  LimitCounters limit_counters() const;
  // Traffic since the start (all shards), read at scrape time (services/metrics.h).
  enum class Counter {
    kHandshakesPolling,    // sessions opened over polling
    kHandshakesWebSocket,  // sessions opened over WebSocket directly
    kUpgrades,             // polling sessions moved to WebSocket
    kPacketsIn,            // Engine.IO packets from clients
    kPacketsOut,           // Engine.IO frames queued to clients
    kBytesIn,
    kBytesOut,
    kVolatileDrops,  // volatile frames dropped: the client was behind
    kMovesIn,        // sessions moved here from another edge (an upgrade here)
    kMovesOut,       // sessions moved from here to another edge
    kCount
  };
  // Why sessions ended ("send queue overflow" is a slow consumer).
  enum class CloseReason {
    kTransportClose,
    kTransportError,
    kPingTimeout,
    kParseError,
    kForcedClose,
    kServerShuttingDown,
    kSendQueueOverflow,
    kOther,
    kCount
  };
  static std::string_view CloseReasonName(CloseReason reason);
  struct Stats {
    uint64_t counters[static_cast<size_t>(Counter::kCount)] = {};
    uint64_t closes[static_cast<size_t>(CloseReason::kCount)] = {};
    int64_t open_polling = 0;    // sessions on polling now
    int64_t open_websocket = 0;  // sessions on WebSocket now
    uint64_t operator[](Counter c) const { return counters[static_cast<size_t>(c)]; }
  };
  Stats stats() const;
  // Internal: called on `shard` only (one writer per shard: no locked add).
  void Count(size_t shard, Counter counter, uint64_t n = 1);
  void CountClose(size_t shard, std::string_view reason);
  // `transport`: a Transport::name(); "websocket" counts as open_websocket,
  // any other as open_polling.
  void CountOpen(size_t shard, std::string_view transport, int delta);

  // Client addresses the handshake rate limiter tracks now.
  size_t TrackedAddresses() const { return handshake_limiter_.size(); }

  // edge::HttpHandler: every request under the mount path, on the shard of
  // the connection.
  void HandleRequest(const std::shared_ptr<edge::HttpSession>& http) override;
  // Moves (cluster/session_mover.h).
  // Accepts a WebSocket (the 101 answer); null after answering 400.
  std::shared_ptr<Transport> AcceptWebSocket(const std::shared_ptr<edge::HttpSession>& http);
  // Runs `visit` on the shard of the session whose local id is `local_id`
  // (the session, or null when there is none).
  void WithSession(std::string_view local_id, std::function<void(const SessionPtr&)> visit);
  // A session that moved here, registered on the calling shard: it takes
  // `transport` (the client's WebSocket) and sends `queued` first. The caller
  // gives it its listener (no connection handler runs: nothing is new).
  SessionPtr AdoptSession(std::string_view local_id, eio::Handshake handshake,
                          std::shared_ptr<Transport> transport, const std::vector<Frame>& queued);
  // Internal: session bookkeeping on the session's shard.
  void Unregister(const Session& session);
  HeartbeatQueue& ping_queue(size_t shard);
  HeartbeatQueue& pong_queue(size_t shard);
  // Responses with this endpoint's CORS headers.
  // `code`: eio::ErrorCode (edge/engineio/errors.h); kNoErrorCode sends the bare message.
  void SendError(const std::shared_ptr<edge::HttpSession>& http, int status, int code,
                 std::string_view message);
  void SendOk(const std::shared_ptr<edge::HttpSession>& http);
  void SendPayload(const std::shared_ptr<edge::HttpSession>& http, std::string body);
  // Internal: a message over maxHttpBufferSize was refused.
  void CountPayloadTooLarge() { payload_too_large_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void Handshake(const std::shared_ptr<edge::HttpSession>& http, bool websocket);
  void Upgrade(const std::shared_ptr<edge::HttpSession>& http, const SessionPtr& session);
  void Preflight(const std::shared_ptr<edge::HttpSession>& http);
  // The session `local_id` names on `shard` (the current one), or null when
  // there is none or its pong is overdue.
  SessionPtr FindSession(size_t shard, std::string_view local_id);
  // A polling GET or POST for `session`, local or passed on.
  void Poll(const SessionPtr& session, bool post, const PollExchangePtr& request);
  template <class Message>
  void AddCors(const std::shared_ptr<edge::HttpSession>& http, Message& res) const;
  // False when the CORS allow-list is explicit and the request's Origin is
  // not in it.
  bool OriginAllowed(const std::shared_ptr<edge::HttpSession>& http) const;
  // Takes a connection slot; false at maxConnections.
  bool ReserveSession();

  edge::Runtime& runtime_;
  Options options_;
  ConnectionHandler on_connection_;
  ForeignHandler on_foreign_upgrade_;
  ForeignHandler on_foreign_poll_;
  struct ShardState;
  std::vector<std::unique_ptr<ShardState>> shards_;
  std::atomic<size_t> session_count_{0};
  KeyedRateLimiter handshake_limiter_;
  std::atomic<uint64_t> at_capacity_{0};
  std::atomic<uint64_t> handshake_rate_{0};
  std::atomic<uint64_t> forbidden_origin_{0};
  std::atomic<uint64_t> payload_too_large_{0};
  std::atomic<uint64_t> draining_refused_{0};
  std::atomic<bool> draining_{false};
  struct ShardStats;
  std::vector<std::unique_ptr<ShardStats>> stats_;
};

}  // namespace switchboard::eio
