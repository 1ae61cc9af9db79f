#pragma once

// A namespace socket's state (sio::MovedSocketState) as the bus carries it
// (v1::MovedSocket): for session moves and for the session records of
// connection state recovery.

#include "edge/socketio/moved_socket.h"
#include "switchboard/v1/move.pb.h"

namespace switchboard::cluster {

void ToProto(const sio::MovedSocketState& state, v1::MovedSocket* out);
sio::MovedSocketState FromProto(const v1::MovedSocket& in);
// JSON text as move messages carry it (claims, data, auth, ack arguments);
// empty: null.
sio::Json ParseJson(std::string_view text);

}  // namespace switchboard::cluster
