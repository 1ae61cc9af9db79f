#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "edge/socketio/moved_socket.h"

namespace switchboard::recovery {

// What a recoverable session leaves behind, under its pid: written whenever
// it changes (connect, join, leave, disconnect), so that a store that
// outlives the edge (JetStream) holds it after a crash too.
struct SessionRecord {
  std::string pid;
  // Socket id, namespace, user id, claims, data, rooms (a move's state).
  sio::MovedSocketState state;
  // The log's last offset when the session first connected: where a restore
  // starts for a client that never got an offset.
  uint64_t start_offset = 0;
  // Unset while the session is connected.
  std::optional<std::chrono::system_clock::time_point> disconnected_at;
  // The edge the session is (or was last) connected to; empty standalone. A
  // shared store asks it whether a session it says is connected still is.
  std::string edge_id;
};

}  // namespace switchboard::recovery
