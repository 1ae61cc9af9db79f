#pragma once

#include <algorithm>

#include "edge/socketio/broadcast.h"
#include "edge/socketio/moved_socket.h"

namespace switchboard::recovery {

// Whether a publish to `target` reached a socket in `state` (its rooms, its
// own id, its user), as Namespace::DeliverLocal decides for a connected one.
inline bool Reaches(const sio::BroadcastTarget& target, const sio::MovedSocketState& state) {
  auto in = [&state](const std::string& room) {
    return room == state.id ||
           std::find(state.rooms.begin(), state.rooms.end(), room) != state.rooms.end();
  };
  if (target.only &&
      std::find(target.only->begin(), target.only->end(), state.id) == target.only->end()) {
    return false;
  }
  bool named = target.rooms.empty() && target.user_ids.empty();
  if (!named) named = std::any_of(target.rooms.begin(), target.rooms.end(), in);
  if (!named && !state.user_id.empty()) {
    named = std::find(target.user_ids.begin(), target.user_ids.end(), state.user_id) !=
            target.user_ids.end();
  }
  if (!named) return false;
  return std::none_of(target.except_rooms.begin(), target.except_rooms.end(), in);
}

}  // namespace switchboard::recovery
