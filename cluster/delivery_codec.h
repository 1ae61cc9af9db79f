#pragma once

// How a bus Delivery (proto/switchboard/v1/bus.proto) becomes a Socket.IO
// packet for its recipients: the same for one that arrives on the bus and for
// one read from a namespace's recovery log (cluster/jetstream_log.h).

#include <absl/status/statusor.h>

#include <string_view>
#include <vector>

#include "edge/engineio/packet.h"
#include "edge/socketio/broadcast.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {

// The Socket.IO form of a bus target: a socket id is a room of its own.
sio::BroadcastTarget ToBroadcastTarget(const v1::Target& target);

// The delivery's packet, encoded once: its frames as relayed by another edge,
// or the EVENT its event and arguments make in `nsp`. InvalidArgument for
// arguments that do not convert.
absl::StatusOr<std::vector<eio::Frame>> DeliveryFrames(const v1::Delivery& delivery,
                                                       std::string_view nsp);

}  // namespace switchboard::cluster
