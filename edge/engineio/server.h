#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "edge/engineio/options.h"
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

  // Sessions open now (all shards).
  size_t SessionCount() const { return session_count_.load(std::memory_order_relaxed); }

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

 private:
  void Handshake(const std::shared_ptr<edge::HttpSession>& http, bool websocket);
  void Upgrade(const std::shared_ptr<edge::HttpSession>& http, const SessionPtr& session);
  void Preflight(const std::shared_ptr<edge::HttpSession>& http);
  template <class Message>
  void AddCors(const std::shared_ptr<edge::HttpSession>& http, Message& res) const;

  edge::Runtime& runtime_;
  Options options_;
  ConnectionHandler on_connection_;
  struct ShardState;
  std::vector<std::unique_ptr<ShardState>> shards_;
  std::atomic<size_t> session_count_{0};
};

}  // namespace switchboard::eio
