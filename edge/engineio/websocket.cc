#include "edge/engineio/websocket.h"

#include <boost/asio/buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "edge/engineio/session.h"

namespace switchboard::eio {
namespace beast = boost::beast;
namespace websocket = beast::websocket;

WebSocketTransport::WebSocketTransport(beast::tcp_stream stream, size_t max_message_bytes)
    : ws_(std::move(stream)) {
  ws_.read_message_max(max_message_bytes);
  ws_.auto_fragment(false);
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::seconds(30);
  // Engine.IO's own heartbeat detects dead peers.
  timeouts.idle_timeout = websocket::stream_base::none();
  timeouts.keep_alive_pings = false;
  ws_.set_option(timeouts);
}

void WebSocketTransport::Accept(beast::http::request<beast::http::string_body> request,
                                std::function<void(boost::system::error_code)> done) {
  auto req = std::make_shared<beast::http::request<beast::http::string_body>>(std::move(request));
  ws_.async_accept(*req, [self = shared_from_this(), req, done = std::move(done)](
                             beast::error_code ec) { done(ec); });
}

void WebSocketTransport::Attach(std::shared_ptr<Session> session) {
  bool first = !session_;
  session_ = std::move(session);
  if (first) DoRead();
}

void WebSocketTransport::DoRead() {
  ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec) {
      self->closed_ = true;
      if (auto session = std::move(self->session_)) {
        if (ec == websocket::error::message_too_big) session->OnMessageTooBig();
        session->OnTransportClosed(self.get(), ec == websocket::error::closed
                                                   ? "transport close"
                                                   : "transport error");
      }
      return;
    }
    auto data = self->buffer_.cdata();
    std::string_view view(static_cast<const char*>(data.data()), data.size());
    // The session may detach us (or close) while handling the frame.
    if (auto session = self->session_) session->OnFrame(self.get(), view, !self->ws_.got_text());
    self->buffer_.consume(self->buffer_.size());
    if (!self->closed_) self->DoRead();
  });
}

void WebSocketTransport::Write(Frame frame) {
  if (closed_ || close_pending_) return;
  writing_ = true;
  in_flight_ = std::move(frame);
  ws_.text(!in_flight_.binary);
  ws_.async_write(boost::asio::buffer(*in_flight_.bytes),
                  [self = shared_from_this()](beast::error_code ec, size_t) {
                    self->writing_ = false;
                    self->in_flight_ = Frame{};
                    if (ec) {
                      self->closed_ = true;
                      if (auto session = std::move(self->session_)) {
                        session->OnTransportClosed(self.get(), "transport error");
                      }
                      return;
                    }
                    if (self->close_pending_) return self->DoClose();
                    if (auto session = self->session_) session->OnWriteDone(self.get());
                  });
}

void WebSocketTransport::Close() {
  session_.reset();
  if (closed_ || close_pending_) return;
  close_pending_ = true;
  if (!writing_) DoClose();
}

void WebSocketTransport::DoClose() {
  if (closed_) return;
  closed_ = true;
  ws_.async_close(websocket::close_code::normal, [self = shared_from_this()](beast::error_code) {
    beast::error_code ignored;
    self->ws_.next_layer().socket().close(ignored);
  });
}

}  // namespace switchboard::eio
