#include "edge/http/session.h"

#include <sys/socket.h>
#include <cerrno>
#include <limits>
#include <string_view>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/beast/core/buffers_to_string.hpp>

#include "edge/http/handler.h"
#include "edge/http/server.h"

namespace switchboard::edge {
namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
std::string AddressOf(const tcp::socket& socket) {
  beast::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  return ec ? std::string() : ep.address().to_string();
}

// If-None-Match (RFC 9110 13.1.2): "*" or a list of entity tags, compared weakly.
bool NoneMatchHits(std::string_view header, std::string_view etag) {
  constexpr std::string_view kSpace = " \t";
  for (size_t begin = 0; begin <= header.size();) {
    size_t end = header.find(',', begin);
    if (end == std::string_view::npos) end = header.size();
    std::string_view tag = header.substr(begin, end - begin);
    size_t first = tag.find_first_not_of(kSpace);
    tag = first == std::string_view::npos ? std::string_view() : tag.substr(first);
    tag = tag.substr(0, tag.find_last_not_of(kSpace) + 1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
    begin = end + 1;
  }
  return false;
}
}  // namespace

HttpSession::HttpSession(HttpServer& server, size_t shard, tcp::socket socket,
                         std::string remote_address, PendingSlot slot)
    : server_(server),
      shard_(shard),
      stream_(std::move(socket)),
      remote_address_(std::move(remote_address)),
      pending_(std::move(slot)) {
  if (remote_address_.empty()) remote_address_ = AddressOf(stream_.socket());
}

HttpSession::HttpSession(HttpServer& server, size_t shard, tcp::socket socket,
                         std::string remote_address, beast::flat_buffer buffer,
                         std::unique_ptr<RequestParser> parser)
    : server_(server),
      shard_(shard),
      stream_(std::move(socket)),
      buffer_(std::move(buffer)),
      parser_(std::move(parser)),
      remote_address_(std::move(remote_address)) {}

std::chrono::milliseconds HttpSession::write_timeout() const {
  return server_.options().write_timeout;
}

void HttpSession::Start() { DoReadHeader(false); }

void HttpSession::DoReadHeader(bool keep_alive) {
  parser_ = std::make_unique<RequestParser>();
  parser_->header_limit(static_cast<std::uint32_t>(server_.options().max_header_bytes));
  // The body limit depends on the route, known only after the header:
  // ReadBody() enforces it. (Not boost::none: Beast 1.74 compares
  // Content-Length against an empty optional and fails.)
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
  if (!keep_alive || buffer_.size() > 0) return ReadHeader();
  // Between requests: idle until the next one starts, as one of the capped
  // connections without a request in progress.
  pending_ = server_.TakePendingSlot();
  if (!pending_) return Close();
  stream_.expires_after(server_.options().idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](
                                                     beast::error_code ec, size_t n) {
    if (ec) {
      if (ec == beast::error::timeout) self->server_.Count(HttpServer::Limit::kIdleTimeout);
      return self->Close();
    }
    self->buffer_.commit(n);
    self->ReadHeader();
  });
}

void HttpSession::ReadHeader() {
  stream_.expires_after(server_.options().headers_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            self->OnHeader(ec);
                          });
}

void HttpSession::OnHeader(beast::error_code ec) {
  if (ec == http::error::header_limit) {
    server_.Count(HttpServer::Limit::kHeaderTooLarge);
    return SendPlain(http::status::request_header_fields_too_large, "Header too large");
  }
  if (ec == beast::error::timeout) server_.Count(HttpServer::Limit::kHeadersTimeout);
  if (ec) return Close();
  pending_.Release();
  Dispatch();
}

void HttpSession::Dispatch() {
  if (const StaticFile* file = server_.StaticRoute(request().target())) return SendFile(*file);
  HttpHandler* target = server_.Route(request().target());
  if (target == nullptr) return SendPlain(http::status::not_found, "Not found");
  target->HandleRequest(shared_from_this());
}

void HttpSession::SendFile(const StaticFile& file) {
  const http::verb method = request().method();
  if (method != http::verb::get && method != http::verb::head) {
    Response res{http::status::method_not_allowed, 11};
    res.set(http::field::allow, "GET, HEAD");
    res.set(http::field::content_type, "text/plain; charset=UTF-8");
    res.body() = "Method not allowed";
    res.keep_alive(false);
    return Send(std::move(res));
  }
  if (!file.location.empty()) {
    // 302, not 301: a browser does not keep it, so a changed configuration is seen at once.
    std::string_view target = request().target();
    const size_t query = target.find('?');
    Response res{http::status::found, 11};
    res.set(http::field::location, query == std::string_view::npos
                                       ? file.location
                                       : file.location + std::string(target.substr(query)));
    res.set(http::field::cache_control, "no-cache");
    return Send(std::move(res));
  }
  // "no-cache": a browser keeps the file but asks each time, so a new page or bundle is seen at
  // once; the ETag makes the asking cheap (304, no body).
  auto none_match = request().find(http::field::if_none_match);
  const bool unchanged =
      none_match != request().end() && NoneMatchHits(none_match->value(), file.etag);
  Response res{unchanged ? http::status::not_modified : http::status::ok, 11};
  res.set(http::field::etag, file.etag);
  res.set(http::field::cache_control, "no-cache");
  if (unchanged) return Send(std::move(res));
  res.set(http::field::content_type, file.content_type);
  res.set("X-Content-Type-Options", "nosniff");
  res.body() = file.body;
  Send(std::move(res));
}

