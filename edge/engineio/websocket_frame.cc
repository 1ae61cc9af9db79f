#include "edge/engineio/websocket_frame.h"

#include <cstring>

namespace switchboard::eio::ws {

size_t EncodeServerHeader(Opcode opcode, uint64_t payload_size, uint8_t* out) {
  out[0] = static_cast<uint8_t>(0x80 | opcode);
  if (payload_size < 126) {
    out[1] = static_cast<uint8_t>(payload_size);
    return 2;
  }
  if (payload_size <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<uint8_t>(payload_size >> 8);
    out[3] = static_cast<uint8_t>(payload_size);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<uint8_t>(payload_size >> (56 - 8 * i));
  return 10;
}

namespace {

void Unmask(char* data, size_t size, const uint8_t key[4]) {
  // Eight bytes at a time: the key repeated twice, then the tail bytewise.
  uint64_t key8;
  uint8_t rep[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  std::memcpy(&key8, rep, 8);
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word;
    std::memcpy(&word, data + i, 8);
    word ^= key8;
    std::memcpy(data + i, &word, 8);
  }
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ key[i & 3]);
}

}  // namespace

ParseStatus ParseClientFrame(char* data, size_t size, uint64_t max_payload, ClientFrame* frame,
                             size_t* consumed) {
  if (size < 2) return ParseStatus::kIncomplete;
  const auto* bytes = reinterpret_cast<const uint8_t*>(data);
  bool fin = bytes[0] & 0x80;
  if (bytes[0] & 0x70) return ParseStatus::kProtocol;  // RSV1-3 without an extension
  auto opcode = static_cast<Opcode>(bytes[0] & 0x0F);
  bool control = opcode & 0x8;
  switch (opcode) {
    case kContinuation:
    case kText:
    case kBinary:
    case kClose:
    case kPing:
    case kPong: break;
    default: return ParseStatus::kProtocol;
  }
  if (!(bytes[1] & 0x80)) return ParseStatus::kProtocol;  // clients must mask
  uint64_t length = bytes[1] & 0x7F;
  size_t header = 2;
  if (length == 126) {
    if (size < 4) return ParseStatus::kIncomplete;
    length = (uint64_t{bytes[2]} << 8) | bytes[3];
    if (length < 126) return ParseStatus::kProtocol;  // not the minimal encoding
    header = 4;
  } else if (length == 127) {
    if (size < 10) return ParseStatus::kIncomplete;
    length = 0;
    for (int i = 0; i < 8; ++i) length = (length << 8) | bytes[2 + i];
    if (length >> 63) return ParseStatus::kProtocol;
    if (length <= 0xFFFF) return ParseStatus::kProtocol;
    header = 10;
  }
  if (control && (!fin || length > kMaxControlPayload)) return ParseStatus::kProtocol;
  if (!control && length > max_payload) return ParseStatus::kTooBig;
  if (size < header + 4) return ParseStatus::kIncomplete;
  uint8_t key[4];
  std::memcpy(key, bytes + header, 4);
  header += 4;
  if (size - header < length) return ParseStatus::kIncomplete;
  Unmask(data + header, length, key);
  frame->fin = fin;
  frame->opcode = opcode;
  frame->payload = std::string_view(data + header, length);
  *consumed = header + length;
  return ParseStatus::kFrame;
}

bool IsValidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII runs eight bytes at a time.
    if (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    uint8_t c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t min;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace switchboard::eio::ws
