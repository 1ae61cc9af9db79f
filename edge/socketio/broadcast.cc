#include "edge/socketio/broadcast.h"

#include "edge/socketio/namespace.h"
#include "edge/socketio/server.h"

namespace switchboard::sio {

void Broadcast::Emit(std::string_view event, Json args) {
  // Encoded once; every recipient on every shard (and edge) shares these bytes.
  auto delivery = std::make_shared<const Delivery>(
      Delivery{target_, Encode(MakeEvent(nsp_.name(), event, std::move(args)))});
  nsp_.Deliver(delivery);
  if (auto* relay = nsp_.server().broadcast_relay()) relay->OnLocalBroadcast(nsp_, *delivery);
}

}  // namespace switchboard::sio
