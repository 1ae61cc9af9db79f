#include "edge/http/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <functional>
#include <string_view>

#include "edge/http/session.h"
#include "edge/http/tls_relay.h"
#include "edge/readiness_poller.h"

namespace switchboard::edge {
namespace net = boost::asio;
using tcp = net::ip::tcp;

HttpServer::HttpServer(Runtime& runtime, HttpOptions options)
    : runtime_(runtime), options_(std::move(options)) {}

namespace {
constexpr std::chrono::milliseconds kMinAcceptBackoff{10};
constexpr std::chrono::milliseconds kMaxAcceptBackoff{500};

int OpenReserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }
}  // namespace

HttpServer::~HttpServer() {
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void HttpServer::Mount(std::string path, HttpHandler& handler) {
  mounts_.emplace_back(std::move(path), &handler);
}

void HttpServer::ServeFile(std::string path, StaticFile file) {
  if (file.etag.empty() && file.location.empty()) {
    // Stable across processes (libstdc++'s string hash is unseeded), so edges serving the same
    // file agree; the size makes a collision between versions of one file even less likely.
    char etag[48];
    std::snprintf(etag, sizeof etag, "\"%zx-%zx\"", std::hash<std::string_view>{}(file.body),
                  file.body.size());
    file.etag = etag;
  }
  files_.insert_or_assign(std::move(path), std::move(file));
}

void HttpServer::ServeRedirect(std::string path, std::string location) {
  StaticFile redirect;
  redirect.location = std::move(location);
  files_.insert_or_assign(std::move(path), std::move(redirect));
}

const StaticFile* HttpServer::StaticRoute(std::string_view target) const {
  if (files_.empty()) return nullptr;
  auto it = files_.find(target.substr(0, target.find('?')));
  return it == files_.end() ? nullptr : &it->second;
}

HttpHandler* HttpServer::Route(std::string_view target) const {
  std::string_view path = target.substr(0, target.find('?'));
  for (const auto& [prefix, handler] : mounts_) {
    // "/socket.io/" also matches "/socket.io" (no trailing slash).
    std::string_view p = prefix;
    if (path.starts_with(p)) return handler;
    if (p.ends_with('/') && path == p.substr(0, p.size() - 1)) return handler;
  }
  return nullptr;
}

absl::Status HttpServer::Listen() {
  boost::system::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) return absl::InvalidArgumentError("bad listen address '" + options_.host + "'");
  tcp::endpoint endpoint(address, options_.port);
  acceptor_ = std::make_unique<tcp::acceptor>(runtime_.context(0));
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) acceptor_->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(endpoint, ec);
  if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError("cannot listen on " + options_.host + ":" +
                                  std::to_string(options_.port) + ": " + ec.message());
  }
  bound_port_ = acceptor_->local_endpoint(ec).port();
  reserve_fd_ = OpenReserve();
  // Each shard's WebSocket poller now, while descriptors are plentiful (it
  // would otherwise be made by the shard's first upgrade).
  for (size_t shard = 0; shard < runtime_.size(); ++shard) {
    ReadinessPoller::Of(runtime_.context(shard).get_executor());
  }
  accept_timer_ = std::make_unique<net::steady_timer>(runtime_.context(0));
  DoAccept();
  return absl::OkStatus();
}

void HttpServer::DoAccept() {
  size_t shard = next_shard_++ % runtime_.size();
  acceptor_->async_accept(
      runtime_.context(shard), [this, shard](boost::system::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor_->is_open()) return;
        if (ec) return AcceptFailed(ec);
        accept_backoff_ = std::chrono::milliseconds(0);
        PendingSlot slot = TakePendingSlot();
        if (!slot) {
          // Too many connections without a request: refuse this one.
          socket.close(ec);
          return DoAccept();
        }
        socket.set_option(tcp::no_delay(true), ec);
        // Start on the socket's own shard.
        if (options_.tls) {
          auto relay = std::make_shared<TlsRelay>(*this, shard, std::move(socket), *options_.tls,
                                                  std::move(slot));
          net::post(runtime_.context(shard), [relay] { relay->Start(); });
        } else {
          auto session = std::make_shared<HttpSession>(*this, shard, std::move(socket),
                                                       std::string(), std::move(slot));
          net::post(runtime_.context(shard), [session] { session->Start(); });
        }
        DoAccept();
      });
}

