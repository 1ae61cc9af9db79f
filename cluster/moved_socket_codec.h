#pragma once

// A socket's state (sio::MovedSocketState) on the wire: what a session move
// carries (cluster/session_mover.h) and what a session record keeps
// (cluster/kv_session_store.h).

#include "edge/socketio/moved_socket.h"
#include "switchboard/v1/move.pb.h"

namespace switchboard::cluster {

void MovedSocketToProto(const sio::MovedSocketState& state, v1::MovedSocket* out);
// Claims, data or auth that are not JSON become null.
sio::MovedSocketState MovedSocketFromProto(const v1::MovedSocket& in);

}  // namespace switchboard::cluster
