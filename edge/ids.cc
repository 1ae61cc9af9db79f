#include "edge/ids.h"

#include <openssl/rand.h>

#include <array>
#include <random>

namespace switchboard::edge {
namespace {
constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void RandomBytes(unsigned char* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) == 1) return;
  // RAND_bytes only fails when the system has no entropy source at all.
  thread_local std::random_device device;
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<unsigned char>(device());
}
}  // namespace

std::string NewId(size_t shard) {
  std::array<unsigned char, kIdLength> bytes;
  RandomBytes(bytes.data(), bytes.size());
  std::string id(kIdLength, '\0');
  id[0] = kAlphabet[shard % kAlphabet.size()];
  for (size_t i = 1; i < kIdLength; ++i) id[i] = kAlphabet[bytes[i] & 63];
  return id;
}

int ShardOfId(std::string_view id) {
  if (id.size() != kIdLength) return -1;
  auto pos = kAlphabet.find(id[0]);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

}  // namespace switchboard::edge
