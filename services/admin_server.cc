#include "services/admin_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"

namespace switchboard::services {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

// A scraper or probe that sends nothing for this long is dropped.
constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr size_t kMaxRequestBytes = 16 * 1024;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const AdminServer::MetricsFn& metrics,
             const AdminServer::ReadyFn& ready)
      : stream_(std::move(socket)), metrics_(metrics), ready_(ready) {}

  void Read() {
    parser_.emplace();
    parser_->header_limit(kMaxRequestBytes);
    parser_->body_limit(kMaxRequestBytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Close();
                       self->Respond(self->parser_->release());
                     });
  }

 private:
  void Respond(http::request<http::string_body> req) {
    auto res = std::make_shared<http::response<http::string_body>>(http::status::ok,
                                                                   req.version());
    res->set(http::field::server, "switchboard-admin");
    res->set(http::field::content_type, "text/plain; charset=utf-8");
    std::string_view target = req.target();
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res->result(http::status::method_not_allowed);
      res->body() = "method not allowed\n";
    } else if (target == "/metrics") {
      res->set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res->body() = metrics_();
    } else if (target == "/healthz") {
      res->body() = "ok\n";
    } else if (target == "/readyz") {
      absl::Status ready = ready_();
      if (ready.ok()) {
        res->body() = "ready\n";
      } else {
        res->result(http::status::service_unavailable);
        res->body() = absl::StrCat("not ready: ", ready.message(), "\n");
      }
    } else {
      res->result(http::status::not_found);
      res->body() = "not found\n";
    }
    res->keep_alive(req.keep_alive());
    res->prepare_payload();
    if (req.method() == http::verb::head) res->body().clear();
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !res->keep_alive()) return self->Close();
      self->Read();
    });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const AdminServer::MetricsFn& metrics_;
  const AdminServer::ReadyFn& ready_;
};

}  // namespace

struct AdminServer::Impl {
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  // Accept pauses after a failure (out of descriptors) instead of spinning.
  net::steady_timer backoff{ioc};
  MetricsFn metrics;
  ReadyFn ready;
  uint16_t port = 0;
  std::thread thread;

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (ec) {
        backoff.expires_after(std::chrono::milliseconds(100));
        backoff.async_wait([this](beast::error_code ec) {
          if (!ec && acceptor.is_open()) Accept();
        });
        return;
      }
      std::make_shared<Connection>(std::move(socket), metrics, ready)->Read();
      Accept();
    });
  }
};

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(AdminServerOptions options,
                                                               MetricsFn metrics, ReadyFn ready) {
  auto impl = std::make_unique<Impl>();
  impl->metrics = std::move(metrics);
  impl->ready = std::move(ready);
  auto fail = [&](const beast::error_code& ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port, ": ", ec.message()));
  };
  beast::error_code ec;
  tcp::resolver resolver(impl->ioc);
  auto endpoints = resolver.resolve(options.host, std::to_string(options.port),
                                    tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) return fail(ec);
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  impl->acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail(ec);
  impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  impl->acceptor.bind(endpoint, ec);
  if (ec) return fail(ec);
  impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec);
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ioc.run(); });
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() {
  // Stopping the context drops the pending handlers, and with them the
  // connections they hold.
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
}

uint16_t AdminServer::port() const { return impl_->port; }

}  // namespace switchboard::services
