#include "edge/socketio/broadcast.h"

#include <algorithm>

#include "edge/socketio/namespace.h"
#include "edge/socketio/server.h"

namespace switchboard::sio {

bool ReachesNobody(const BroadcastTarget& target) {
  if (target.rooms.empty() || !target.user_ids.empty() || target.only) return false;
  for (const auto& room : target.rooms) {
    if (std::find(target.except_rooms.begin(), target.except_rooms.end(), room) ==
        target.except_rooms.end()) {
      return false;
    }
  }
  return true;
}

bool Broadcast::Emit(std::string_view event, Json args) {
  if (ReachesNobody(target_)) return true;
  // Encoded once; every recipient on every shard (and edge) shares these bytes.
  auto delivery = std::make_shared<const Delivery>(
      Delivery{target_, Encode(MakeEvent(nsp_.name(), event, std::move(args)))});
  // Relayed first: one the other edges cannot get reaches nobody.
  if (auto* relay = nsp_.server().broadcast_relay()) {
    switch (relay->OnLocalBroadcast(nsp_, *delivery)) {
      case BroadcastRelay::Relayed::kRefused: return false;
      case BroadcastRelay::Relayed::kLogged: return true;
      case BroadcastRelay::Relayed::kDeliverHere: break;
    }
  }
  nsp_.Deliver(delivery);
  return true;
}

}  // namespace switchboard::sio
