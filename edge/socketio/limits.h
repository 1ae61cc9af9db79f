#pragma once

// Socket.IO limits, as plain data (the configuration parser fills them in
// without linking the edge).

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "edge/engineio/options.h"

namespace switchboard::sio {

struct DecoderLimits {
  // Binary attachments one packet may announce.
  size_t max_attachments = 10;
  // Nesting of arrays / objects in a packet's JSON.
  size_t max_json_depth = 32;
  // The attachments' total size in bytes; 0: unlimited here (sio::Server
  // sets it to maxHttpBufferSize when left 0).
  size_t max_attachment_bytes = 0;
};

// Client events one socket may send: a token bucket. Events past it are
// dropped; the client is told with a "rate-limited" event (at most once a
// second) and an event that asked for an ack is answered
// {"ok":false,"error":"rate-limited","retryAfterMs":N}. A client that has
// more than `flood_drops` events dropped within `flood_window` is
// disconnected. rate.per_second 0: unlimited.
struct EventRateLimits {
  eio::RateOptions rate{50, 100};
  uint64_t flood_drops = 1000;
  std::chrono::milliseconds flood_window{10000};
};

// Per namespace.
struct NamespaceLimits {
  // Sockets of one user id in this namespace on this edge; 0: unlimited.
  // Past it: CONNECT_ERROR "Too many connections for this user".
  size_t max_sockets_per_user = 0;
  EventRateLimits event_rate;
};

// Per sio::Server (one edge).
struct ServerLimits {
  // Namespace sockets connected at once (all namespaces, all shards); 0:
  // unlimited. Past it: CONNECT_ERROR "Server at capacity".
  size_t max_sockets = 0;
  // Namespaces one connection may join (or be joining); past it:
  // CONNECT_ERROR "Too many namespaces".
  size_t max_namespaces_per_connection = 10;
  // Rooms one socket may be in (its own id room not counted), whoever joins
  // it (a handler, a relay rule, a broker command); further joins are refused.
  size_t max_rooms_per_socket = 1000;
  // CONNECT packets one connection may send (token bucket; per_second 0:
  // unlimited). Each may cost a JWT check, a connect hook call and
  // membership events, so one past it closes the connection.
  eio::RateOptions connect_rate{5, 20};
};

}  // namespace switchboard::sio
