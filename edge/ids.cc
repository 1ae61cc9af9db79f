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

bool ValidNodeId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string MakeSocketId(std::string_view edge_id, std::string_view local_id) {
  std::string id;
  id.reserve(edge_id.size() + 1 + local_id.size());
  id.append(edge_id);
  id.push_back('.');
  id.append(local_id);
  return id;
}

std::string_view EdgeOfSocketId(std::string_view socket_id) {
  size_t dot = socket_id.find('.');
  if (dot == std::string_view::npos || dot + 1 == socket_id.size()) return {};
  if (socket_id.find('.', dot + 1) != std::string_view::npos) return {};
  std::string_view edge = socket_id.substr(0, dot);
  return ValidNodeId(edge) ? edge : std::string_view{};
}

}  // namespace switchboard::edge
