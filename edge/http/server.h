#pragma once

#include <absl/status/status.h>

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edge/runtime.h"

namespace switchboard::eio {
class Server;
}

namespace switchboard::edge {

struct HttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 3000;  // 0 picks a free port
  size_t max_header_bytes = 16 * 1024;
};

// The TCP listener. Accepted connections are spread over the runtime's
// shards; each request is routed by path prefix to a mounted Engine.IO
// server. Anything else gets 404.
class HttpServer {
 public:
  HttpServer(Runtime& runtime, HttpOptions options);
  ~HttpServer();

  // `path` is the mount prefix, e.g. "/socket.io/".
  void Mount(std::string path, eio::Server& server);
  // Binds and starts accepting. port() is the bound port afterwards.
  absl::Status Listen();
  uint16_t port() const { return bound_port_; }
  // Stops accepting new connections.
  void Close();

  // Internal.
  eio::Server* Route(std::string_view target) const;
  const HttpOptions& options() const { return options_; }
  Runtime& runtime() { return runtime_; }

 private:
  void DoAccept();

  Runtime& runtime_;
  HttpOptions options_;
  std::vector<std::pair<std::string, eio::Server*>> mounts_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  uint16_t bound_port_ = 0;
  size_t next_shard_ = 0;
};

}  // namespace switchboard::edge
