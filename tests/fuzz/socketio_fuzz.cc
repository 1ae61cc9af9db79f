// links: sb_sio_codec
//
// The Socket.IO decoder as one connection's sio::Client drives it: a stateful
// sio::Decoder with the production limits (DecoderLimits{}, the configuration
// defaults, with max_attachment_bytes = the default maxHttpBufferSize as
// sio::Server sets it) fed a sequence of Engine.IO message payloads, so binary
// attachment reconstruction across messages is exercised.
//
// Input format: messages separated by the byte 0xFF (never part of valid
// UTF-8 text); the first byte of each message picks the frame kind, 'B' or
// 'b' = binary (an attachment), anything else = text (the Socket.IO packet
// after the Engine.IO '4'); the rest is the payload. E.g.
//   "T451-[\"up\",{\"_placeholder\":true,\"num\":0}]" 0xFF "B\x01\x02"
//
// Unlike the server, which closes the connection, the target keeps feeding
// the same decoder after an error (the decoder resets itself).
//
// Invariants: Feed never returns a BINARY_* type; pending() agrees with the
// result; after an error nothing is pending. Every decoded packet is encoded
// (sio::Encode), the frames are decoded again by a fresh decoder and encoded
// again: the two encodings must be identical (encode∘decode is idempotent
// after one round: attachments, placeholders, nsp, ack id, JSON). Each text
// message also goes to fresh decoders through Feed and FeedLazy: same verdict,
// and an event left as text holds the arguments Feed parses.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/options.h"
#include "edge/socketio/decoder.h"
#include "edge/socketio/event_args.h"
#include "edge/socketio/packet.h"
#include "tests/fuzz/fuzz_check.h"

namespace sio = switchboard::sio;
namespace eio = switchboard::eio;

