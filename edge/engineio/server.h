#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "edge/engineio/options.h"
#include "edge/engineio/rate_limit.h"
#include "edge/engineio/session.h"
#include "edge/runtime.h"

namespace switchboard::edge {
class HttpSession;
}

namespace switchboard::eio {

// An Engine.IO v4 endpoint: handshakes, HTTP long-polling, WebSocket and the
// upgrade between them. Sessions live on the shard that accepted their
// handshake; requests for a session are moved to that shard.
class Server {
 public:
  using ConnectionHandler = std::function<void(const SessionPtr&)>;

  Server(edge::Runtime& runtime, Options options);
  ~Server();

  const Options& options() const { return options_; }
  edge::Runtime& runtime() { return runtime_; }
  // Runs on the session's shard for every new session, before any message.
  void OnConnection(ConnectionHandler handler) { on_connection_ = std::move(handler); }

  // Closes every session on every shard ("server shutting down"), flushing
  // what is queued; runs `done` once each shard has started its closes.
  void CloseAll(std::function<void()> done = nullptr);

  // Sessions open now (all shards), with WebSocket handshakes in progress.
  size_t SessionCount() const { return session_count_.load(std::memory_order_relaxed); }

  // Requests refused by a limit since the start (all shards).
  struct LimitCounters {
    uint64_t at_capacity = 0;        // handshakes past maxConnections: HTTP 503
    uint64_t handshake_rate = 0;     // handshakes past the per-address rate: HTTP 429
    uint64_t forbidden_origin = 0;   // Origin not in the CORS allow-list: HTTP 403
    uint64_t payload_too_large = 0;  // polling body (HTTP 413) or WebSocket message
                                     // over maxHttpBufferSize (connection closed)
  };
  LimitCounters limit_counters() const;
  // Client addresses the handshake rate limiter tracks now.
  size_t TrackedAddresses() const { return handshake_limiter_.size(); }

  // Internal: the HTTP layer hands every request under the mount path here,
  // on the shard of the connection.
  void HandleRequest(const std::shared_ptr<edge::HttpSession>& http);
  // Internal: session bookkeeping on the session's shard.
  void Unregister(const std::string& sid);
  // Responses with this endpoint's CORS headers.
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
  struct ShardState;
  std::vector<std::unique_ptr<ShardState>> shards_;
  std::atomic<size_t> session_count_{0};
  KeyedRateLimiter handshake_limiter_;
  std::atomic<uint64_t> at_capacity_{0};
  std::atomic<uint64_t> handshake_rate_{0};
  std::atomic<uint64_t> forbidden_origin_{0};
  std::atomic<uint64_t> payload_too_large_{0};
};

}  // namespace switchboard::eio
