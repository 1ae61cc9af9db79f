#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace switchboard::eio {

struct CorsOptions {
  // Allowed origins; "*" allows any. Empty: no CORS headers at all. An
  // explicit list (without "*") is enforced: a request whose Origin header is
  // not in it gets 403 (Engine.IO code 4 "Forbidden"); requests without an
  // Origin header (non-browser clients) are allowed.
  std::vector<std::string> origins;
  bool credentials = false;
  // Also allow an Origin that names the listener itself (scheme://<Host header>): the Admin UI
  // the edge serves. Off unless the edge serves it: with it on, a DNS-rebinding page passes too.
  bool allow_same_origin = false;
};

// A token bucket's parameters: `burst` tokens, refilled at `per_second`.
// per_second 0 disables the limit.
struct RateOptions {
  double per_second = 0;
  double burst = 0;
};

struct HandshakeRateOptions {
  // Engine.IO handshakes per client address (IPv6: per /64), token bucket.
  RateOptions rate{20, 100};
  // Addresses tracked at once; past it the least recently seen is forgotten.
  size_t max_tracked_addresses = 65536;
};

struct Options {
  std::chrono::milliseconds ping_interval{25000};
  std::chrono::milliseconds ping_timeout{20000};
  std::chrono::milliseconds upgrade_timeout{10000};
  // maxHttpBufferSize: the largest message (and polling body) accepted.
  size_t max_http_buffer_size = 1'000'000;
  bool allow_polling = true;
  bool allow_websocket = true;
  bool allow_upgrades = true;
  CorsOptions cors;
  // Bytes queued to one client before it is disconnected as too slow.
  size_t max_send_queue_bytes = 8u << 20;
  // Volatile packets are dropped once this many bytes are queued.
  size_t volatile_drop_bytes = 64u << 10;
  // Engine.IO sessions open at once on this server (all shards); a handshake
  // past it gets HTTP 503. 0: unlimited.
  size_t max_connections = 10000;
  // Handshakes per second per client address; past it HTTP 429.
  HandshakeRateOptions handshake_rate;
  // Request headers a session keeps from its handshake for whoever reads them
  // later (authentication, hooks, forwarding), by lower-case name. Unset:
  // every header. A connection holds them for its whole life, and browsers
  // send several hundred bytes of headers nobody reads.
  std::optional<std::vector<std::string>> handshake_headers;
  // This edge's id in a cluster (edge::ValidNodeId). Set: the session id a
  // client sees is "<node_id>.<local id>" (edge::MakeSocketId), so that any
  // edge knows which one owns a session; requests naming another edge go to
  // Server::OnForeignPoll / OnForeignUpgrade. Empty (standalone, library
  // use): session ids are the local ids.
  std::string node_id;
};

}  // namespace switchboard::eio
