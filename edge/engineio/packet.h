#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace switchboard::eio {

enum class PacketType : char {
  kOpen = '0',
  kClose = '1',
  kPing = '2',
  kPong = '3',
  kMessage = '4',
  kUpgrade = '5',
  kNoop = '6',
};

// Separates packets in an HTTP long-polling payload.
inline constexpr char kRecordSeparator = '\x1e';

// One decoded inbound packet. A binary packet is always a message; `data`
// then holds raw bytes.
struct Packet {
  PacketType type = PacketType::kNoop;
  std::string data;
  bool binary = false;
};

// An encoded outbound packet. Shared, immutable bytes so one broadcast is
// encoded once for all recipients. Text frames hold the type character
// followed by the data ("4hello"); binary frames hold raw bytes.
struct Frame {
  std::shared_ptr<const std::string> bytes;
  bool binary = false;
};

Frame MakeTextFrame(PacketType type, std::string_view data = {});
Frame MakeBinaryFrame(std::string_view bytes);

// Decodes a packet carried by one WebSocket frame (text frame: type char +
// data; binary frame: raw message bytes). Only client-to-server types (1-6)
// are accepted.
absl::StatusOr<Packet> DecodeFrame(std::string_view frame, bool binary_frame);

// Decodes an HTTP long-polling body: packets separated by '\x1e'; a packet
// starting with 'b' is a base64 binary message. Empty body, empty packet,
// unknown type char, bad base64 -> InvalidArgument. `max_packets` bounds the
// count (InvalidArgument past it).
absl::StatusOr<std::vector<Packet>> DecodePayload(std::string_view body,
                                                  size_t max_packets = 1 << 16);

// Bytes AppendToPayload adds for `frame` to a payload of `current_size`
// bytes; lets callers enforce a maxPayload budget before appending.
size_t PayloadAppendSize(size_t current_size, const Frame& frame);

// Appends `frame` to a polling payload being built in `out` (adds the '\x1e'
// separator when out is non-empty; binary -> 'b' + base64).
void AppendToPayload(std::string& out, const Frame& frame);

}  // namespace switchboard::eio
