#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace switchboard::edge {

struct HttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 3000;  // 0 picks a free port
  // Request line + headers; larger gets 431 and the connection is closed.
  size_t max_header_bytes = 16 * 1024;
  // A request's headers must arrive within this (from the connection's
  // start, or from the first byte of a later request on a keep-alive
  // connection), its body within bodyTimeout after the headers; else the
  // connection is closed (slowloris).
  std::chrono::milliseconds headers_timeout{10000};
  std::chrono::milliseconds body_timeout{10000};
  // A keep-alive connection with no request in progress is closed after this.
  // (A pending long-poll GET is the server's wait, not idleness.)
  std::chrono::milliseconds idle_timeout{30000};
  // Output (a response, WebSocket frames, the close frame, TLS records) to a
  // client that stops reading may make no progress for this long; then the
  // connection is closed (and counted).
  std::chrono::milliseconds write_timeout{30000};
  // Connections with no request in progress (just accepted, in the TLS
  // handshake, waiting for a request's headers, idle between keep-alive
  // requests) at once; past it a new one is closed at once. 0 = unlimited.
  size_t max_pending_connections = 10000;
  // HTTPS / WSS on this listener when set (see edge/http/tls_context.h); the
  // TLS handshake must finish within headersTimeout.
  std::shared_ptr<boost::asio::ssl::context> tls = nullptr;
};

}  // namespace switchboard::edge
