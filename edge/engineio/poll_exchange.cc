#include "edge/engineio/poll_exchange.h"

#include "edge/engineio/server.h"
#include "edge/http/session.h"

namespace switchboard::eio {

void HttpExchange::SendError(int status, int code, std::string_view message) {
  server_.SendError(http_, status, code, message);
}

void HttpExchange::SendOk() { server_.SendOk(http_); }

void HttpExchange::SendPayload(std::string body) { server_.SendPayload(http_, std::move(body)); }

void HttpExchange::ReadBody(size_t limit,
                            std::function<void(boost::system::error_code, std::string)> done) {
  http_->ReadBody(limit, std::move(done));
}

void HttpExchange::WatchForAbort(std::function<void()> on_abort) {
  http_->WatchForAbort(std::move(on_abort));
}

void HttpExchange::Close() { http_->Close(); }

}  // namespace switchboard::eio
