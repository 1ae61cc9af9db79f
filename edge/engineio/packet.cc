#include "edge/engineio/packet.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "edge/engineio/base64.h"

namespace switchboard::eio {
namespace {

// A client never sends `open` ('0'); the server does.
bool IsValidInboundType(char c) { return c >= '1' && c <= '6'; }

absl::StatusOr<Packet> DecodeTextPacket(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("eio: empty packet");
  if (!IsValidInboundType(text[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("eio: invalid packet type 0x",
                     absl::Hex(static_cast<unsigned char>(text[0]))));
  }
  Packet packet;
  packet.type = static_cast<PacketType>(text[0]);
  packet.data.assign(text.substr(1));
  return packet;
}

std::shared_ptr<const std::string> Share(std::string&& s) {
  return std::make_shared<const std::string>(std::move(s));
}

}  // namespace

Frame MakeTextFrame(PacketType type, std::string_view data) {
  std::string bytes;
  bytes.reserve(1 + data.size());
  bytes.push_back(static_cast<char>(type));
  bytes.append(data);
  return Frame{Share(std::move(bytes)), /*binary=*/false};
}

Frame MakeBinaryFrame(std::string_view bytes) {
  return Frame{Share(std::string(bytes)), /*binary=*/true};
}

absl::StatusOr<Packet> DecodeFrame(std::string_view frame, bool binary_frame) {
  if (binary_frame) {
    Packet packet;
    packet.type = PacketType::kMessage;
    packet.data.assign(frame);
    packet.binary = true;
    return packet;
  }
  return DecodeTextPacket(frame);
}

absl::StatusOr<std::vector<Packet>> DecodePayload(std::string_view body,
                                                  size_t max_packets) {
  if (body.empty()) return absl::InvalidArgumentError("eio: empty payload");

  // Count first so the vector is allocated once and oversized bodies are
  // refused before any packet is copied.
  const size_t count = static_cast<size_t>(std::count(body.begin(), body.end(),
                                                      kRecordSeparator)) +
                       1;
  if (count > max_packets) {
    return absl::InvalidArgumentError(absl::StrCat(
        "eio: payload holds ", count, " packets, limit is ", max_packets));
  }

  std::vector<Packet> packets;
  packets.reserve(count);
  size_t pos = 0;
  while (true) {
    const size_t end = body.find(kRecordSeparator, pos);
    const std::string_view piece =
        body.substr(pos, end == std::string_view::npos ? body.npos : end - pos);
    if (!piece.empty() && piece[0] == 'b') {
      absl::StatusOr<std::string> bytes = Base64Decode(piece.substr(1));
      if (!bytes.ok()) return bytes.status();
      Packet& packet = packets.emplace_back();
      packet.type = PacketType::kMessage;
      packet.data = *std::move(bytes);
      packet.binary = true;
    } else {
      absl::StatusOr<Packet> packet = DecodeTextPacket(piece);
      if (!packet.ok()) return packet.status();
      packets.push_back(*std::move(packet));
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return packets;
}

size_t PayloadAppendSize(size_t current_size, const Frame& frame) {
  // A default-constructed frame carries no packet and is skipped.
  if (frame.bytes == nullptr) return 0;
  const size_t separator = current_size == 0 ? 0 : 1;
  return separator + (frame.binary ? 1 + Base64EncodedSize(frame.bytes->size())
                                   : frame.bytes->size());
}

void AppendToPayload(std::string& out, const Frame& frame) {
  if (frame.bytes == nullptr) return;
  const size_t needed = out.size() + PayloadAppendSize(out.size(), frame);
  // Grow geometrically ourselves: exact reserves on every append would turn
  // building a payload quadratic on some standard libraries.
  if (needed > out.capacity()) {
    out.reserve(std::max(needed, 2 * out.capacity()));
  }

  if (!out.empty()) out.push_back(kRecordSeparator);
  if (frame.binary) {
    out.push_back('b');
    Base64EncodeAppend(*frame.bytes, out);
  } else {
    out.append(*frame.bytes);
  }
}

}  // namespace switchboard::eio
