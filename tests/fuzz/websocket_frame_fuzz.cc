// links: sb_eio_codec
//
// The edge's WebSocket frame reader on client bytes (what
// WebSocketTransport::Consume does with every read): frames parsed one after
// another from the input, with the first byte choosing the message size
// limit. Invariants: a parsed frame lies inside the input and uses at least
// its 6-byte minimum; control frames are final and at most 125 bytes; a frame
// larger than the limit is refused (kTooBig), never returned; parsing a prefix
// of a parsed frame reports kIncomplete; a masked re-encoding parses back to
// the same frame. IsValidUtf8 runs on every text payload.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "edge/engineio/websocket_frame.h"
#include "tests/fuzz/fuzz_check.h"

namespace ws = switchboard::eio::ws;

namespace {

std::string Masked(const ws::ClientFrame& frame) {
  std::string out(1, static_cast<char>((frame.fin ? 0x80 : 0) | frame.opcode));
  size_t n = frame.payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(uint64_t{n} >> (8 * i)));
  }
  const char key[4] = {0x5a, 0x01, static_cast<char>(0xff), 0x33};
  out.append(key, 4);
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<char>(frame.payload[i] ^ key[i % 4]));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint64_t limits[4] = {0, 100, 65536, 1 << 20};
  uint64_t limit = limits[data[0] & 3];
  std::vector<char> buffer(data + 1, data + size);
  size_t offset = 0;
  for (int frames = 0; frames < 1000 && offset < buffer.size(); ++frames) {
    ws::ClientFrame frame;
    size_t used = 0;
    size_t rest = buffer.size() - offset;
    ws::ParseStatus status =
        ws::ParseClientFrame(buffer.data() + offset, rest, limit, &frame, &used);
    if (status != ws::ParseStatus::kFrame) break;
    FUZZ_CHECK(used >= 6 && used <= rest, "frame inside the input");
    FUZZ_CHECK(frame.payload.data() >= buffer.data() + offset &&
                   frame.payload.data() + frame.payload.size() == buffer.data() + offset + used,
               "payload is the frame's tail");
    bool control = frame.opcode & 0x8;
    FUZZ_CHECK(!control || (frame.fin && frame.payload.size() <= ws::kMaxControlPayload),
               "control frames are final and short");
    FUZZ_CHECK(control || frame.payload.size() <= limit, "data frames within the limit");
    std::string prefix(buffer.data() + offset, used - 1);
    ws::ClientFrame ignored;
    size_t ignored_used = 0;
    FUZZ_CHECK(ws::ParseClientFrame(prefix.data(), prefix.size(), limit, &ignored, &ignored_used) ==
                   ws::ParseStatus::kIncomplete,
               "a cut frame is incomplete");
    std::string again = Masked(frame);
    ws::ClientFrame reparsed;
    size_t reparsed_used = 0;
    FUZZ_CHECK(ws::ParseClientFrame(again.data(), again.size(), limit, &reparsed, &reparsed_used) ==
                   ws::ParseStatus::kFrame,
               "re-encoding parses");
    FUZZ_CHECK(reparsed_used == again.size() && reparsed.fin == frame.fin &&
                   reparsed.opcode == frame.opcode && reparsed.payload == frame.payload,
               "re-encoding round-trips");
    if (frame.opcode == ws::kText) (void)ws::IsValidUtf8(frame.payload);
    offset += used;
  }
  return 0;
}
