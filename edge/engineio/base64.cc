#include "edge/engineio/base64.h"

#include <array>
#include <cstdint>

#include "absl/status/status.h"

namespace switchboard::eio {
namespace {

constexpr char kAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Maps a character to its 6-bit value; 0xFF marks anything outside the
// alphabet (including '='), so one OR over a quantum detects bad input.
constexpr std::array<uint8_t, 256> MakeDecodeTable() {
  std::array<uint8_t, 256> table{};
  for (auto& v : table) v = 0xFF;
  for (int i = 0; i < 64; ++i) {
    table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<uint8_t>(i);
  }
  return table;
}

constexpr std::array<uint8_t, 256> kDecode = MakeDecodeTable();

// Writes the encoding of `in` to `dst`, which must hold
// Base64EncodedSize(in.size()) bytes.
void EncodeTo(std::string_view in, char* dst) {
  const auto* src = reinterpret_cast<const uint8_t*>(in.data());
  size_t n = in.size();
  while (n >= 3) {
    const uint32_t v =
        (uint32_t{src[0]} << 16) | (uint32_t{src[1]} << 8) | uint32_t{src[2]};
    dst[0] = kAlphabet[v >> 18];
    dst[1] = kAlphabet[(v >> 12) & 0x3F];
    dst[2] = kAlphabet[(v >> 6) & 0x3F];
    dst[3] = kAlphabet[v & 0x3F];
    src += 3;
    dst += 4;
    n -= 3;
  }
  if (n == 1) {
    const uint32_t v = uint32_t{src[0]} << 16;
    dst[0] = kAlphabet[v >> 18];
    dst[1] = kAlphabet[(v >> 12) & 0x3F];
    dst[2] = '=';
    dst[3] = '=';
  } else if (n == 2) {
    const uint32_t v = (uint32_t{src[0]} << 16) | (uint32_t{src[1]} << 8);
    dst[0] = kAlphabet[v >> 18];
    dst[1] = kAlphabet[(v >> 12) & 0x3F];
    dst[2] = kAlphabet[(v >> 6) & 0x3F];
    dst[3] = '=';
  }
}

}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out(Base64EncodedSize(in.size()), '\0');
  EncodeTo(in, out.data());
  return out;
}

void Base64EncodeAppend(std::string_view in, std::string& out) {
  const size_t old_size = out.size();
  out.resize(old_size + Base64EncodedSize(in.size()));
  EncodeTo(in, out.data() + old_size);
}

absl::StatusOr<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) {
    return absl::InvalidArgumentError("base64: length not a multiple of 4");
  }
  if (in.empty()) return std::string();

  // Only the final quantum may carry padding.
  size_t pad = 0;
  if (in[in.size() - 1] == '=') pad = in[in.size() - 2] == '=' ? 2 : 1;

  std::string out(in.size() / 4 * 3 - pad, '\0');
  const auto* src = reinterpret_cast<const uint8_t*>(in.data());
  auto* dst = reinterpret_cast<uint8_t*>(out.data());
  const size_t full_quanta = in.size() / 4 - (pad != 0 ? 1 : 0);

  for (size_t q = 0; q < full_quanta; ++q, src += 4, dst += 3) {
    const uint8_t a = kDecode[src[0]], b = kDecode[src[1]], c = kDecode[src[2]],
                  d = kDecode[src[3]];
    if ((a | b | c | d) & 0x80) {
      return absl::InvalidArgumentError("base64: invalid character");
    }
    const uint32_t v = (uint32_t{a} << 18) | (uint32_t{b} << 12) |
                       (uint32_t{c} << 6) | uint32_t{d};
    dst[0] = static_cast<uint8_t>(v >> 16);
    dst[1] = static_cast<uint8_t>(v >> 8);
    dst[2] = static_cast<uint8_t>(v);
  }

  if (pad != 0) {
    const uint8_t a = kDecode[src[0]], b = kDecode[src[1]];
    // With one '=' the third char is data; with two it is the other '='.
    const uint8_t c = pad == 1 ? kDecode[src[2]] : 0;
    if ((a | b | c) & 0x80) {
      return absl::InvalidArgumentError("base64: invalid character");
    }
    const uint32_t v =
        (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6);
    dst[0] = static_cast<uint8_t>(v >> 16);
    if (pad == 1) dst[1] = static_cast<uint8_t>(v >> 8);
  }
  return out;
}

}  // namespace switchboard::eio