void HttpSession::SendPlain(http::status status, std::string body) {
  Response res{status, 11};
  res.set(http::field::content_type, "text/plain; charset=UTF-8");
  res.body() = std::move(body);
  res.keep_alive(false);
  Send(std::move(res));
}

void HttpSession::ReadBody(size_t limit,
                           std::function<void(beast::error_code, std::string)> done) {
  // Beast checks Content-Length against the limit while parsing the header,
  // which happened before the route (and so the limit) was known.
  if (auto length = parser_->content_length(); length && *length > limit) {
    return done(http::error::body_limit, std::string());
  }
  parser_->body_limit(limit);
  stream_.expires_after(server_.options().body_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this(), done = std::move(done)](beast::error_code ec,
                                                                       size_t) {
                     if (ec == beast::error::timeout) {
                       self->server_.Count(HttpServer::Limit::kBodyTimeout);
                     }
                     if (ec) return done(ec, std::string());
                     done(ec, std::move(self->parser_->get().body()));
                   });
}

void HttpSession::Send(Response response) {
  if (taken_) return;
  if (watching_) {
    // Stop the abort watch; its handler sees operation_aborted.
    watching_ = false;
    on_abort_ = nullptr;
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
  }
  // A request whose body we did not read cannot be followed by another.
  if (!parser_->is_done()) response.keep_alive(false);
  else response.keep_alive(parser_->get().keep_alive() && response.keep_alive());
  response.prepare_payload();
  // HEAD: the headers of the GET, Content-Length included, and no body.
  if (request().method() == http::verb::head) response.body().clear();
  response_.emplace(std::move(response));
  stream_.expires_after(server_.options().write_timeout);
  http::async_write(stream_, *response_, [self = shared_from_this()](beast::error_code ec, size_t) {
    if (ec == beast::error::timeout) {
      self->server_.Count(HttpServer::Limit::kWriteTimeout);
    }
    bool keep = self->response_->keep_alive();
    self->response_.reset();
    if (ec || !keep) return self->Close();
    self->DoReadHeader(true);
  });
}

void HttpSession::MigrateTo(size_t shard) {
  beast::error_code ec;
  // (A TLS relay's socketpair end has no IP family; the protocol only matters
  // to Asio for opening sockets, not for one it is given.)
  auto endpoint = stream_.socket().local_endpoint(ec);
  auto protocol = ec ? tcp::v4() : endpoint.protocol();
  tcp::socket socket = stream_.release_socket();
  int fd = socket.release(ec);
  if (ec) return;
  auto buffer = std::make_shared<beast::flat_buffer>(std::move(buffer_));
  auto parser = std::make_shared<std::unique_ptr<RequestParser>>(std::move(parser_));
  taken_ = true;
  HttpServer& server = server_;
  net::post(server.runtime().context(shard), [&server, shard, protocol, fd, buffer, parser,
                                              address = remote_address_] {
    tcp::socket moved(server.runtime().context(shard));
    beast::error_code ec;
    moved.assign(protocol, fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    auto session = std::make_shared<HttpSession>(server, shard, std::move(moved), address,
                                                 std::move(*buffer), std::move(*parser));
    session->Dispatch();
  });
}

void HttpSession::WatchForAbort(std::function<void()> on_abort) {
  on_abort_ = std::move(on_abort);
  watching_ = true;
  // A long poll may legitimately wait much longer than the read timeout.
  stream_.expires_never();
  stream_.socket().async_wait(
      tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
        if (!self->watching_ || ec == net::error::operation_aborted) return;
        char byte;
        ssize_t n = ::recv(self->stream_.socket().native_handle(), &byte, 1,
                           MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return;  // pipelined bytes: read after the response
        // Readiness can be spurious (e.g. after a shard migration): wait again.
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          return self->WatchForAbort(std::move(self->on_abort_));
        }
        self->watching_ = false;
        if (auto cb = std::move(self->on_abort_)) cb();
        self->Close();
      });
}

beast::tcp_stream HttpSession::TakeStream() {
  taken_ = true;
  stream_.expires_never();
  return std::move(stream_);
}

void HttpSession::Close() {
  if (taken_) return;
  pending_.Release();
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.close();
}

}  // namespace switchboard::edge
