#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "edge/http/pending_slot.h"

namespace switchboard::edge {

class HttpServer;
struct StaticFile;

namespace http = boost::beast::http;
using RequestParser = http::request_parser<http::string_body>;
using Response = http::response<http::string_body>;

// One HTTP/1.1 connection on one shard: reads a request header, hands it to
// the mounted HttpHandler, writes the response, repeats (keep-alive).
// A request for a session held by another shard moves the whole connection
// (its socket and already-read bytes) to that shard first.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  // `remote_address`: the client's, when the socket's peer is not the client
  // (a TlsRelay); empty: the socket's peer address.
  // `slot`: held until the first request's headers have arrived.
  HttpSession(HttpServer& server, size_t shard, boost::asio::ip::tcp::socket socket,
              std::string remote_address = {}, PendingSlot slot = {});
  HttpSession(HttpServer& server, size_t shard, boost::asio::ip::tcp::socket socket,
              std::string remote_address, boost::beast::flat_buffer buffer,
              std::unique_ptr<RequestParser> parser);

  // Starts reading requests.
  void Start();

  size_t shard() const { return shard_; }
  const http::request_header<>& request() const { return parser_->get().base(); }
  RequestParser& parser() { return *parser_; }
  const std::string& remote_address() const { return remote_address_; }
  // How long output to this client may stall (HttpOptions::write_timeout).
  std::chrono::milliseconds write_timeout() const;

  // Reads the request body (at most `limit` bytes); `done` gets the body or
  // an error (body_limit when too large).
  void ReadBody(size_t limit,
                std::function<void(boost::beast::error_code, std::string body)> done);
  // Writes the response, then reads the next request (or closes).
  void Send(Response response);
  // Re-runs the current request on another shard.
  void MigrateTo(size_t shard);
  // While a long-poll GET is pending: calls on_abort if the peer goes away.
  void WatchForAbort(std::function<void()> on_abort);
  // Gives the connection away (WebSocket upgrade): no more HTTP reads.
  boost::beast::tcp_stream TakeStream();
  void Close();

 private:
  // Reads the next request's header; `keep_alive`: a request came before
  // on this connection, so the wait for the next one is idle time first.
  void DoReadHeader(bool keep_alive);
  void ReadHeader();
  void OnHeader(boost::beast::error_code ec);
  void Dispatch();
  void SendPlain(http::status status, std::string body);
  void SendFile(const StaticFile& file);

  HttpServer& server_;
  size_t shard_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::unique_ptr<RequestParser> parser_;
  std::optional<Response> response_;
  std::string remote_address_;
  std::function<void()> on_abort_;
  PendingSlot pending_;  // held while no request is in progress
  bool watching_ = false;
  bool taken_ = false;
};

}  // namespace switchboard::edge
