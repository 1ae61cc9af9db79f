#include "admin_ui/session_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>
#include <cstdint>

namespace switchboard::admin_ui {
namespace {

std::string Hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 15]);
  }
  return out;
}

std::string Sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace

SessionTokens::SessionTokens(std::string_view username, std::string_view password_hash,
                             std::chrono::seconds lifetime)
    : key_(Sha256(std::string("switchboard admin-ui session") + '\0' + std::string(username) +
                  '\0' + std::string(password_hash))),
      lifetime_(lifetime) {}

std::string SessionTokens::Sign(std::string_view body) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), out, &len);
  return Hex(out, len);
}

std::string SessionTokens::Issue(std::chrono::system_clock::time_point now) const {
  unsigned char random[8];
  RAND_bytes(random, sizeof(random));
  const int64_t expiry =
      std::chrono::duration_cast<std::chrono::seconds>((now + lifetime_).time_since_epoch())
          .count();
  const std::string body = Hex(random, sizeof(random)) + "." + std::to_string(expiry);
  return body + "." + Sign(body);
}

bool SessionTokens::Valid(std::string_view token, std::chrono::system_clock::time_point now) const {
  const size_t dot = token.rfind('.');
  if (dot == std::string_view::npos) return false;
  const std::string_view body = token.substr(0, dot);
  const std::string expected = Sign(body);
  const std::string_view given = token.substr(dot + 1);
  if (given.size() != expected.size() ||
      CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0) {
    return false;
  }
  const size_t first = body.find('.');
  if (first == std::string_view::npos) return false;
  int64_t expiry = 0;
  const std::string_view digits = body.substr(first + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), expiry);
  if (ec != std::errc() || end != digits.data() + digits.size()) return false;
  return std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() < expiry;
}

}  // namespace switchboard::admin_ui
