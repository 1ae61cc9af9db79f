#include "edge/http/tls_relay.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include "edge/http/server.h"

namespace switchboard::edge {
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

TlsRelay::TlsRelay(HttpServer& server, size_t shard, tcp::socket socket, ssl::context& context,
                   PendingSlot slot)
    : server_(server),
      shard_(shard),
      tls_(std::move(socket), context),
      plain_(tls_.get_executor()),
      pending_(std::move(slot)),
      timer_(tls_.get_executor()) {
  boost::system::error_code ec;
  auto peer = tls_.next_layer().remote_endpoint(ec);
  if (!ec) remote_address_ = peer.address().to_string();
}

void TlsRelay::Start() {
  timer_.expires_after(server_.options().headers_timeout);
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) {
      if (self->handshake_done_) return;
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
  if (handshake_timed_out_) return;
  handshake_done_ = true;
  timer_.cancel();
  if (ec) {
    server_.Count(HttpServer::Limit::kTlsHandshakeFailed);
    return Abort();
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    // Out of descriptors: this connection is refused, as if accept had failed.
    if (errno == EMFILE || errno == ENFILE) server_.Count(HttpServer::Limit::kDescriptors);
    return Abort();
  }
  plain_.assign(net::local::stream_protocol(), fds[0], ec);
  if (ec) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Abort();
  }
  server_.Adopt(shard_, fds[1], remote_address_, std::move(pending_));
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
        self->WriteStarted();
        net::async_write(self->tls_, net::buffer(self->to_client_.data(), n),
                         [self](boost::system::error_code ec, size_t) {
                           self->writing_ = false;
                           if (ec) return self->Abort();
                           self->ReadFromSession();
                         });
      });
}

void TlsRelay::WriteStarted() {
  writing_ = true;
  write_started_ = std::chrono::steady_clock::now();
  // A wait already pending finds the new start when it fires.
  if (!timer_waiting_) ArmWriteTimer(write_started_ + server_.options().write_timeout);
}

void TlsRelay::ArmWriteTimer(std::chrono::steady_clock::time_point at) {
  timer_waiting_ = true;
  timer_.expires_at(at);
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) {
      self->timer_waiting_ = false;
      self->OnTimer();
    }
  });
}

void TlsRelay::OnTimer() {
  if (!writing_) return;  // idle until the next write
  const auto deadline = write_started_ + server_.options().write_timeout;
  // A later write than the one the wait began for: wait for its deadline.
  if (std::chrono::steady_clock::now() < deadline) return ArmWriteTimer(deadline);
  // The client stopped reading: release the TCP socket and the socketpair.
  server_.Count(HttpServer::Limit::kWriteTimeout);
  Abort();
}

void TlsRelay::FinishToClient() {
  // As the plaintext session does: end our side, let the client see EOF.
  boost::system::error_code ignored;
  tls_.next_layer().shutdown(tcp::socket::shutdown_send, ignored);
  Abort();
}

void TlsRelay::Abort() {
  boost::system::error_code ignored;
  timer_.cancel();
  timer_waiting_ = false;
  tls_.next_layer().close(ignored);
  plain_.close(ignored);
}

}  // namespace switchboard::edge
