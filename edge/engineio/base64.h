#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace switchboard::eio {

// Standard alphabet (RFC 4648 section 4) with '=' padding.
std::string Base64Encode(std::string_view in);

// Strict: length must be a multiple of 4, only alphabet characters, and at
// most two '=' at the very end. Non-zero bits in the last quantum's unused
// low bits are tolerated, as every mainstream decoder does.
absl::StatusOr<std::string> Base64Decode(std::string_view in);

// Exact encoded length of `n` input bytes.
constexpr size_t Base64EncodedSize(size_t n) { return (n + 2) / 3 * 4; }

// Appends the encoding of `in` to `out`; lets payload builders skip a
// temporary string.
void Base64EncodeAppend(std::string_view in, std::string& out);

}  // namespace switchboard::eio
