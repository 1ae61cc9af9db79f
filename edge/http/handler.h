#pragma once

#include <memory>

namespace switchboard::edge {

class HttpSession;

// What HttpServer routes a request to by path prefix (HttpServer::Mount): the
// Engine.IO server implements it. The HTTP layer knows only this interface.
class HttpHandler {
 public:
  // A request whose header has been read, on the connection's shard. The
  // handler answers through `http` (Send, ReadBody, MigrateTo, TakeStream...).
  virtual void HandleRequest(const std::shared_ptr<HttpSession>& http) = 0;

 protected:
  ~HttpHandler() = default;
};

}  // namespace switchboard::edge