void HttpServer::AcceptFailed(const boost::system::error_code& ec) {
  const bool no_descriptors = ec == net::error::no_descriptors ||  // EMFILE
                              ec == boost::system::errc::too_many_files_open_in_system;
  if (no_descriptors) {
    Count(Limit::kDescriptors);
    // Refuse the connection at the head of the backlog (its client sees the
    // close at once rather than a silence), with the descriptor kept for
    // this, as libuv does.
    if (reserve_fd_ >= 0) {
      ::close(reserve_fd_);
      int fd = ::accept4(acceptor_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) ::close(fd);
    }
    // (Taken by another thread meanwhile: -1, tried again next time.)
    reserve_fd_ = OpenReserve();
  }
  // Out of descriptors or memory: pause accepting instead of spinning, as
  // nginx and Envoy do; descriptors come back as connections close.
  accept_backoff_ = std::clamp(accept_backoff_ * 2, kMinAcceptBackoff, kMaxAcceptBackoff);
  accept_timer_->expires_after(accept_backoff_);
  accept_timer_->async_wait([this](boost::system::error_code ec) {
    if (!ec && acceptor_->is_open()) DoAccept();
  });
}

PendingSlot HttpServer::TakePendingSlot() {
  size_t before = pending_->fetch_add(1, std::memory_order_relaxed);
  if (options_.max_pending_connections != 0 && before >= options_.max_pending_connections) {
    pending_->fetch_sub(1, std::memory_order_relaxed);
    Count(Limit::kPendingConnections);
    return PendingSlot();
  }
  return PendingSlot(pending_);
}

void HttpServer::Adopt(size_t shard, int fd, std::string remote_address, PendingSlot slot) {
  // A socketpair end behaves as a TCP stream for everything HttpSession does
  // (it never asks a TLS-relayed socket for its peer or sets TCP options).
  tcp::socket socket(runtime_.context(shard));
  boost::system::error_code ec;
  socket.assign(tcp::v4(), fd, ec);
  if (ec) {
    ::close(fd);
    return;
  }
  auto session = std::make_shared<HttpSession>(*this, shard, std::move(socket),
                                               std::move(remote_address), std::move(slot));
  session->Start();
}

HttpServer::LimitCounters HttpServer::limit_counters() const {
  LimitCounters c;
  c.header_too_large = counters_[static_cast<size_t>(Limit::kHeaderTooLarge)].load();
  c.headers_timeout = counters_[static_cast<size_t>(Limit::kHeadersTimeout)].load();
  c.body_timeout = counters_[static_cast<size_t>(Limit::kBodyTimeout)].load();
  c.idle_timeout = counters_[static_cast<size_t>(Limit::kIdleTimeout)].load();
  c.tls_handshake_failed = counters_[static_cast<size_t>(Limit::kTlsHandshakeFailed)].load();
  c.tls_handshake_timeout = counters_[static_cast<size_t>(Limit::kTlsHandshakeTimeout)].load();
  c.write_timeout = counters_[static_cast<size_t>(Limit::kWriteTimeout)].load();
  c.pending_connections = counters_[static_cast<size_t>(Limit::kPendingConnections)].load();
  c.descriptors = counters_[static_cast<size_t>(Limit::kDescriptors)].load();
  return c;
}

void HttpServer::Close() {
  if (!acceptor_) return;
  net::post(runtime_.context(0), [this] {
    boost::system::error_code ec;
    acceptor_->close(ec);
    if (accept_timer_) accept_timer_->cancel();
  });
}

}  // namespace switchboard::edge
