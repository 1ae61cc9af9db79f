#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <functional>
#include <memory>

#include "edge/engineio/packet.h"

namespace switchboard::eio {

class Session;

// The WebSocket transport of one session: one read loop, at most one write in
// flight (the session feeds it from its queue), a close after the last write.
class WebSocketTransport : public std::enable_shared_from_this<WebSocketTransport> {
 public:
  WebSocketTransport(boost::beast::tcp_stream stream, size_t max_message_bytes);

  // Completes the HTTP upgrade; `done` runs with the result.
  void Accept(boost::beast::http::request<boost::beast::http::string_body> request,
              std::function<void(boost::system::error_code)> done);
  // Starts delivering frames to `session`.
  void Attach(std::shared_ptr<Session> session);

  bool writing() const { return writing_; }
  void Write(Frame frame);
  // Sends a close frame once the write in flight is done; frames no longer
  // reach the session.
  void Close();

 private:
  void DoRead();
  void DoClose();

  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::flat_buffer buffer_;
  std::shared_ptr<Session> session_;
  Frame in_flight_;
  bool writing_ = false;
  bool close_pending_ = false;
  bool closed_ = false;
};

}  // namespace switchboard::eio