namespace {

constexpr char kSeparator = '\xff';

// What sio::Server runs with by default (max_attachment_bytes, where the
// decoder has it, 0 = the engine's maxHttpBufferSize).
template <class L = sio::DecoderLimits>
L ProductionLimits() {
  L limits{};
  if constexpr (requires { limits.max_attachment_bytes; }) {
    if (limits.max_attachment_bytes == 0) {
      limits.max_attachment_bytes = eio::Options{}.max_http_buffer_size;
    }
  }
  return limits;
}

template <class L>
void Unlimited(L& limits, size_t attachments) {
  limits.max_attachments = attachments;
  if constexpr (requires { limits.max_attachment_bytes; }) limits.max_attachment_bytes = 0;
}

std::vector<std::string> EncodeToBytes(const sio::Packet& packet) {
  std::vector<std::string> out;
  for (const eio::Frame& frame : sio::Encode(packet)) {
    out.push_back((frame.binary ? "B" : "T") + *frame.bytes);
  }
  return out;
}

void CheckRoundTrip(const sio::Packet& packet, const sio::DecoderLimits& limits) {
  const std::vector<eio::Frame> first = sio::Encode(packet);
  FUZZ_CHECK(!first.empty() && !first[0].binary, "encoding does not start with a text frame");
  FUZZ_CHECK(first[0].bytes->size() >= 2 && (*first[0].bytes)[0] == '4',
             "encoded text frame is not an Engine.IO message");

  // Several placeholders may name one attachment, so the re-encoding can
  // carry more attachments than the production limit admits: not what is
  // checked here.
  sio::DecoderLimits relaxed = limits;
  Unlimited(relaxed, first.size());
  sio::Decoder decoder(relaxed);
  std::optional<sio::Packet> decoded;
  for (size_t i = 0; i < first.size(); ++i) {
    std::string_view bytes = *first[i].bytes;
    if (!first[i].binary) bytes.remove_prefix(1);  // the Engine.IO '4'
    auto result = decoder.Feed(bytes, first[i].binary);
    FUZZ_CHECK(result.ok(), "our own encoding does not decode");
    if (i + 1 < first.size()) {
      FUZZ_CHECK(!result->has_value(), "packet complete before its last attachment");
    } else {
      FUZZ_CHECK(result->has_value(), "packet incomplete after its last attachment");
      decoded = std::move(**result);
    }
  }
  FUZZ_CHECK(decoded.has_value(), "no packet decoded");
  FUZZ_CHECK(decoded->type == packet.type && decoded->nsp == packet.nsp &&
                 decoded->id == packet.id,
             "type, namespace or ack id changed in a round trip");
  FUZZ_CHECK(EncodeToBytes(*decoded) == EncodeToBytes(packet),
             "encode(decode(encode(p))) != encode(p)");
}

// FeedLazy must agree with Feed: the same verdict (and limit breached), and an
// event it leaves as text must hold what Feed parses.
void CheckLazy(std::string_view message, const sio::DecoderLimits& limits) {
  sio::Decoder full(limits);
  sio::Decoder lazy(limits);
  auto expected = full.Feed(message, false);
  auto got = lazy.FeedLazy(std::string(message), false);
  FUZZ_CHECK(expected.ok() == got.ok(), "FeedLazy and Feed disagree on validity");
  FUZZ_CHECK(full.breach() == lazy.breach(), "FeedLazy and Feed disagree on the limit breached");
  if (!got.ok() || !got->has_value() || !(*got)->raw.has_value()) return;
  FUZZ_CHECK(expected->has_value(), "FeedLazy made a packet where Feed waits");
  const sio::Packet& parsed = **expected;
  sio::Packet& raw = **got;
  FUZZ_CHECK(parsed.type == sio::PacketType::kEvent && raw.type == parsed.type &&
                 raw.nsp == parsed.nsp && raw.id == parsed.id && !raw.data.has_value(),
             "FeedLazy header differs from Feed");
  sio::EventArgs want(*parsed.data);
  sio::EventArgs have(std::move(*raw.raw));
  FUZZ_CHECK(have.name() == want.name(), "raw event name differs");
  const std::string list(have.text());
  const sio::Json from_text = sio::Json::parse("[" + list + "]", nullptr, false);
  const std::string first(have.first_text());
  const sio::Json first_json = sio::Json::parse("[" + first + "]", nullptr, false);
  const sio::Json& args = have.json();
  FUZZ_CHECK(args == want.json(), "lazily parsed arguments differ");
  FUZZ_CHECK(from_text == args, "raw argument text differs from the arguments");
  FUZZ_CHECK(
      args.empty() ? first_json == sio::Json::array() : first_json == sio::Json::array({args[0]}),
      "raw first argument differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const sio::DecoderLimits limits = ProductionLimits();
  sio::Decoder decoder(limits);

  size_t pos = 0;
  while (pos <= input.size()) {
    size_t end = input.find(kSeparator, pos);
    if (end == std::string_view::npos) end = input.size();
    std::string_view message = input.substr(pos, end - pos);
    pos = end + 1;
    if (message.empty()) continue;

    const bool binary = message[0] == 'B' || message[0] == 'b';
    message.remove_prefix(1);
    const bool was_pending = decoder.pending();
    if (!binary && !was_pending) CheckLazy(message, limits);
    auto result = decoder.Feed(message, binary);
    if (!result.ok()) {
      FUZZ_CHECK(!decoder.pending(), "decoder still pending after an error");
      continue;
    }
    FUZZ_CHECK(!binary || was_pending, "binary message accepted while nothing was pending");
    if (!result->has_value()) {
      FUZZ_CHECK(decoder.pending(), "waiting for attachments but not pending");
      continue;
    }
    FUZZ_CHECK(!decoder.pending(), "packet returned while still pending");
    const sio::Packet& packet = **result;
    FUZZ_CHECK(packet.type != sio::PacketType::kBinaryEvent &&
                   packet.type != sio::PacketType::kBinaryAck,
               "a BINARY_* type escaped the decoder");
    FUZZ_CHECK(!packet.nsp.empty() && packet.nsp[0] == '/', "namespace without a leading '/'");
    CheckRoundTrip(packet, limits);
  }
  return 0;
}
