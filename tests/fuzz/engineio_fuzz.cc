// links: sb_eio_codec
//
// The Engine.IO codec on client bytes, every entry point the server uses:
//   DecodeFrame(bytes, false)  a WebSocket text frame   (Session::OnFrame)
//   DecodeFrame(bytes, true)   a WebSocket binary frame (Session::OnFrame)
//   DecodePayload(bytes)       a polling POST body, text and 'b'+base64 packets
//                              (Session::HandlePost, default max_packets)
//   Base64Decode(bytes)        what a 'b' packet goes through
// Every input goes through all of them. Invariants: a decoded payload
// re-encodes (AppendToPayload, PayloadAppendSize) to a payload that decodes to
// the same packets, byte for byte the input when it has no binary packet; the
// packet count and the max_packets limit agree; a decoded text frame
// re-encodes to the input; base64 round-trips.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/base64.h"
#include "edge/engineio/packet.h"
#include "tests/fuzz/fuzz_check.h"

namespace eio = switchboard::eio;

namespace {

bool SamePackets(const std::vector<eio::Packet>& a, const std::vector<eio::Packet>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].type != b[i].type || a[i].binary != b[i].binary || a[i].data != b[i].data) {
      return false;
    }
  }
  return true;
}

eio::Frame ToFrame(const eio::Packet& packet) {
  return packet.binary ? eio::MakeBinaryFrame(packet.data)
                       : eio::MakeTextFrame(packet.type, packet.data);
}

void CheckPayload(std::string_view body) {
  auto packets = eio::DecodePayload(body);
  const size_t count =
      static_cast<size_t>(std::count(body.begin(), body.end(), eio::kRecordSeparator)) + 1;

  // The limit: a payload over max_packets is refused, one within it decodes
  // exactly as without the limit.
  const size_t limit = 3;
  auto limited = eio::DecodePayload(body, limit);
  if (count > limit) {
    FUZZ_CHECK(!limited.ok(), "payload over max_packets accepted");
  } else {
    FUZZ_CHECK(limited.ok() == packets.ok(), "max_packets changed the verdict");
    if (limited.ok()) FUZZ_CHECK(SamePackets(*limited, *packets), "max_packets changed packets");
  }

  if (!packets.ok()) return;
  FUZZ_CHECK(!body.empty(), "empty payload accepted");
  FUZZ_CHECK(packets->size() == count, "packet count != separators + 1");

  std::string encoded;
  bool any_binary = false;
  for (const eio::Packet& packet : *packets) {
    FUZZ_CHECK(packet.type >= eio::PacketType::kClose && packet.type <= eio::PacketType::kNoop,
               "decoded a packet type a client may not send");
    FUZZ_CHECK(!packet.binary || packet.type == eio::PacketType::kMessage,
               "binary packet that is not a message");
    FUZZ_CHECK(packet.binary || packet.data.find(eio::kRecordSeparator) == std::string::npos,
               "separator inside a text packet");
    any_binary |= packet.binary;
    const eio::Frame frame = ToFrame(packet);
    const size_t before = encoded.size();
    const size_t expected = eio::PayloadAppendSize(before, frame);
    eio::AppendToPayload(encoded, frame);
    FUZZ_CHECK(encoded.size() - before == expected, "PayloadAppendSize disagrees with append");
  }
  if (!any_binary) FUZZ_CHECK(encoded == body, "text payload does not re-encode to itself");

  auto again = eio::DecodePayload(encoded);
  FUZZ_CHECK(again.ok(), "re-encoded payload does not decode");
  FUZZ_CHECK(SamePackets(*again, *packets), "payload round trip changed packets");
}

void CheckFrames(std::string_view bytes) {
  auto text = eio::DecodeFrame(bytes, /*binary_frame=*/false);
  if (text.ok()) {
    FUZZ_CHECK(!text->binary, "text frame decoded as binary");
    FUZZ_CHECK(text->type >= eio::PacketType::kClose && text->type <= eio::PacketType::kNoop,
               "decoded a packet type a client may not send");
    const eio::Frame frame = eio::MakeTextFrame(text->type, text->data);
    FUZZ_CHECK(*frame.bytes == bytes, "text frame does not re-encode to itself");
  } else {
    FUZZ_CHECK(bytes.empty() || bytes[0] < '1' || bytes[0] > '6',
               "valid text frame refused");
  }

  auto binary = eio::DecodeFrame(bytes, /*binary_frame=*/true);
  FUZZ_CHECK(binary.ok(), "binary frame refused");
  FUZZ_CHECK(binary->binary && binary->type == eio::PacketType::kMessage &&
                 binary->data == bytes,
             "binary frame not passed through");
}

void CheckBase64(std::string_view bytes) {
  auto decoded = eio::Base64Decode(bytes);
  if (decoded.ok()) {
    FUZZ_CHECK(bytes.size() % 4 == 0, "base64 of a length not a multiple of 4 accepted");
    FUZZ_CHECK(eio::Base64EncodedSize(decoded->size()) == bytes.size(),
               "base64 decoded length inconsistent");
    const std::string reencoded = eio::Base64Encode(*decoded);
    auto again = eio::Base64Decode(reencoded);
    FUZZ_CHECK(again.ok() && *again == *decoded, "base64 re-encoding does not decode the same");
  }
  // Any bytes survive an encode/decode round trip.
  std::string appended = "x";
  eio::Base64EncodeAppend(bytes, appended);
  FUZZ_CHECK(appended.size() == 1 + eio::Base64EncodedSize(bytes.size()),
             "Base64EncodeAppend length");
  auto round = eio::Base64Decode(std::string_view(appended).substr(1));
  FUZZ_CHECK(round.ok() && *round == bytes, "base64 round trip of raw bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckPayload(bytes);
  CheckFrames(bytes);
  CheckBase64(bytes);
  return 0;
}
