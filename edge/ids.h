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

}  // namespace switchboard::edge
