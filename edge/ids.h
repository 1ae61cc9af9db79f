#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace switchboard::edge {

inline constexpr size_t kIdLength = 20;

// A new unguessable id (20 url-safe characters, 114 random bits) whose first
// character names the shard that owns it, so a request or a publish for it
// goes to that shard with no look-up.
std::string NewId(size_t shard);
// The shard named by an id from NewId, or -1 when the id is malformed.
int ShardOfId(std::string_view id);

// Edge and broker ids (node ids): 1..64 characters of [A-Za-z0-9_-], so that
// the bus uses them as subject tokens as they are (bus/routing.h).
bool ValidNodeId(std::string_view id);

// Socket ids in a cluster are "<edge-id>.<local id>": a publish to one socket
// goes to its edge with no look-up. The local id (NewId) has no '.'. The one
// home of this format: the edge makes ids with it, the bus and the broker
// route by it.
std::string MakeSocketId(std::string_view edge_id, std::string_view local_id);
// The edge id of a socket id; empty when the id is not of that form.
std::string_view EdgeOfSocketId(std::string_view socket_id);

}  // namespace switchboard::edge
