#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "edge/engineio/packet.h"

namespace switchboard::recovery {

// Whether `frames` are a packet a recovery log takes: an EVENT or
// BINARY_EVENT without an ack id.
bool IsRecoverable(const std::vector<eio::Frame>& frames);

// The packet of a recoverable publish with its offset as its last argument,
// as the reference server sends it (a decimal string): `frames` must be an
// EVENT or BINARY_EVENT without an ack id (anything else is not recoverable:
// nullopt). Attachments (frames after the first) are shared, not copied.
std::optional<std::vector<eio::Frame>> WithOffset(const std::vector<eio::Frame>& frames,
                                                  uint64_t offset);

// A client's offset ("17"); nullopt for anything but a decimal uint64.
std::optional<uint64_t> ParseOffset(std::string_view text);

}  // namespace switchboard::recovery
