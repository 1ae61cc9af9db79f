#pragma once
// The Admin UI's JSON shapes (@socket.io/admin-ui's lib/typed-events.ts) from Switchboard's
// protos: a SerializedSocket from the index's SocketInfo, `server_stats` from an edge's
// AdminServerStats.

#include <chrono>
#include <string>

#include "nlohmann/json.hpp"
#include "switchboard/v1/admin.pb.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::admin_ui {

// As the Socket.IO layer's (sio::Json): keys in insertion order.
using Json = nlohmann::ordered_json;

// {id, clientId, transport, nsp, data, handshake: {address, headers, query, issued, secure,
// time, url, xdomain}, rooms}. The index keeps no headers or query: those are {}; `data`
// holds the user id and the claims the namespace keeps; `rooms` starts with the socket's own.
Json SerializeSocket(const v1::SocketInfo& socket);
Json ServerStatsJson(const v1::AdminServerStats& stats);
// As JavaScript's Date.toISOString(): "2026-12-07T14:00:00.123Z".
std::string IsoTime(std::chrono::system_clock::time_point time);
std::string TransportName(v1::Transport transport);

}  // namespace switchboard::admin_ui
