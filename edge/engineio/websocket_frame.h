#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace switchboard::eio::ws {

// RFC 6455 framing, both directions, for the edge's own WebSocket transport:
// the server writes unmasked frames (a header of at most 10 bytes in front of
// payload bytes shared by every recipient) and reads masked client frames.

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

inline constexpr size_t kMaxServerHeader = 10;
inline constexpr size_t kMaxControlPayload = 125;

// Length of the header EncodeServerHeader writes for `payload_size` bytes.
constexpr size_t ServerHeaderSize(uint64_t payload_size) {
  return payload_size < 126 ? 2 : payload_size <= 0xFFFF ? 4 : 10;
}

// Writes the header of a final, unmasked frame of `payload_size` bytes into
// `out`; returns its length (2, 4 or 10).
size_t EncodeServerHeader(Opcode opcode, uint64_t payload_size, uint8_t* out);

// One frame parsed from a client. `payload` points into the buffer given to
// ParseClientFrame, unmasked in place.
struct ClientFrame {
  bool fin = false;
  Opcode opcode = kContinuation;
  std::string_view payload;
};

enum class ParseStatus {
  kFrame,       // `frame` holds one frame; `consumed` bytes were used
  kIncomplete,  // more bytes needed; nothing consumed
  kProtocol,    // not a valid client frame: fail the connection (1002)
  kTooBig,      // payload over the limit: fail the connection (1009)
};

// Parses the frame at the start of data[0, size). A client frame must be
// masked, use no reserved bits (no extension is negotiated) and a known
// opcode; control frames are final and at most 125 bytes. `max_payload`
// bounds a data frame before any of its payload is buffered.
ParseStatus ParseClientFrame(char* data, size_t size, uint64_t max_payload, ClientFrame* frame,
                             size_t* consumed);

// Strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF), as
// RFC 6455 requires of text messages.
bool IsValidUtf8(std::string_view text);

}  // namespace switchboard::eio::ws
