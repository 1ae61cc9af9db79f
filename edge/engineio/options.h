#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace switchboard::eio {

struct CorsOptions {
  // Allowed origins; "*" allows any. Empty: no CORS headers at all.
  std::vector<std::string> origins;
  bool credentials = false;
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
};

}  // namespace switchboard::eio
