#include "edge/socketio/broadcast.h"

#include "edge/socketio/namespace.h"

namespace switchboard::sio {

void Broadcast::Emit(std::string_view event, Json args) {
  // Encoded once; every recipient on every shard shares these bytes.
  nsp_.Deliver(std::make_shared<const Delivery>(
      Delivery{target_, Encode(MakeEvent(nsp_.name(), event, std::move(args)))}));
}

}  // namespace switchboard::sio
