#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/packet.h"

namespace switchboard::sio {

// Key order is kept on re-encode.
using Json = nlohmann::ordered_json;

enum class PacketType : int {
  kConnect = 0,
  kDisconnect = 1,
  kEvent = 2,
  kAck = 3,
  kConnectError = 4,
  kBinaryEvent = 5,
  kBinaryAck = 6,
};

// An EVENT payload the decoder checked but did not parse (Decoder::FeedLazy):
// the message text it arrived in and where its parts are (EventSpans, offset
// by json_begin).
struct RawEvent {
  std::string text;       // the Engine.IO message data
  size_t json_begin = 0;  // the payload [name, args...]: text[json_begin, end)
  size_t name_begin = 0;  // the event name (no escapes)
  size_t name_end = 0;
  size_t args_begin = 0;  // the arguments, comma-separated, no brackets
  size_t args_end = 0;
  size_t first_end = 0;  // end of the first argument (args_begin: none)
};

struct Packet {
  PacketType type = PacketType::kEvent;
  std::string nsp = "/";
  std::optional<uint64_t> id;  // Ack id.
  // Absent for e.g. "41". Binary attachments appear IN PLACE as
  // Json::binary_t nodes.
  std::optional<Json> data;
  // Set instead of data for an EVENT packet left unparsed (FeedLazy only).
  std::optional<RawEvent> raw = std::nullopt;
};

// Encodes into Engine.IO frames: first a text message frame "4" + socket.io
// text, then one binary frame per attachment.
//
// For EVENT/ACK (and their BINARY_ variants) every Json binary node anywhere
// in data is replaced by {"_placeholder":true,"num":N} (depth-first, in
// order) and the type becomes kBinaryEvent/kBinaryAck with the "N-"
// attachment count prefix; without binary nodes they are sent as plain
// kEvent/kAck. JSON output is compact, key order kept, invalid UTF-8 in
// strings replaced by U+FFFD (never throws). The namespace is written only
// when it is not "/" ("42/chat,..."); the id right after the nsp. Null or
// absent data is omitted, as the reference encoder does.
std::vector<eio::Frame> Encode(const Packet& packet);

// EVENT packet with data = [event, args...]. `args` should be an array; any
// other value is sent as a single argument.
Packet MakeEvent(std::string_view nsp, std::string_view event, Json args,
                 std::optional<uint64_t> ack_id = std::nullopt);

// True when a Json binary node occurs anywhere in `j`.
bool HasBinary(const Json& j);

}  // namespace switchboard::sio
