#include "edge/http/tls_relay.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include "edge/http/server.h"

namespace switchboard::edge {
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

TlsRelay::TlsRelay(HttpServer& server, size_t shard, tcp::socket socket, ssl::context& context)
    : server_(server),
      shard_(shard),
      tls_(std::move(socket), context),
      plain_(tls_.get_executor()),
      handshake_timer_(tls_.get_executor()) {
  boost::system::error_code ec;
  auto peer = tls_.next_layer().remote_endpoint(ec);
  if (!ec) remote_address_ = peer.address().to_string();
}

void TlsRelay::Start() {
  handshake_timer_.expires_after(server_.options().headers_timeout);
  handshake_timer_.async_wait(
      [weak = weak_from_this()](boost::system::error_code ec) {
        if (ec) return;
        if (auto self = weak.lock()) {
          self->handshake_timed_out_ = true;
          self->server_.Count(HttpServer::Limit::kTlsHandshakeTimeout);
          self->Abort();
        }
      });
  tls_.async_handshake(ssl::stream_base::server,
                       [self = shared_from_this()](boost::system::error_code ec) {
                         self->OnHandshake(ec);
                       });
}

void TlsRelay::OnHandshake(boost::system::error_code ec) {
  handshake_timer_.cancel();
  if (handshake_timed_out_) return;
  if (ec) {
    server_.Count(HttpServer::Limit::kTlsHandshakeFailed);
    return Abort();
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return Abort();  // out of descriptors: as if accept had failed
  }
  plain_.assign(net::local::stream_protocol(), fds[0], ec);
  if (ec) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Abort();
  }
  server_.Adopt(shard_, fds[1], remote_address_);
  ReadFromClient();
  ReadFromSession();
}

void TlsRelay::ReadFromClient() {
  tls_.async_read_some(
      net::buffer(from_client_), [self = shared_from_this()](boost::system::error_code ec,
                                                             size_t n) {
        // The client left (close_notify, EOF or a bad record): so does the session.
        if (ec) return self->Abort();
        net::async_write(self->plain_, net::buffer(self->from_client_.data(), n),
                         [self](boost::system::error_code ec, size_t) {
                           if (ec) return self->Abort();
                           self->ReadFromClient();
                         });
      });
}

void TlsRelay::ReadFromSession() {
  plain_.async_read_some(
      net::buffer(to_client_), [self = shared_from_this()](boost::system::error_code ec,
                                                           size_t n) {
        if (ec) return self->FinishToClient();
        net::async_write(self->tls_, net::buffer(self->to_client_.data(), n),
                         [self](boost::system::error_code ec, size_t) {
                           if (ec) return self->Abort();
                           self->ReadFromSession();
                         });
      });
}

void TlsRelay::FinishToClient() {
  // As the plaintext session does: end our side, let the client see EOF.
  boost::system::error_code ignored;
  tls_.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
  Abort();
}

void TlsRelay::Abort() {
  boost::system::error_code ignored;
  handshake_timer_.cancel();
  tls_.next_layer().close(ignored);
  plain_.close(ignored);
}

}  // namespace switchboard::edge
