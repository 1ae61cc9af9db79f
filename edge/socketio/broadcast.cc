#include "edge/socketio/broadcast.h"

#include "edge/socketio/namespace.h"

namespace switchboard::sio {

void Broadcast::Emit(std::string_view event, Json args) {
  // Encoded once; every recipient on every shard shares these bytes.
  auto frames = std::make_shared<const std::vector<eio::Frame>>(
      Encode(MakeEvent(nsp_.name(), event, std::move(args))));
  nsp_.Deliver(target_, std::move(frames));
}

}  // namespace switchboard::sio
