#pragma once

#include <boost/system/error_code.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace switchboard::edge {
class HttpSession;
}

namespace switchboard::eio {

class Server;

// One long-polling request (a GET or a POST) as the polling transport sees
// it, wherever its client is: on this edge's HTTP connection (HttpExchange),
// or behind another edge that passed it on over the bus (cluster/poll_relay).
// The transport applies the same rules to both, so every local rule of
// polling holds cluster-wide. Used on the session's shard only; answered once.
class PollExchange {
 public:
  virtual ~PollExchange() = default;

  // The answers, with the receiving edge's CORS headers.
  // `code`: eio::ErrorCode (edge/engineio/errors.h); kNoErrorCode: bare text.
  virtual void SendError(int status, int code, std::string_view message) = 0;
  virtual void SendOk() = 0;
  virtual void SendPayload(std::string body) = 0;
  // A POST's body, at most `limit` bytes: `done` gets it, or an error
  // (boost::beast::http::error::body_limit past the limit).
  virtual void ReadBody(size_t limit,
                        std::function<void(boost::system::error_code, std::string)> done) = 0;
  // A held GET: `on_abort` runs if the client goes away before the answer.
  virtual void WatchForAbort(std::function<void()> on_abort) = 0;
  // Cuts the request off unanswered (a POST still arriving when its session
  // is gone).
  virtual void Close() = 0;
};
using PollExchangePtr = std::shared_ptr<PollExchange>;

// A request on one of this edge's HTTP connections.
class HttpExchange final : public PollExchange {
 public:
  HttpExchange(Server& server, std::shared_ptr<edge::HttpSession> http)
      : server_(server), http_(std::move(http)) {}

  void SendError(int status, int code, std::string_view message) override;
  void SendOk() override;
  void SendPayload(std::string body) override;
  void ReadBody(size_t limit,
                std::function<void(boost::system::error_code, std::string)> done) override;
  void WatchForAbort(std::function<void()> on_abort) override;
  void Close() override;

 private:
  Server& server_;
  std::shared_ptr<edge::HttpSession> http_;
};

}  // namespace switchboard::eio
