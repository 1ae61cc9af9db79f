#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edge/socketio/packet.h"

namespace switchboard::sio {

class Namespace;

// Who a broadcast reaches: the union of `rooms` and of the sockets of
// `user_ids` (both empty = the whole namespace) minus members of
// `except_rooms`. A socket id is a room of its own.
struct BroadcastTarget {
  std::vector<std::string> rooms;
  std::vector<std::string> user_ids;
  std::vector<std::string> except_rooms;
  bool is_volatile = false;
  // Non-null: of the sockets the target names, only these (by id) get it: a
  // replay, on the edge a session moved to, of what arrived for the session
  // while it was on its way (cluster/session_mover.h).
  std::shared_ptr<const std::vector<std::string>> only;
};

// True when the target names only rooms (socket ids included) that it also
// excepts: every member is excluded, now and for any session that comes back
// (e.g. a relay to the sender with exceptSender). Such a broadcast is not
// sent, relayed or logged.
bool ReachesNobody(const BroadcastTarget& target);

// An encoded packet and who gets it: built once per broadcast and shared by
// every shard that delivers it.
struct Delivery {
  BroadcastTarget target;
  std::vector<eio::Frame> frames;
  // Its offset in the namespace's recovery log (edge/recovery); 0: none.
  uint64_t offset = 0;
};

// Builder in the style of socket.io's BroadcastOperator:
//   nsp.To("a").To("b").Except("c").Volatile().Emit("ev", args);
// The packet is encoded once and the same bytes go to every recipient, on
// every shard.
class Broadcast {
 public:
  explicit Broadcast(Namespace& nsp, BroadcastTarget target = {})
      : nsp_(nsp), target_(std::move(target)) {}

  Broadcast& To(std::string_view room) {
    target_.rooms.emplace_back(room);
    return *this;
  }
  Broadcast& Except(std::string_view room) {
    target_.except_rooms.emplace_back(room);
    return *this;
  }
  Broadcast& Volatile() {
    target_.is_volatile = true;
    return *this;
  }
  const BroadcastTarget& target() const { return target_; }

  // args must be a JSON array. False: the cluster link refused it (too large
  // for the bus, see BroadcastRelay) and nobody got it.
  bool Emit(std::string_view event, Json args = Json::array());

 private:
  Namespace& nsp_;
  BroadcastTarget target_;
};

}  // namespace switchboard::sio
